"""Where the tutorial runs, and the names and paths that follow from it.

The same code runs on a laptop, on Colab and on Databricks, but each place names things its own
way: Databricks wants experiments at absolute workspace paths (`/Users/<you>/...`) and models in
Unity Catalog under `catalog.schema.model`; the data comes from the Hugging Face hub unless a
local copy (a folder, a `/Volumes/...` path) is configured; on Colab each notebook gets a runtime
of its own, so runs are kept on Google Drive. The functions here make those choices, each in one
place, so that notebooks, the command line and the tests agree.

Nothing heavy is imported at module level (no torch, transformers or mlflow): the Databricks SDK
and MLflow are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Mapping, MutableMapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[1]
# A copy beside the repository (CI machines, workshops) is used without being configured.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "lex_glue"
LEXGLUE_HUB_ID = "coastalcph/lex_glue"
# The local (sqlite) registry keeps the tutorial's plain name; Unity Catalog needs three parts.
# Databricks Free Edition comes with the catalog `workspace` and its schema `default`.
LOCAL_MODEL_NAME = "lexglue-unfair-tos-classifier"
UC_MODEL_NAME = "workspace.default.unfair_tos_classifier"
# What huggingface_hub and datasets read as "on" in HF_HUB_OFFLINE and friends.
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
# Unity Catalog names: at most 255 characters, no period (it separates the parts), space,
# forward slash or ASCII control character; stored in lower case.
UC_FORBIDDEN = re.compile(r"[.\s/\x00-\x1f\x7f]")
# Where the repository is published. The one copy of it: scripts/stamp_repository_url.py stamps it
# into the README's Colab links and every notebook's setup cell (which runs before this package
# is cloned, so it cannot import it). While it names OWNER, the Colab setup cell stops and says so.
REPOSITORY_URL = "https://github.com/OWNER/lexglue-lora-mlflow.git"
# Colab: where its own examples mount Google Drive, and the store's folder in the learner's Drive.
COLAB_DRIVE = "/content/drive"
DRIVE_STORE_FOLDER = "MyDrive/lexglue-lora-mlflow"


def on_databricks(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a Databricks notebook or job (classic or serverless compute).

    The runtime sets `DATABRICKS_RUNTIME_VERSION`; the Databricks SDK keys its notebook
    authentication on the same variable.
    """
    environ = os.environ if environ is None else environ
    return bool(environ.get("DATABRICKS_RUNTIME_VERSION"))


def on_colab(environ: Mapping[str, str] | None = None) -> bool:
    """True in a Google Colab runtime: it sets `COLAB_RELEASE_TAG`, and its kernel has
    `google.colab` imported."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("COLAB_RELEASE_TAG")) or "google.colab" in sys.modules


def use_drive_store(
    mount_point: str = COLAB_DRIVE, environ: MutableMapping[str, str] | None = None
) -> str:
    """On Colab, choose the MLflow store for this runtime, and return its URI: the one in
    `MLFLOW_TRACKING_URI` if the learner set it (a tracking server; `databricks` for Databricks
    Free Edition, with DATABRICKS_HOST and DATABRICKS_TOKEN), else a sqlite file on their Google
    Drive, `MyDrive/lexglue-lora-mlflow/mlflow.db`, mounted here (Colab asks for access once).

    Why Drive: each notebook opened from a Colab link runs in a runtime of its own, whose disk
    goes with it, so a store in the clone would hide 02's run from 03 and 04. A Drive folder
    outlives runtimes, and every runtime of the account mounts the same one; `configure_tracking`
    then puts the artifacts beside the database, on Drive too (`tracking.artifact_root`).

    Why through `MLFLOW_TRACKING_URI`, decided here once: `tracking.tracking_uri` reads it first,
    and so does every process a notebook starts (papermill kernels, `mlflow models serve`), so
    all of them use this store without deciding again; the setup cell stays one call.
    """
    environ = os.environ if environ is None else environ
    if environ.get("MLFLOW_TRACKING_URI"):
        return environ["MLFLOW_TRACKING_URI"]
    from google.colab import drive

    drive.mount(mount_point)
    database = Path(mount_point, DRIVE_STORE_FOLDER, "mlflow.db")
    database.parent.mkdir(parents=True, exist_ok=True)
    check_sqlite_on_drive(database)
    environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{database}"
    return environ["MLFLOW_TRACKING_URI"]


def check_sqlite_on_drive(database: Path) -> None:
    """Make sure the sqlite file on Drive keeps a rollback journal and takes a write lock, before
    MLflow opens it; else raise with what to do instead.

    Drive reaches a runtime through a FUSE mount that uploads writes in the background. SQLite's
    WAL mode does not work there: it shares an index in memory (the `-shm` file) that network and
    FUSE file systems do not keep coherent, and it keeps recent commits in the `-wal` file, so
    another runtime may read a `mlflow.db` without them. MLflow keeps SQLite's default rollback
    journal, but a database once switched to WAL (by another tool) stays in WAL; this switches it
    back. File locks do not reach from one runtime to another, so runtimes take turns writing to
    the store, as the chain 02 → 03 → 04 does.
    """
    try:
        with closing(sqlite3.connect(database, timeout=20, isolation_level=None)) as connection:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                connection.execute("PRAGMA journal_mode = DELETE")
            connection.execute("BEGIN IMMEDIATE")  # the write lock MLflow will take
            connection.execute("ROLLBACK")
    except sqlite3.Error as error:
        raise RuntimeError(
            f"SQLite cannot use the MLflow store on Google Drive ({database}): {error}. Set "
            "MLFLOW_TRACKING_URI to a tracking server (or `databricks`) before the setup cell, "
            "or move the file aside on Drive if it is damaged."
        ) from error


def tracking_is_databricks(uri: str) -> bool:
    """True for `databricks` and `databricks://<profile>` tracking URIs."""
    return uri == "databricks" or urlparse(uri).scheme == "databricks"


def registry_is_unity_catalog(uri: str) -> bool:
    """True for `databricks-uc` and `databricks-uc://<profile>` registry URIs.

    MLflow 3 uses this registry by default when tracking goes to `databricks`.
    """
    return uri == "databricks-uc" or urlparse(uri).scheme == "databricks-uc"


def platform_tracking_uri(environ: Mapping[str, str] | None = None) -> str | None:
    """`databricks` inside Databricks, else None (the caller's own default applies).

    Inside Databricks the workspace is the tracking server: a sqlite file in the repository
    folder would hide the runs from the Experiments page.
    """
    return "databricks" if on_databricks(environ) else None


def databricks_user(tracking_uri: str = "databricks") -> str:
    """The user name (an email address) of whoever runs this, asked of the workspace.

    Uses the Databricks SDK, which authenticates by itself inside a notebook (also on serverless
    compute) and elsewhere from `DATABRICKS_HOST`/`DATABRICKS_TOKEN` or the profile named in a
    `databricks://<profile>` URI.
    """
    from databricks.sdk import WorkspaceClient

    profile = urlparse(tracking_uri).netloc or None
    try:
        user = WorkspaceClient(profile=profile).current_user.me().user_name
    except Exception as error:
        raise RuntimeError(
            "Could not ask Databricks who the current user is, to place the experiment under "
            "/Users/<you>/. Give the experiment an absolute workspace path instead (e.g. "
            "/Users/you@example.com/lexglue-unfair-tos-lora or /Shared/lexglue-unfair-tos-lora), "
            "or set DATABRICKS_HOST and DATABRICKS_TOKEN (or a profile) for this machine."
        ) from error
    if not user:
        raise RuntimeError("Databricks answered without a user name; give an absolute path.")
    return user


def experiment_path(name: str, tracking_uri: str, user: str | None = None) -> str:
    """The experiment name to give MLflow for `name` under this tracking URI.

    Databricks accepts only absolute workspace paths, so a plain name goes to the current
    user's folder, `/Users/<user>/<name>` (`user` defaults to `databricks_user`); a name that
    starts with `/` (`/Users/...`, `/Shared/...`) is kept. Every other store takes the name as
    it is.
    """
    if not name or not name.strip("/"):
        raise ValueError("The experiment name is empty; give a name such as 'lexglue-unfair-tos'.")
    if not tracking_is_databricks(tracking_uri) or name.startswith("/"):
        return name
    user = user or databricks_user(tracking_uri)
    return f"/Users/{user}/{name}"


def registered_model_name(name: str | None = None, registry_uri: str | None = None) -> str:
    """The name to register the model under in this registry, checked before any upload.

    Unity Catalog (`databricks-uc`) needs `catalog.schema.model` (default
    `workspace.default.unfair_tos_classifier`, Free Edition's own catalog and schema); any
    other registry takes a plain name (default `lexglue-unfair-tos-classifier`).
    `registry_uri=None` asks MLflow which registry is in use.
    """
    if registry_uri is None:
        import mlflow

        registry_uri = mlflow.get_registry_uri()
    if not registry_is_unity_catalog(registry_uri):
        return name or LOCAL_MODEL_NAME
    name = name or UC_MODEL_NAME
    parts = name.split(".")
    example = f"workspace.default.{parts[-1] or 'unfair_tos_classifier'}"
    if len(parts) != 3 or not all(parts):
        raise ValueError(
            f"Unity Catalog registers models as catalog.schema.model; {name!r} has "
            f"{len(parts)} part(s). Use e.g. {example!r} (Free Edition's catalog `workspace` "
            "and schema `default`), or a schema you may create models in."
        )
    for part in parts:
        if len(part) > 255 or UC_FORBIDDEN.search(part):
            raise ValueError(
                f"{part!r} in {name!r} is not a Unity Catalog name: at most 255 characters, "
                "no spaces, slashes or control characters. Use letters, digits and underscores."
            )
    if name != name.lower():
        raise ValueError(
            f"Unity Catalog stores names in lower case; register as {name.lower()!r} so the "
            "name you look up is the name it keeps."
        )
    return name


def hub_offline(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `datasets` will stay off the hub: `HF_DATASETS_OFFLINE` when set, else
    `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`), read as `datasets` reads them."""
    environ = os.environ if environ is None else environ
    value = environ.get("HF_DATASETS_OFFLINE")
    if value is None:
        value = environ.get("HF_HUB_OFFLINE") or environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in TRUE_VALUES


@dataclass(frozen=True)
class DataSource:
    """Where UNFAIR-ToS will come from, and why."""

    location: str  # a local folder (also `/Volumes/...` on Databricks), or the hub id
    origin: str  # "data_path", "LEXGLUE_PATH", "shared copy" or "hub"
    offline: bool  # True when the hub is not needed or not allowed

    @property
    def local(self) -> bool:
        return self.origin != "hub"

    def describe(self) -> str:
        """One line for a notebook: what will be read, and whether the hub is involved."""
        if self.local:
            # The folder's name only: a notebook's output should not carry machine paths.
            folder = Path(self.location).name
            return f"UNFAIR-ToS from a local copy ({self.origin}: .../{folder}); no hub needed."
        if self.offline:
            return (
                f"UNFAIR-ToS from the hub cache only ({LEXGLUE_HUB_ID}, HF_HUB_OFFLINE is on); "
                "set LEXGLUE_PATH to a local copy if it was never downloaded here."
            )
        return f"UNFAIR-ToS from the Hugging Face hub ({LEXGLUE_HUB_ID}); needs the network once."


def data_source(
    data_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    shared_copy: Path | None = None,
) -> DataSource:
    """Choose the data: `data_path`, else `LEXGLUE_PATH`, else a copy at
    `../shared/data/lex_glue` beside the repository, else the hub.

    A local copy means offline; with the hub, offline mode is whatever HF_HUB_OFFLINE says
    (then only a cached copy can load). Paths are not checked here (see
    `data.resolve_data_path`).
    """
    environ = os.environ if environ is None else environ
    shared_copy = SHARED_DATA if shared_copy is None else shared_copy
    if data_path:
        return DataSource(str(data_path), "data_path", offline=True)
    if environ.get("LEXGLUE_PATH"):
        return DataSource(environ["LEXGLUE_PATH"], "LEXGLUE_PATH", offline=True)
    if shared_copy.is_dir():
        return DataSource(str(shared_copy), "shared copy", offline=True)
    return DataSource(LEXGLUE_HUB_ID, "hub", offline=hub_offline(environ))
