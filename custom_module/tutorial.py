"""Run the tutorial notebooks in order with papermill: `python -m custom_module.tutorial`.

    python -m custom_module.tutorial --preset smoke              # all four, into output/
    python -m custom_module.tutorial --notebook 02 -p max_epochs 2 -p seed 7

Each parameter goes to every notebook whose `parameters` cell declares it; a parameter that no
notebook to run declares is refused before anything runs. Later notebooks find the run that
earlier ones logged. A failure names the notebook and the cell, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from custom_module.config import MULTILABEL_EXPERIMENT, MULTILABEL_TRAINING
from custom_module.notebooks import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    NotebookFailed,
    declared_parameters,
    parse_value,
    run_notebook,
)
from custom_module.tracking import latest_finished_run
from custom_module.train import train

REFRESH_STORE = NOTEBOOK_DIR.parent / "output" / "refresh"


def select_notebooks(prefixes: list[str] | None) -> list[str]:
    """The notebooks whose names start with one of `prefixes` (`02`, `03_checkpoint`), in order;
    all of them for None."""
    if not prefixes:
        return list(NOTEBOOKS)
    chosen = [name for name in NOTEBOOKS if any(name.startswith(p) for p in prefixes)]
    unmatched = [p for p in prefixes if not any(name.startswith(p) for name in NOTEBOOKS)]
    if unmatched:
        raise ValueError(f"No notebook starts with {unmatched}; the notebooks are {NOTEBOOKS}.")
    return chosen


def parameters_per_notebook(notebooks: list[str], parameters: dict) -> dict[str, dict]:
    """Each notebook's share of `parameters`; ValueError for one that none of them declares."""
    declared = {name: declared_parameters(name) for name in notebooks}
    unknown = sorted(set(parameters) - {p for names in declared.values() for p in names})
    if unknown:
        known = sorted({p for names in declared.values() for p in names})
        raise ValueError(f"No notebook to run takes parameter(s) {unknown}; they take {known}.")
    return {
        name: {k: v for k, v in parameters.items() if k in declared[name]} for name in notebooks
    }


def run_tutorial(output_dir: Path, notebooks: list[str], parameters: dict) -> list[Path]:
    """Execute `notebooks` in order into `output_dir`; stops at the first failing cell."""
    shares = parameters_per_notebook(notebooks, parameters)
    outputs = []
    for name in notebooks:
        print(f"running {name} {shares[name] or ''}", flush=True)
        outputs.append(run_notebook(name, output_dir / name, shares[name]))
        print(f"  wrote {outputs[-1]}", flush=True)
    return outputs


def refresh_committed_notebooks(notebooks: list[str]) -> None:
    """Re-execute notebooks in `notebooks/` in place, with their default parameters.

    For maintainers: this is how the committed outputs are made (a real default-preset run),
    without papermill's metadata and injected cells, so nbval can check them in CI. They log to
    their own store, `output/refresh/`: emptied when all of them are refreshed, so the committed
    outputs come from a fresh store, and kept otherwise, so that 03 and 04 can be refreshed
    alone against the run 02 made.
    """
    store = REFRESH_STORE
    if list(notebooks) == list(NOTEBOOKS):
        shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    for name in notebooks:
        if name.startswith("03"):
            ensure_multilabel_run()
        print(f"refreshing {name} ...", flush=True)
        path = NOTEBOOK_DIR / name
        notebook = nbformat.read(path, as_version=4)
        resources = {"metadata": {"path": str(NOTEBOOK_DIR)}}
        start = time.perf_counter()
        client = NotebookClient(notebook, timeout=None, record_timing=False, resources=resources)
        client.execute()
        nbformat.write(notebook, path)
        print(f"refreshed {name} in {time.perf_counter() - start:.0f} s", flush=True)


def ensure_multilabel_run() -> None:
    """Train the multilabel run that notebook 03 scores, unless the store has one already."""
    try:
        latest_finished_run(MULTILABEL_EXPERIMENT)
    except LookupError:
        print("training the multilabel run for 03's LexGLUE section ...", flush=True)
        train(**MULTILABEL_TRAINING)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("output"), help="executed notebooks")
    parser.add_argument("--notebook", action="append", help="run only these (e.g. 02); repeatable")
    parser.add_argument("--preset", help="preset_name: smoke, workshop, cpu, gpu or auto")
    parser.add_argument("--data-path", help="the data_path parameter (or LEXGLUE_PATH)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="any notebook parameter, e.g. -p max_epochs 2",
    )
    parser.add_argument(
        "--in-place", action="store_true", help="refresh the committed notebooks' outputs instead"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.in_place:
        refresh_committed_notebooks(select_notebooks(args.notebook))
        return
    parameters = {name: parse_value(value) for name, value in args.parameter}
    if args.preset:
        parameters["preset_name"] = args.preset
    if args.data_path:
        parameters["data_path"] = args.data_path
    try:
        run_tutorial(args.output, select_notebooks(args.notebook), parameters)
    except (ValueError, NotebookFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"executed notebooks are in {args.output}")


if __name__ == "__main__":
    main()
