"""Maintainers: refresh the committed notebooks' outputs with a real default-preset run.

    python scripts/refresh_notebooks.py               # all six (`make notebooks`)
    python scripts/refresh_notebooks.py --notebook 03 --notebook 04

Each notebook is executed with its default parameters by the runner every command line uses
(`custom_module.run_notebooks.run_notebook`, papermill), and written back into `notebooks/` without
papermill's metadata, so nbval can check the outputs in CI. They log to their own store,
`output/refresh/`: emptied when all of them are refreshed, so the committed outputs come from a
fresh store, and kept otherwise, so that 03 and 04 can be refreshed alone against the run 02 made.
Notebook 03 scores a multilabel run too (LexGLUE's protocol): it is trained first, with
`MULTILABEL_TRAINING`, when the store has none.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from custom_module.run_notebooks import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    declared_parameters,
    run_notebook,
    select_notebooks,
)
from custom_module.tracking import latest_finished_run
from custom_module.train import train

REFRESH_STORE = NOTEBOOK_DIR.parent / "output" / "refresh"
EVALUATION_NOTEBOOK = "03_checkpoint_evaluation.ipynb"
# LexGLUE's own task on the `cpu` preset (every clause: LexGLUE scores the whole test split): the
# rare categories need their loss weighted (fair/unfair ratio ** 0.5 per category) and more
# epochs. 8 full-data epochs took 17 min on 2 idle cores (26 in another session): the `cpu`
# preset's 45-min guard would cut them short on a busy machine. docs/lexglue.md gives the command.
MULTILABEL_TRAINING = {
    "preset_name": "cpu",
    "num_classes": 8,
    "max_epochs": 8,
    "config_overrides": {"class_weighting": 0.5, "max_time": {"hours": 2}},
}


def multilabel_experiment() -> str:
    """Where notebook 03 looks for the multilabel run: its parameter's default."""
    default = declared_parameters(EVALUATION_NOTEBOOK)["multilabel_experiment"]["default"]
    return ast.literal_eval(default)


def ensure_multilabel_run() -> None:
    """Train the multilabel run that notebook 03 scores, unless the store has one already."""
    try:
        latest_finished_run(multilabel_experiment())
    except LookupError:
        print("training the multilabel run for 03's LexGLUE section ...", flush=True)
        train(experiment_name=multilabel_experiment(), **MULTILABEL_TRAINING)


def without_papermill_metadata(path: Path) -> nbformat.NotebookNode:
    """The executed notebook as if run in Jupyter: papermill's own metadata removed, and the
    empty `tags` list it gives every cell."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    return notebook


def refresh(notebooks: list[str]) -> None:
    if list(notebooks) == list(NOTEBOOKS):
        shutil.rmtree(REFRESH_STORE, ignore_errors=True)
    REFRESH_STORE.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{REFRESH_STORE / 'mlflow.db'}"
    for name in notebooks:
        if name == EVALUATION_NOTEBOOK:
            ensure_multilabel_run()
        print(f"refreshing {name} ...", flush=True)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            executed = run_notebook(name, Path(scratch) / name)
            notebook = without_papermill_metadata(executed)
        nbformat.write(notebook, NOTEBOOK_DIR / name)
        print(f"refreshed {name} in {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", action="append", help="only these (e.g. 03); repeatable")
    refresh(select_notebooks(parser.parse_args().notebook))


if __name__ == "__main__":
    main()
