"""Where runs are stored, the names things get there, and how later notebooks find them.
MLflow 3's default store is `./mlflow.db` of the *current* folder, which would split notebooks,
CLI and tests; so one store at the repository root, unless `MLFLOW_TRACKING_URI` says otherwise."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import mlflow
from mlflow.entities import Run

from custom_module.config import TrainConfig, preset

if TYPE_CHECKING:
    import pytorch_lightning as pl

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = REPO_ROOT / "mlflow.db"
SQLITE_PREFIX = "sqlite:///"
CONFIG_ARTIFACT = "config.json"
BEST_EPOCH_TAG = "best_epoch"  # set by training (`checkpoints.tag_best_epoch`)
THRESHOLD_TAG = "decision_threshold"  # set by notebook 03 (`evaluation.log_evaluation`)
CHAMPION = "champion"  # the registry alias of the served model (notebook 04)
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag on a child run: its parent's id
# Unity Catalog needs three parts; Free Edition comes with catalog `workspace`, schema `default`.
LOCAL_MODEL_NAME = "lexglue-unfair-tos-classifier"
UC_MODEL_NAME = "workspace.default.unfair_tos_classifier"
UC_FORBIDDEN = re.compile(r"[.\s/\x00-\x1f\x7f]")  # not allowed in a Unity Catalog name
# The one copy: scripts/stamp_repository_url.py stamps it into the README and every notebook's
# setup cell (which runs before the clone). While it names OWNER, the Colab setup cell stops.
REPOSITORY_URL = "https://github.com/OWNER/lexglue-lora-mlflow.git"
UI_ADDRESS = "http://127.0.0.1:5050"  # where `make ui` serves a local store (its UI_PORT)


def on_databricks(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a Databricks notebook or job: its runtime sets `DATABRICKS_RUNTIME_VERSION`."""
    return bool((os.environ if environ is None else environ).get("DATABRICKS_RUNTIME_VERSION"))


def databricks_user(tracking_uri: str = "databricks") -> str:
    """Whoever runs this, as the workspace names them (an email address), via the Databricks SDK."""
    from databricks.sdk import WorkspaceClient

    profile = urlparse(tracking_uri).netloc or None
    try:
        user = WorkspaceClient(profile=profile).current_user.me().user_name
    except Exception as error:
        raise RuntimeError(
            "Could not ask Databricks who the current user is, to place the experiment under "
            "/Users/<you>/. Give an absolute path instead (e.g. /Shared/lexglue-unfair-tos-lora), "
            "or set DATABRICKS_HOST and DATABRICKS_TOKEN (or a profile) for this machine."
        ) from error
    if not user:
        raise RuntimeError("Databricks answered without a user name; give an absolute path.")
    return user


def run_url(run: Run, tracking_uri: str | None = None) -> str:
    """Where the MLflow UI shows `run`: the tracking server's page, the Databricks workspace's,
    or, for a local store, the address `make ui` serves it on."""
    uri = tracking_uri or mlflow.get_tracking_uri()
    page = f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    if has_scheme(uri, "databricks"):  # the host set, a notebook's own, else the profile's
        from mlflow.utils.databricks_utils import get_workspace_url

        host = os.environ.get("DATABRICKS_HOST") or get_workspace_url()
        if not host:
            from databricks.sdk import WorkspaceClient

            host = WorkspaceClient(profile=urlparse(uri).netloc or None).config.host
        return f"{host.rstrip('/')}/ml/{page}"
    base = uri if urlparse(uri).scheme in ("http", "https") else UI_ADDRESS
    return f"{base.rstrip('/')}/#/{page}"


def has_scheme(uri: str, scheme: str) -> bool:
    """Whether `uri` is `scheme` itself or `scheme://<profile>`, as MLflow spells Databricks."""
    return scheme in (uri, urlparse(uri).scheme)


def experiment_path(name: str, tracking_uri: str, user: str | None = None) -> str:
    """`name` as this store takes it: Databricks takes only absolute paths, `/Users/<user>/name`."""
    if not name or not name.strip("/"):
        raise ValueError("The experiment name is empty; give a name such as 'lexglue-unfair-tos'.")
    if not has_scheme(tracking_uri, "databricks") or name.startswith("/"):
        return name
    return f"/Users/{user or databricks_user(tracking_uri)}/{name}"


def registered_model_name(name: str | None = None, registry_uri: str | None = None) -> str:
    """The name to register the model under in this registry (default: MLflow's), checked before
    any upload: Unity Catalog needs `catalog.schema.model`, other registries take a plain name."""
    registry_uri = mlflow.get_registry_uri() if registry_uri is None else registry_uri
    if not has_scheme(registry_uri, "databricks-uc"):
        return name or LOCAL_MODEL_NAME
    name = name or UC_MODEL_NAME
    parts = name.split(".")
    valid = len(parts) == 3 and all(0 < len(p) <= 255 and not UC_FORBIDDEN.search(p) for p in parts)
    if not valid or name != name.lower():
        last = (parts[-1] or "unfair_tos_classifier").lower()
        example = name.lower() if valid else f"workspace.default.{last}"
        raise ValueError(
            f"{name!r} is not a Unity Catalog model name: catalog.schema.model, in lower case (as"
            " it stores names), each part at most 255 characters, no spaces, slashes or control "
            f"characters. Use e.g. {example!r} (Free Edition's catalog `workspace` and schema "
            "`default`), or a schema you may create models in."
        )
    return name


def tracking_uri(uri: str | None = None) -> str:
    """The argument, else `MLFLOW_TRACKING_URI`, else the workspace inside Databricks (a local file
    would hide the runs from its Experiments page), else the sqlite file at the repository root."""
    default = "databricks" if on_databricks() else f"{SQLITE_PREFIX}{DEFAULT_STORE}"
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default


def configure_tracking(experiment_name: str | None = None, uri: str | None = None) -> str | None:
    """Point MLflow at the tutorial's store; create the experiment if new, a sqlite store's with
    its artifacts beside it (else under the *current* folder). Returns the name to set."""
    # Forked DDP ranks reuse the store: no pooled sqlite connection may cross a fork
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    mlflow.set_tracking_uri(tracking_uri(uri))
    if not experiment_name:
        return None
    store = mlflow.get_tracking_uri()
    experiment_name = experiment_path(experiment_name, store)
    if mlflow.get_experiment_by_name(experiment_name) is None:
        location = None
        if store.startswith(SQLITE_PREFIX):
            database = Path(store.removeprefix(SQLITE_PREFIX)).resolve()
            location = (database.parent / "mlartifacts").as_uri()
        try:
            mlflow.create_experiment(experiment_name, artifact_location=location)
        except mlflow.exceptions.MlflowException as error:  # torchrun: another rank was first
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return experiment_name


def find_run(run_id: str | None, experiment_name: str) -> Run:
    """The run `run_id`, or else the latest finished run of the experiment."""
    configure_tracking()
    return get_run(run_id) if run_id else latest_finished_run(experiment_name)


def latest_finished_run(experiment_name: str) -> Run:
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


def get_run(run: str | Run) -> Run:
    """The run (given one, itself: look a run up once and pass it down), or a LookupError that
    says which store was searched."""
    if isinstance(run, Run):
        return run
    try:
        return mlflow.get_run(run)
    except mlflow.exceptions.MlflowException as error:
        raise LookupError(
            f"No run {run!r} in {mlflow.get_tracking_uri()}; check the id, or set "
            "MLFLOW_TRACKING_URI to the store that holds it."
        ) from error


def log_configuration(config: TrainConfig, module: pl.LightningModule) -> None:
    """What autolog leaves out: the config (read back by `run_config`), hyper-parameters, size."""
    mlflow.log_params(config.as_params())
    mlflow.log_params(dict(module.hparams))
    mlflow.log_dict(dataclasses.asdict(config), CONFIG_ARTIFACT)
    trainable, total = module.trainable_parameter_count()
    mlflow.log_params({"trainable_params": trainable, "total_params": total})


def run_config(run: str | Run) -> TrainConfig:
    """The `TrainConfig` a run was trained with (its `config.json` artifact)."""
    run = get_run(run)
    try:
        fields = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{CONFIG_ARTIFACT}")
    except mlflow.exceptions.MlflowException as error:
        raise LookupError(
            f"Run {run.info.run_id} has no {CONFIG_ARTIFACT}: it was not made by notebook 02 "
            "(or `python -m custom_module.train`), or it died before training started."
        ) from error
    # A run logged before a field was dropped (`tracking_uri`, say) still loads.
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in fields.items() if k in known})


def run_origin(run: Run) -> dict:
    """What a later notebook says about the run it uses, so that nobody evaluates an exercise's
    run unawares: name, id, start (UTC), preset, and the fields changed from that preset."""
    config = run_config(run.info.run_id)
    own = dataclasses.asdict(preset(config.preset))
    bookkeeping = {"run_name", "experiment_name", "data_path", "precision"}
    fields = dataclasses.asdict(config).items()
    changed = {k: v for k, v in fields if k not in bookkeeping and v != own[k]}
    info = run.info
    started = datetime.fromtimestamp(info.start_time / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    origin = {"name": info.run_name, "run_id": info.run_id, "started": started}
    return origin | {"preset": config.preset, "changed": changed}
