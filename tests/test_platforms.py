"""Platform choices, with Databricks and Colab simulated by their environment and URIs.

Nothing here needs a network: Databricks' user comes from the real Databricks SDK talking to a
small fake workspace on 127.0.0.1, and the hub is made unreachable by offline mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import datasets
import huggingface_hub
import pytest

import data
from custom_module import tracking
from custom_module.tracking import experiment_path, on_databricks, registered_model_name
from data import DataSource, data_source

REPO_ROOT = Path(__file__).resolve().parents[1]
USER = "ada.lovelace@example.com"
DATABRICKS_ENV = {"DATABRICKS_RUNTIME_VERSION": "client.4.9"}


# --- where are we ----------------------------------------------------------------------------


def test_databricks_is_recognised_by_its_runtime_variable():
    assert on_databricks(DATABRICKS_ENV)
    assert not on_databricks({})


def test_inside_databricks_tracking_defaults_to_the_workspace(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "client.4.9")
    assert tracking.tracking_uri() == "databricks"
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    assert tracking.tracking_uri().startswith("sqlite:///")


# --- experiments -----------------------------------------------------------------------------


def test_plain_experiment_name_goes_to_the_users_workspace_folder_on_databricks():
    path = experiment_path("lexglue-unfair-tos-lora", "databricks", user=USER)
    assert path == f"/Users/{USER}/lexglue-unfair-tos-lora"


def test_profile_tracking_uri_is_databricks_too():
    path = experiment_path("lexglue", "databricks://free-edition", user=USER)
    assert path == f"/Users/{USER}/lexglue"


@pytest.mark.parametrize("name", ["/Shared/lexglue", f"/Users/{USER}/runs/lexglue"])
def test_absolute_workspace_path_is_kept_on_databricks(name):
    assert experiment_path(name, "databricks", user="someone.else@example.com") == name


def test_experiment_name_is_unchanged_off_databricks():
    assert experiment_path("lexglue-unfair-tos-lora", "sqlite:///mlflow.db") == (
        "lexglue-unfair-tos-lora"
    )


def test_empty_experiment_name_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        experiment_path("", "databricks", user=USER)


class FakeWorkspace(BaseHTTPRequestHandler):
    """Answers the SCIM `Me` call of a Databricks workspace; 404 for anything else."""

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        if self.path.startswith("/api/2.0/preview/scim/v2/Me"):
            body = json.dumps({"id": "1", "userName": USER}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = b"{}"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Databricks host on 127.0.0.1 with a token, as a notebook's environment would have."""
    server = HTTPServer(("127.0.0.1", 0), FakeWorkspace)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"http://127.0.0.1:{server.server_port}"
    for name, value in {
        **DATABRICKS_ENV,
        "DATABRICKS_HOST": host,
        "DATABRICKS_TOKEN": "dapi-not-a-real-token",
        "DATABRICKS_CONFIG_FILE": "/nonexistent/.databrickscfg",
        "MLFLOW_TRACKING_URI": "databricks",
    }.items():
        monkeypatch.setenv(name, value)
    yield host
    server.shutdown()
    thread.join()


def test_databricks_user_comes_from_the_workspace_through_the_sdk(fake_workspace):
    assert experiment_path("lexglue", "databricks") == f"/Users/{USER}/lexglue"


def test_unknown_databricks_user_says_to_give_an_absolute_path(monkeypatch, tmp_path):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="/Shared/lexglue-unfair-tos-lora"):
        experiment_path("lexglue", "databricks")


# --- registered models -----------------------------------------------------------------------


def test_unity_catalog_model_gets_a_three_level_default_name():
    assert registered_model_name(registry_uri="databricks-uc") == (
        "workspace.default.unfair_tos_classifier"
    )


def test_unity_catalog_model_keeps_a_valid_three_level_name():
    name = "main.legal_nlp.unfair_tos"
    assert registered_model_name(name, registry_uri="databricks-uc://free-edition") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("lexglue-unfair-tos-classifier", "workspace.default.lexglue-unfair-tos-classifier"),
        ("default.unfair_tos", "catalog.schema.model"),
        ("workspace..unfair_tos", "catalog.schema.model"),
        ("workspace.default.unfair tos", "no spaces"),
        ("workspace.default.Unfair_ToS", "workspace.default.unfair_tos"),
    ],
)
def test_invalid_unity_catalog_name_says_how_to_fix_it(name, message):
    with pytest.raises(ValueError, match=message):
        registered_model_name(name, registry_uri="databricks-uc")


def test_local_registry_keeps_the_plain_name():
    assert registered_model_name(registry_uri="sqlite:///mlflow.db") == (
        "lexglue-unfair-tos-classifier"
    )
    assert registered_model_name("my-model", registry_uri="sqlite:///x.db") == "my-model"


def test_databricks_tracking_registers_in_unity_catalog_by_default(tmp_path):
    """MLflow 3 itself turns tracking `databricks` into registry `databricks-uc` (run apart,
    so no other test's tracking URI leaks in)."""
    code = (
        "import mlflow\n"
        "from custom_module import tracking\n"
        "print(mlflow.get_registry_uri())\n"
        "print(tracking.registered_model_name())\n"
        f"print(tracking.experiment_path('lexglue', mlflow.get_tracking_uri(), user={USER!r}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": "databricks",
        **DATABRICKS_ENV,
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    assert result.stdout.split() == [
        "databricks-uc",
        "workspace.default.unfair_tos_classifier",
        f"/Users/{USER}/lexglue",
    ], result.stderr[-2000:]


# --- data: local copy or hub -----------------------------------------------------------------


def test_lexglue_path_is_a_local_offline_source():
    source = data_source(environ={"LEXGLUE_PATH": "/Volumes/workspace/default/lexglue"})
    assert source == DataSource("/Volumes/workspace/default/lexglue", "LEXGLUE_PATH", True)


def test_argument_wins_over_lexglue_path(tmp_path):
    source = data_source(str(tmp_path), environ={"LEXGLUE_PATH": "/elsewhere"})
    assert (source.location, source.origin) == (str(tmp_path), "data_path")


def test_shared_copy_beside_the_repository_is_used_when_nothing_is_configured(tmp_path):
    source = data_source(environ={}, shared_copy=tmp_path)
    assert (source.location, source.origin, source.offline) == (str(tmp_path), "shared copy", True)


def test_without_a_local_copy_the_hub_is_used_online(tmp_path):
    source = data_source(environ={}, shared_copy=tmp_path / "absent")
    assert (source.location, source.offline) == ("coastalcph/lex_glue", False)
    assert "needs the network" in source.describe()


@pytest.mark.parametrize("value", ["1", "true", "ON"])
def test_hf_hub_offline_makes_the_hub_source_offline(tmp_path, value):
    source = data_source(environ={"HF_HUB_OFFLINE": value}, shared_copy=tmp_path / "absent")
    assert source.offline and not source.local


def test_offline_mode_is_read_as_datasets_reads_it(tmp_path):
    # HF_DATASETS_OFFLINE, when set, wins over HF_HUB_OFFLINE (datasets/config.py).
    environ = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "0"}
    assert not data_source(environ=environ, shared_copy=tmp_path / "absent").offline


def test_volumes_folder_is_read_like_any_local_copy(monkeypatch):
    # /Volumes/<catalog>/<schema>/<volume>/... is a plain folder on Databricks; here a path
    # that does not exist must fail as a local folder, never fall through to the hub.
    monkeypatch.setenv("LEXGLUE_PATH", "/Volumes/workspace/default/lexglue/lex_glue")
    with pytest.raises(FileNotFoundError, match="/Volumes/workspace/default/lexglue/lex_glue"):
        data.resolve_data_path()


@pytest.fixture
def no_local_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LEXGLUE_PATH", raising=False)
    monkeypatch.setattr(data, "SHARED_DATA", tmp_path / "absent")


def test_offline_without_a_local_copy_names_both_remedies(monkeypatch, tmp_path, no_local_copy):
    # The real `load_dataset`, kept off the network by offline mode and an empty cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConnectionError) as caught:
        data.load_unfair_tos()
    message = str(caught.value)
    assert "offline mode is on" in message
    assert "LEXGLUE_PATH" in message and "unset HF_HUB_OFFLINE" in message


def test_unreachable_hub_names_both_remedies(monkeypatch, no_local_copy):
    def unreachable(*args, **kwargs):
        # What datasets 5 raises when huggingface.co does not resolve (checked by hand).
        raise ConnectionError(
            "Couldn't reach 'coastalcph/lex_glue' on the Hub (LocalEntryNotFoundError)"
        )

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(data, "load_dataset", unreachable)
    with pytest.raises(ConnectionError, match="could not be reached") as caught:
        data.load_unfair_tos()
    assert "LEXGLUE_PATH" in str(caught.value) and "connect to the network" in str(caught.value)
