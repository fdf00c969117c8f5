"""What the Makefile exports: offline mode for the data only, when a local copy is used."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make_environment(repo: Path, **environ: str) -> dict[str, str]:
    """What `make` exports, in a copy of the Makefile placed at `repo`, started with `environ`."""
    shutil.copy(REPO_ROOT / "Makefile", repo / "Makefile")
    show = (
        "show-env: ; @echo HF_DATASETS_OFFLINE=$$HF_DATASETS_OFFLINE "
        "HF_HUB_OFFLINE=$$HF_HUB_OFFLINE LEXGLUE_PATH=$$LEXGLUE_PATH"
    )
    result = subprocess.run(
        ["make", "-s", "-C", str(repo), "--eval", show, "show-env"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **environ},
        check=True,
    )
    return dict(item.split("=", 1) for item in result.stdout.split())


def test_make_uses_the_hub_online_when_no_local_copy_exists(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    assert make_environment(repo) == {
        "HF_DATASETS_OFFLINE": "",
        "HF_HUB_OFFLINE": "",
        "LEXGLUE_PATH": "",
    }


def test_make_goes_offline_with_the_shared_copy_beside_the_repository(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    shared = tmp_path / "shared" / "data" / "lex_glue"
    shared.mkdir(parents=True)
    exported = make_environment(repo)
    # The data only: the model hub stays reachable, for roberta-base on a GPU machine.
    assert (exported["HF_DATASETS_OFFLINE"], exported["HF_HUB_OFFLINE"]) == ("1", "")
    assert Path(exported["LEXGLUE_PATH"]).resolve() == shared.resolve()


def test_make_goes_offline_with_lexglue_path(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    exported = make_environment(repo, LEXGLUE_PATH="/Volumes/workspace/default/lexglue")
    assert exported == {
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "",
        "LEXGLUE_PATH": "/Volumes/workspace/default/lexglue",
    }


def test_make_keeps_offline_mode_the_user_asked_for(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    assert make_environment(repo, HF_HUB_OFFLINE="1")["HF_HUB_OFFLINE"] == "1"


def test_setup_stops_on_an_older_python_before_creating_anything(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    shutil.copy(REPO_ROOT / "Makefile", repo / "Makefile")
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        (repo / name).touch()
    # A python3 that reports 3.10, as Ubuntu 22.04's does.
    old_python = tmp_path / "python3.10"
    old_python.write_text(
        "#!/bin/sh\nexec " + sys.executable + " -c "
        "\"import sys; sys.version_info = (3, 10, 12, 'final', 0); sys.version = '3.10.12'; "
        'exec(sys.argv[1])" "$2"\n'
    )
    old_python.chmod(0o755)
    result = subprocess.run(
        ["make", "-s", "-C", str(repo), "setup", f"PYTHON3={old_python}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "3.11" in result.stderr and "3.10.12" in result.stderr
    assert not (repo / ".venv").exists()


def test_make_ui_says_which_port_is_taken_before_starting_anything(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
        (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
        for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
            (tmp_path / name).touch()
        (tmp_path / ".venv" / ".installed").touch()  # set up: newer than what it installs
        result = subprocess.run(
            ["make", "-s", "-C", str(tmp_path), "ui", f"UI_PORT={port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"Port {port} is taken by another program: make ui UI_PORT=<another port>" in (
        result.stderr
    )


def test_the_ci_workflow_uses_current_actions_and_colabs_python_too():
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    for step in (s for s in steps if "uses" in s):
        action, major = step["uses"].split("@v")
        assert int(major) >= 6, f"{action} v{major} runs on Node 20, which runners dropped"
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    versions = workflow["jobs"]["unit"]["strategy"]["matrix"]["python-version"]
    assert {"3.11", "3.13"} <= set(versions)
    assert "make test " in workflow["jobs"]["full"]["steps"][-1]["run"] + " "
