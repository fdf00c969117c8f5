"""The interactive start: `make lab` opens JupyterLab with the repository's Python as the kernel,
`make ui` the MLflow UI on the store it is given; both on 127.0.0.1 only, and stopped by pid."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import psutil
import pytest

from custom_module.processes import free_port, serving

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
    pytest.mark.skipif(
        Path(sys.prefix).resolve() != (REPO_ROOT / ".venv").resolve(),
        reason="make lab and make ui start the repository's .venv",
    ),
]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def make(target: str, **variables: str) -> list[str]:
    command = ["make", "-s", "-C", str(REPO_ROOT), target]
    return command + [f"{name}={value}" for name, value in variables.items()]


def kernel_interpreters(server: subprocess.Popen) -> list[str]:
    """The interpreters of the IPython kernels running under `server`."""
    children = psutil.Process(server.pid).children(recursive=True)
    return [child.cmdline()[0] for child in children if "ipykernel_launcher" in child.cmdline()]


def test_make_lab_serves_the_notebooks_with_the_repository_kernel():
    port, token = free_port(), "tutorial-test"
    command = make(
        "lab", LAB_PORT=str(port), LAB_ARGS=f"--no-browser --IdentityProvider.token={token}"
    )
    base = f"http://127.0.0.1:{port}/api"
    with serving(command, f"{base}/contents?token={token}") as lab:
        contents = get_json(f"{base}/contents?token={token}")
        start = urllib.request.Request(f"{base}/kernels?token={token}", data=b"{}", method="POST")
        with urllib.request.urlopen(start, timeout=60) as response:
            assert response.status == 201  # a kernel of the default kind was started
        interpreters = kernel_interpreters(lab)
    assert interpreters == [sys.executable]  # .venv's Python, the one the tests run with
    names = {item["name"] for item in contents["content"]}
    assert "02_peft_training.ipynb" in names  # it opens in notebooks/


def test_make_ui_shows_the_store_it_is_given(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = mlflow.MlflowClient(tracking_uri=store).create_experiment("ui-check")
    port = free_port()
    with serving(make("ui", UI_STORE=store, UI_PORT=str(port)), f"http://127.0.0.1:{port}/health"):
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id="
        experiment = get_json(url + experiment_id)["experiment"]
    assert experiment["name"] == "ui-check"
