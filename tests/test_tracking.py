"""The store helpers: finding runs, and logging to a run again from another experiment."""

from __future__ import annotations

import mlflow
import pytest

from custom_module.tracking import ensure_experiment, latest_finished_run, reopen_run


def test_reopen_run_logs_to_the_run_whichever_experiment_is_active(tracking_store: str) -> None:
    ensure_experiment("tracking-first")
    with mlflow.start_run() as run:
        mlflow.log_param("step", "first")
    ensure_experiment("tracking-second")  # a later notebook or test switched experiments

    with reopen_run(run.info.run_id):
        mlflow.log_param("reopened", "yes")

    params = mlflow.get_run(run.info.run_id).data.params
    assert params == {"step": "first", "reopened": "yes"}


def test_latest_finished_run_skips_runs_still_going(tracking_store: str) -> None:
    ensure_experiment("tracking-latest")
    with mlflow.start_run() as finished:
        pass
    with mlflow.start_run():  # e.g. a crashed or still-running training run
        assert latest_finished_run("tracking-latest").info.run_id == finished.info.run_id


def test_a_missing_experiment_says_what_to_run(tracking_store: str) -> None:
    with pytest.raises(LookupError, match="run notebook 02"):
        latest_finished_run("never-created")
