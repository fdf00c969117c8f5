"""Where runs are stored, and how later notebooks find them.

MLflow 3's default store is `./mlflow.db` of the *current* folder, so notebooks, the CLI and the
tests started from different folders would each get their own. Everything here uses one store at
the repository root (a sqlite file plus an artifact folder) unless `MLFLOW_TRACKING_URI` says
otherwise (a tracking server, `databricks`, or on Colab the sqlite file on Google Drive that the
setup cell chose with `platforms.use_drive_store`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.entities import Run

from custom_module.config import CONFIG_ARTIFACT
from custom_module.platforms import experiment_path, platform_tracking_uri

if TYPE_CHECKING:
    from custom_module.config import TrainConfig
    from custom_module.module import TransformerModule

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = REPO_ROOT / "mlflow.db"
SQLITE_PREFIX = "sqlite:///"


def tracking_uri(uri: str | None = None) -> str:
    """The argument, else `MLFLOW_TRACKING_URI`, else the workspace inside Databricks, else the
    sqlite file at the repository root."""
    return (
        uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or platform_tracking_uri()
        or f"sqlite:///{DEFAULT_STORE}"
    )


def configure_tracking(experiment_name: str | None = None, uri: str | None = None) -> str | None:
    """Point MLflow at the tutorial's store (see `tracking_uri`); create the experiment there
    if it is new, with its artifacts beside the store (see `artifact_root`).

    Returns the experiment name to pass to `mlflow.set_experiment`: on Databricks a plain name
    becomes `/Users/<you>/<name>` (see `platforms.experiment_path`).
    """
    mlflow.set_tracking_uri(tracking_uri(uri))
    if not experiment_name:
        return None
    experiment_name = experiment_path(experiment_name, mlflow.get_tracking_uri())
    if mlflow.get_experiment_by_name(experiment_name) is None:
        location = artifact_root(mlflow.get_tracking_uri())
        mlflow.create_experiment(experiment_name, artifact_location=location)
    return experiment_name


def artifact_root(uri: str) -> str | None:
    """For a sqlite store, the `mlartifacts` folder beside the database file; else the server's.

    Without this MLflow would put artifacts under the *current* folder, scattering them (and on
    Colab leaving them in a runtime that is gone when the next notebook looks for them).
    """
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return (Path(uri.removeprefix(SQLITE_PREFIX)).resolve().parent / "mlartifacts").as_uri()


def find_run(run_id: str | None, experiment_name: str) -> Run:
    """The run `run_id`, or else the latest finished run of the experiment.

    How notebooks later in the chain, and the command lines, find the run to work on.
    """
    configure_tracking()
    return get_run(run_id) if run_id else latest_finished_run(experiment_name)


def latest_finished_run(experiment_name: str) -> Run:
    """The most recent run of the experiment that finished."""
    experiment_name = experiment_path(experiment_name, mlflow.get_tracking_uri())
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


def log_configuration(config: TrainConfig, module: TransformerModule) -> None:
    """What autolog leaves out: the config, the module's hyper-parameters, its size.

    `config.json` is what `run_config` reads back to evaluate or resume the run.
    """
    mlflow.log_params(config.as_params())
    mlflow.log_params(dict(module.hparams))
    mlflow.log_dict(dataclasses.asdict(config), CONFIG_ARTIFACT)
    trainable, total = module.trainable_parameter_count()
    mlflow.log_params({"trainable_params": trainable, "total_params": total})
