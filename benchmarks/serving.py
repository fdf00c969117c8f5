"""Throughput of the champion pyfunc in process, and of its REST server under concurrent clients.

    python benchmarks/serving.py [--name lexglue-unfair-tos-classifier] [--clients 4] [--seconds 60]

Needs a registered champion (run notebooks 02-04, or `make tutorial`). Both measurements use the
same model from the tutorial's store and test-split clauses, one after the other: in process,
batches of 256; then `mlflow models serve` on 127.0.0.1 (one worker) with `--clients` threads
each sending one clause per request for `--seconds`, reporting throughput, p50/p95/p99 latency
and every error (a non-200 answer or a failed connection).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time

import mlflow
import pandas as pd

from custom_module.environment import quiet_library_output
from custom_module.platforms import registered_model_name
from custom_module.serving import champion_uri, post, served
from custom_module.tracking import configure_tracking
from data import load_unfair_tos

BATCH = 256


def in_process_throughput(uri: str, clauses: list[str], batches: int) -> float:
    """Clauses per second of `predict` on batches of `BATCH` clauses, after a warm-up."""
    model = mlflow.pyfunc.load_model(uri)
    model.predict(pd.DataFrame({"text": clauses[:8]}))
    start = time.perf_counter()
    for index in range(batches):
        model.predict(pd.DataFrame({"text": clauses[index * BATCH : (index + 1) * BATCH]}))
    return batches * BATCH / (time.perf_counter() - start)


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
    parser.add_argument("--batches", type=int, default=4, help="in-process batches of 256")
    parser.add_argument("--clients", type=int, default=4, help="concurrent REST clients")
    parser.add_argument("--seconds", type=float, default=60, help="how long the REST load runs")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    args = parser.parse_args()
    quiet_library_output()
    configure_tracking()
    clauses = list(load_unfair_tos(args.data_path)["test"]["text"])
    uri = champion_uri(registered_model_name(args.name))

    throughput = in_process_throughput(uri, clauses, args.batches)
    print(f"in process, batches of {BATCH}: {throughput:7.1f} clauses/s")

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
