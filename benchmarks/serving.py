"""Throughput of the champion pyfunc in process, and latency of single-clause REST requests.

    python benchmarks/serving.py [--name lexglue-unfair-tos-classifier] [--requests 50]

Needs a registered champion (run notebooks 02-04, or `make tutorial`). Both measurements use
the same model from the tutorial's store and test-split clauses, one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlflow
import pandas as pd

from custom_module.platforms import registered_model_name
from custom_module.serving import champion_uri, post, served
from custom_module.tracking import configure_tracking
from data import load_unfair_tos

BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="registered model name; default: the tutorial's")
    parser.add_argument("--requests", type=int, default=50, help="single-clause REST requests")
    parser.add_argument("--batches", type=int, default=4, help="in-process batches of 256")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    args = parser.parse_args()
    configure_tracking()
    clauses = list(load_unfair_tos(args.data_path)["test"]["text"])
    uri = champion_uri(registered_model_name(args.name))

    model = mlflow.pyfunc.load_model(uri)
    model.predict(pd.DataFrame({"text": clauses[:8]}))  # warm-up
    start = time.perf_counter()
    for index in range(args.batches):
        model.predict(pd.DataFrame({"text": clauses[index * BATCH : (index + 1) * BATCH]}))
    throughput = args.batches * BATCH / (time.perf_counter() - start)
    print(f"in process, batches of {BATCH}: {throughput:7.1f} clauses/s")

    with served(uri) as url:
        post(url, {"inputs": clauses[:1]})  # warm-up
        latencies = []
        for clause in clauses[: args.requests]:
            start = time.perf_counter()
            status, _ = post(url, {"inputs": [clause]})
            latencies.append((time.perf_counter() - start) * 1000)
            assert status == 200
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"REST, one clause per request ({args.requests}): p50 {p50:6.1f} ms, p95 {p95:6.1f} ms")


if __name__ == "__main__":
    main()
