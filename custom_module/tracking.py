"""Where runs are stored, and how later notebooks find them.

MLflow 3's default store is `./mlflow.db` of the *current* folder, so notebooks, the CLI and the
tests started from different folders would each get their own. Everything here uses one store at
the repository root (a sqlite file plus an artifact folder) unless `MLFLOW_TRACKING_URI` says
otherwise (a tracking server, or `databricks`).
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.entities import Experiment, Run

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = REPO_ROOT / "mlflow.db"
SQLITE_PREFIX = "sqlite:///"


def tracking_uri(uri: str | None = None) -> str:
    """The argument, else `MLFLOW_TRACKING_URI`, else the sqlite file at the repository root."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE}"


def configure_tracking(uri: str | None = None) -> str:
    """Point MLflow at the tutorial's store (see `tracking_uri`) and return the URI used."""
    resolved = tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    return resolved


def artifact_root(uri: str) -> str | None:
    """For a sqlite store, the `mlartifacts` folder beside the database file; else the server's.

    Without this MLflow would put artifacts under the *current* folder, scattering them.
    """
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return (Path(uri.removeprefix(SQLITE_PREFIX)).resolve().parent / "mlartifacts").as_uri()


def ensure_experiment(name: str) -> Experiment:
    """Make `name` the active experiment, creating it (see `artifact_root`) if needed."""
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=artifact_root(mlflow.get_tracking_uri()))
    return mlflow.set_experiment(name)


def reopen_run(run_id: str) -> mlflow.ActiveRun:
    """Start `run_id` again to log more to it, from whatever experiment is active now.

    MLflow refuses to resume a run of another experiment than the active one, which happens as
    soon as a notebook or test has switched experiments in between. The run's experiment stays
    the active one afterwards.
    """
    mlflow.set_experiment(experiment_id=get_run(run_id).info.experiment_id)
    return mlflow.start_run(run_id=run_id)


def latest_finished_run(experiment_name: str) -> Run:
    """The most recent run of the experiment that finished, for notebooks later in the chain."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise LookupError(
            f"No experiment {experiment_name!r} in {mlflow.get_tracking_uri()}: run notebook 02 "
            "(or `python -m custom_module.train`) first, or set MLFLOW_TRACKING_URI to the store "
            "that holds it."
        )
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise LookupError(
            f"Experiment {experiment_name!r} has no finished run yet: train one with notebook 02."
        )
    return runs[0]


def get_run(run_id: str) -> Run:
    """The run, or a LookupError that says which store was searched."""
    try:
        return mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise LookupError(
            f"No run {run_id!r} in {mlflow.get_tracking_uri()}; check the id, or set "
            "MLFLOW_TRACKING_URI to the store that holds it."
        ) from error
