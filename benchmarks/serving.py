"""Throughput of the champion pyfunc in process, per runtime, and of its REST server under load.

    python benchmarks/serving.py [--name lexglue-unfair-tos-classifier] [--clients 4] [--seconds 60]

Needs a registered champion (run notebooks 02-04, or `make tutorial`). In process, the champion's
run is wrapped once per runtime (`torch`; `onnx`: ONNX Runtime on the same float model;
`onnx-int8`: on int8 weights), saved locally, each computing in batches of its size in
`pyfunc_model.BATCH_SIZES`; then `torch` and `onnx-int8` again at their runner-up sizes (64, as
the pyfunc did before; 16), which shows what that choice buys. Each predicts the whole test split in
requests of 256, taking turns for `--rounds` rounds so that the machine's noise hits all alike;
it prints clauses/s, test F1 at the served threshold, and each one's ratio to `torch`. Then
`mlflow models serve` on 127.0.0.1 (one worker) serves the registered champion to `--clients`
threads, each sending one clause per request for `--seconds`: throughput, p50/p95/p99 latency
and every error (a non-200 answer or a failed connection).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from custom_module.checkpoints import load_epoch
from custom_module.evaluation import logged_report
from custom_module.notebook_helpers import quiet_library_output
from custom_module.serving import (
    PYFUNC_FILE,
    RUNTIMES,
    champion_version,
    export_artifacts,
    post,
    served,
    signature,
)
from custom_module.tracking import CHAMPION, configure_tracking, registered_model_name, run_config
from data import load_unfair_tos

BATCH = 256
REFERENCE = "torch"
# Runner-up batch sizes (see `pyfunc_model.BATCH_SIZES`), measured beside the chosen ones.
RUNNERS_UP = {"torch": 64, "onnx-int8": 16}


def models_per_runtime(run_id: str, folder: Path) -> dict[str, mlflow.pyfunc.PyFuncModel]:
    """The run's pyfunc once per runtime, saved under `folder` (nothing is logged), and the
    `RUNNERS_UP` again, computing in batches of their runner-up sizes."""
    merged = load_epoch(run_id, logged_report(run_id)["best_epoch"])  # as notebook 04 merges it
    merged.model = merged.model.merge_and_unload()
    models = {}
    for runtime in RUNTIMES:
        mlflow.pyfunc.save_model(
            folder / runtime,
            python_model=str(PYFUNC_FILE),
            artifacts=export_artifacts(run_id, merged, folder / f"{runtime}-artifacts", runtime),
            signature=signature(run_config(run_id).task),
        )
        models[runtime] = mlflow.pyfunc.load_model(str(folder / runtime))
    for runtime, batch_size in RUNNERS_UP.items():
        name = f"{runtime}, {batch_size}/batch"
        models[name] = mlflow.pyfunc.load_model(str(folder / runtime))
        models[name].unwrap_python_model().batch_size = batch_size
    return models


def side_by_side(
    models: dict[str, mlflow.pyfunc.PyFuncModel], clauses: list[str], rounds: int
) -> dict[str, dict]:
    """Per runtime: clauses/s over every round, and the labels of the last round."""
    seconds = dict.fromkeys(models, 0.0)
    labels = {}
    for model in models.values():  # warm-up
        model.predict(pd.DataFrame({"text": clauses[:8]}))
    for turn in range(rounds):
        order = list(models) if turn % 2 == 0 else list(reversed(models))
        for name in order:
            start = time.perf_counter()
            answers = [
                models[name].predict(pd.DataFrame({"text": clauses[i : i + BATCH]}))
                for i in range(0, len(clauses), BATCH)
            ]
            seconds[name] += time.perf_counter() - start
            labels[name] = pd.concat(answers)["label"].to_numpy() == "unfair"
    return {
        name: {"clauses_per_s": rounds * len(clauses) / seconds[name], "flagged": labels[name]}
        for name in models
    }


def rest_load(url: str, clauses: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads posting one clause per request until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        for clause in itertools.islice(itertools.cycle(clauses), offset, None):
            if time.monotonic() >= deadline:
                return
            start = time.perf_counter()
            try:
                status, answer = post(url, {"inputs": [clause]})
            except OSError as error:
                status, answer = None, str(error)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    errors.append(f"{status}: {str(answer)[:200]}")

    threads = [threading.Thread(target=client, args=(i * 97,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    percentiles = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p95": percentiles[94],
        "p99": percentiles[98],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="registered model name; default: the tutorial's")
    parser.add_argument("--rounds", type=int, default=2, help="in-process passes over test")
    parser.add_argument("--clients", type=int, default=4, help="concurrent REST clients")
    parser.add_argument("--seconds", type=float, default=60, help="how long the REST load runs")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    args = parser.parse_args()
    quiet_library_output()
    configure_tracking()
    test = load_unfair_tos(args.data_path)["test"]
    clauses = list(test["text"])
    truth = np.array([len(labels) > 0 for labels in test["labels"]])
    name = registered_model_name(args.name)
    champion = champion_version(name)
    if champion is None:
        raise SystemExit(f"No champion registered as {name!r}: run notebooks 02-04 first.")

    with tempfile.TemporaryDirectory() as folder:
        results = side_by_side(
            models_per_runtime(champion.run_id, Path(folder)), clauses, args.rounds
        )
    print(f"in process, requests of {BATCH}, {args.rounds} rounds over {len(clauses)} clauses:")
    reference = results[REFERENCE]
    reference_f1 = f1_score(truth, reference["flagged"])
    for runtime, result in results.items():
        f1 = f1_score(truth, result["flagged"])
        differ = int((result["flagged"] != reference["flagged"]).sum())
        print(
            f"  {runtime:<20} {result['clauses_per_s']:6.1f} clauses/s "
            f"({result['clauses_per_s'] / reference['clauses_per_s']:.2f}x {REFERENCE}), "
            f"test F1 {f1:.4f} ({f1 - reference_f1:+.4f}), "
            f"{differ} clauses labelled differently"
        )

    uri = f"models:/{name}@{CHAMPION}"
    with served(uri) as url:
        post(url, {"inputs": clauses[:1]})  # warm-up
        load = rest_load(url, clauses, args.clients, args.seconds)
    print(
        f"REST, {args.clients} clients x {args.seconds:.0f} s, one clause per request: "
        f"{load['requests']} requests, {load['requests_per_s']:.1f}/s; latency p50 "
        f"{load['p50']:.1f} ms, p95 {load['p95']:.1f} ms, p99 {load['p99']:.1f} ms; "
        f"{len(load['errors'])} errors"
    )
    for error in load["errors"][:5]:
        print(f"  error {error}")


if __name__ == "__main__":
    main()
