"""Colab, simulated without a network: its environment variable, a stand-in `google.colab` whose
`drive.mount` links the mount point to one folder (the learner's Google Drive), and runtimes that
are separate processes, each with its own `/content` and its own clone of the repository.

The setup cell's own source is executed (IPython turns its `!` and `%` lines into calls on
`get_ipython()`, answered here by a stand-in shell) up to the clone; what the cell does after the
clone, the runtimes below do with the same calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import platform_setup
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from platform_setup import DRIVE_STORE_FOLDER, use_drive_store

from custom_module.run_notebooks import NOTEBOOK_DIR, NOTEBOOKS
from data import data_source

REPO_ROOT = Path(__file__).resolve().parents[1]
COLAB_ENV = {"COLAB_RELEASE_TAG": "release-colab_20250101-060000_RC00"}
STAMPED = "https://github.com/ada/lexglue-lora-mlflow"
EXPERIMENT = "colab-chain"
STAND_IN_DRIVE = '''"""Stand-in for google.colab.drive: mounting links the mount point to
STAND_IN_DRIVE, a folder that outlives every simulated runtime, as the learner's Drive does."""
import os


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    if not os.path.exists(mountpoint):
        os.makedirs(os.path.dirname(mountpoint), exist_ok=True)
        os.symlink(os.environ["STAND_IN_DRIVE"], mountpoint)
'''


def setup_source(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


class ShellCalled(Exception):
    """The cell reached its first `!` or `%` line: on Colab that is the clone."""


class ColabShell:
    """Answers `get_ipython()` for a cell: records the first shell command or magic, with its
    `{variables}` expanded as IPython does, and stops the cell there."""

    def __init__(self) -> None:
        self.namespace: dict = {"get_ipython": lambda: self}
        self.calls: list[str] = []

    def run(self, source: str) -> ColabShell:
        """Execute a cell's source as IPython would, up to its first shell command."""
        code = TransformerManager().transform_cell(source)
        with suppress(ShellCalled):
            exec(code, self.namespace)  # noqa: S102 (a cell of our own notebooks)
        return self

    def system(self, command: str) -> None:
        self.calls.append(command.format(**self.namespace))
        raise ShellCalled

    def run_line_magic(self, name: str, line: str) -> None:
        self.calls.append(f"%{name} {line}")
        raise ShellCalled


@pytest.fixture
def fresh_colab_runtime(monkeypatch, tmp_path) -> None:
    """Colab's variable set, and a working folder with no checkout above it, as /content is."""
    monkeypatch.setenv("COLAB_RELEASE_TAG", COLAB_ENV["COLAB_RELEASE_TAG"])
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    (tmp_path / "content").mkdir()
    monkeypatch.chdir(tmp_path / "content")


def test_every_notebook_has_the_same_setup_cell_of_at_most_eight_lines():
    sources = {name: setup_source(NOTEBOOK_DIR / name) for name in NOTEBOOKS}
    assert len(set(sources.values())) == 1, sorted(sources)
    (source,) = set(sources.values())
    assert len(source.splitlines()) <= 8
    assert "platform_setup.py" in source  # which installs with constraints/colab.txt (below)


def test_the_placeholder_url_stops_the_colab_setup_before_anything_is_cloned(fresh_colab_runtime):
    shell = ColabShell()
    with pytest.raises(AssertionError) as stopped:
        shell.run(setup_source(NOTEBOOK_DIR / NOTEBOOKS[0]))
    assert shell.calls == []  # no git clone, no pip: the cell stopped first ...
    command = re.search(r"scripts/\S+\.py", str(stopped.value))  # ... and named the fix
    assert command and (REPO_ROOT / command[0]).is_file()
    assert "REPOSITORY_URL" in str(stopped.value)


def test_off_colab_and_databricks_the_setup_cell_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.chdir(tmp_path)
    assert ColabShell().run(setup_source(NOTEBOOK_DIR / NOTEBOOKS[0])).calls == []


def test_the_setup_takes_torchs_range_from_pyproject_and_knows_an_installed_clone():
    assert platform_setup.torch_range().split(">")[0].split("<")[0] == "torch"
    assert platform_setup.torch_range() in (REPO_ROOT / "pyproject.toml").read_text()
    assert platform_setup.installed_here()  # this checkout is installed in this interpreter


def test_a_clone_importable_but_not_installed_gets_installed(monkeypatch):
    """Databricks puts a Git folder's root on the path: importable, but its dependencies are not
    there until the install."""
    monkeypatch.setattr(platform_setup, "installed", lambda distribution: None)
    assert not platform_setup.installed_here()


def stamp(root: Path, *arguments: str) -> subprocess.CompletedProcess:
    script = REPO_ROOT / "scripts" / "stamp_repository_url.py"
    command = [sys.executable, str(script), "--root", str(root), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_committed_copies_of_the_repository_url_agree_with_the_recorded_one():
    result = stamp(REPO_ROOT, "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stamped_url_reaches_the_links_and_the_setup_cells_which_then_clone_it(
    tmp_path, fresh_colab_runtime
):
    copy = tmp_path / "repository"
    for part in ("notebooks", "custom_module"):
        shutil.copytree(REPO_ROOT / part, copy / part, ignore=shutil.ignore_patterns("__py*"))
    shutil.copy(REPO_ROOT / "README.md", copy / "README.md")
    before = {p.name: json.loads(p.read_text()) for p in (copy / "notebooks").glob("*.ipynb")}

    result = stamp(copy, STAMPED)
    assert result.returncode == 0, result.stderr
    assert stamp(copy, "--check").returncode == 0

    for name, notebook in before.items():
        source = setup_source(copy / "notebooks" / name)
        shell = ColabShell().run(source)
        assert shell.calls and "git clone" in shell.calls[0]
        assert f"{STAMPED}.git" in shell.calls[0].split()
        # Only the setup cell changed, and in it only the URL.
        after = json.loads((copy / "notebooks" / name).read_text())
        setup = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code")
        assert after["cells"][:setup] + after["cells"][setup + 1 :] == (
            notebook["cells"][:setup] + notebook["cells"][setup + 1 :]
        )
        assert source == setup_source(NOTEBOOK_DIR / name).replace(
            "https://github.com/OWNER/lexglue-lora-mlflow.git", f"{STAMPED}.git"
        )
    readme = (copy / "README.md").read_text()
    links = re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/", readme)
    assert links and set(links) == {"ada/lexglue-lora-mlflow"}
    assert not re.findall(r"github\.com/OWNER/", readme)  # nor the quick start's clone URL


def test_a_url_that_is_not_on_github_is_refused(tmp_path):
    shutil.copytree(REPO_ROOT / "custom_module", tmp_path / "custom_module")
    assert stamp(tmp_path, "git@gitlab.com:ada/lexglue-lora-mlflow.git").returncode == 2


# --- the store, across runtimes --------------------------------------------------------------


@pytest.fixture
def google_drive(tmp_path, monkeypatch) -> Iterator[Path]:
    """The learner's Google Drive (a folder with `MyDrive`), and a stand-in `google.colab` that
    mounts it; both importable in this process and in the runtimes it starts."""
    drive = tmp_path / "google-drive"
    (drive / "MyDrive").mkdir(parents=True)
    stand_in = tmp_path / "stand-in"
    (stand_in / "google" / "colab").mkdir(parents=True)  # `google` stays a namespace package
    (stand_in / "google" / "colab" / "__init__.py").write_text("")
    (stand_in / "google" / "colab" / "drive.py").write_text(STAND_IN_DRIVE)
    monkeypatch.setenv("STAND_IN_DRIVE", str(drive))
    monkeypatch.syspath_prepend(str(stand_in))
    yield drive
    for name in ("google.colab.drive", "google.colab"):
        sys.modules.pop(name, None)


# What the setup cell runs after the clone, in a runtime whose clone is `clone`.
AFTER_CLONE = """
import sys
sys.path[:0] = [{clone!r}, {clone!r} + "/notebooks"]
import custom_module
assert custom_module.__file__.startswith({clone!r}), custom_module.__file__  # never the checkout
from platform_setup import use_drive_store
print(use_drive_store(mount_point={mount!r}))
"""
# How notebook 02 files its run: the experiment made by configure_tracking, a run, its config.
NOTEBOOK_02 = """
import dataclasses
import mlflow
from custom_module.config import preset
from custom_module.tracking import CONFIG_ARTIFACT
from custom_module.tracking import configure_tracking
config = preset("smoke", experiment_name={experiment!r})
mlflow.set_experiment(configure_tracking(config.experiment_name))
with mlflow.start_run(run_name=config.run_name) as run:
    mlflow.log_params(config.as_params())
    mlflow.log_dict(dataclasses.asdict(config), CONFIG_ARTIFACT)
print(run.info.run_id)
"""
# How notebook 03 finds it: the latest finished run of the experiment, and the config it logged.
NOTEBOOK_03 = """
from custom_module.tracking import run_config
from custom_module.tracking import find_run
run = find_run(None, {experiment!r})
print(run.info.run_id)
print(run_config(run.info.run_id).preset)
"""


def run_in_a_fresh_runtime(runtime: Path, notebook: str, google_drive: Path) -> list[str]:
    """`notebook`'s code in a new process that stands for a Colab runtime: its own /content
    with its own clone of this repository, Colab's variable, no MLFLOW_TRACKING_URI."""
    clone = runtime / "content" / "lexglue-lora-mlflow"
    shutil.copytree(
        REPO_ROOT / "custom_module", clone / "custom_module", ignore=shutil.ignore_patterns("__py*")
    )
    (clone / "notebooks").mkdir()
    shutil.copy(NOTEBOOK_DIR / "platform_setup.py", clone / "notebooks")
    code = AFTER_CLONE.format(clone=str(clone), mount=str(runtime / "content" / "drive"))
    code += notebook.format(experiment=EXPERIMENT)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environ.update(COLAB_ENV, PYTHONPATH=str(google_drive.parent / "stand-in"))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=clone / "notebooks",
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


@pytest.mark.notebook
def test_notebook_03_in_its_own_runtime_finds_the_run_notebook_02_logged_in_another(
    tmp_path, google_drive
):
    store_02, run_id = run_in_a_fresh_runtime(tmp_path / "runtime-02", NOTEBOOK_02, google_drive)
    shutil.rmtree(tmp_path / "runtime-02")  # 02's runtime is recycled, its disk with it
    store_03, *found = run_in_a_fresh_runtime(tmp_path / "runtime-03", NOTEBOOK_03, google_drive)
    assert found == [run_id, "smoke"]  # the run, and its config.json artifact
    # Each runtime reached the one database on Drive through its own mount point.
    assert [store_02, store_03] == [
        f"sqlite:///{tmp_path / runtime / 'content' / 'drive' / DRIVE_STORE_FOLDER / 'mlflow.db'}"
        for runtime in ("runtime-02", "runtime-03")
    ]
    assert (google_drive / DRIVE_STORE_FOLDER / "mlflow.db").is_file()


def test_a_tracking_uri_the_learner_set_is_kept_and_drive_is_not_mounted(tmp_path, google_drive):
    environ = {"MLFLOW_TRACKING_URI": "databricks"}
    assert use_drive_store(mount_point=str(tmp_path / "drive"), environ=environ) == "databricks"
    assert not (tmp_path / "drive").exists()


def test_a_store_left_in_wal_mode_is_switched_back_to_a_rollback_journal(tmp_path, google_drive):
    database = google_drive / DRIVE_STORE_FOLDER / "mlflow.db"
    database.parent.mkdir(parents=True)
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE kept (x)")
    environ: dict[str, str] = {}
    uri = use_drive_store(mount_point=str(tmp_path / "drive"), environ=environ)
    assert uri == f"sqlite:///{tmp_path / 'drive' / DRIVE_STORE_FOLDER / 'mlflow.db'}"
    assert environ["MLFLOW_TRACKING_URI"] == uri  # for every process the notebook starts
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("kept",)]


# --- a whole runtime: the setup cell installs the clone, notebook 05 trains through it ----------


@pytest.fixture
def published_repository(tmp_path) -> str:
    """This checkout's files (committed or not, less what git ignores) as a repository of their
    own, at a file URL: what the setup cell clones."""
    origin = tmp_path / "origin"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, origin / name)
    git = ["git", "-c", "user.name=publisher", "-c", "user.email=publisher@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "published"]):
        subprocess.run([*git, *command], cwd=origin, check=True)
    return f"file://{origin}"


@pytest.fixture
def python_without_the_tutorial(tmp_path) -> Path:
    """A Python with the tutorial's dependencies, as Colab's has its own, but not the tutorial: a
    venv that reads this one's packages (not its editable install of the checkout)."""
    venv = tmp_path / "colab-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv)})["purelib"])
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import importlib.util as u; print(u.find_spec('custom_module'))"]
    found = subprocess.run(probe, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert found == "None", found
    return python


def mlflow_runs(store: str) -> dict[str, str]:
    """Each run's status by its name, read from the sqlite store itself."""
    with closing(sqlite3.connect(store.removeprefix("sqlite:///"))) as connection:
        return dict(connection.execute("SELECT name, status FROM runs").fetchall())


CHECK_CELL = """import sys, custom_module
print("package:", custom_module.__file__)
print("python:", sys.executable)"""


@pytest.mark.notebook
def test_on_colab_the_setup_cell_installs_the_clone_so_05s_kernels_and_processes_import_it(
    tmp_path, published_repository, python_without_the_tutorial
):
    """Notebook 05 as a Colab runtime runs it: its setup cell clones the repository and installs it
    (pip, against a constraints file that keeps this Python's torch, numpy, pandas and kernel, as
    constraints/colab.txt keeps Colab's); then its sweep trains in a papermill child kernel and
    its crash is a `python -m custom_module.train` process, killed and resumed: both must import
    the package from the clone, which only the install gives them."""
    notebook = json.loads((NOTEBOOK_DIR / "05_workshop_sweep_and_resume.ipynb").read_text())
    setup = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code")
    source = "".join(notebook["cells"][setup]["source"])
    notebook["cells"][setup]["source"] = source.replace(
        "https://github.com/OWNER/lexglue-lora-mlflow.git", published_repository
    )
    check = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    notebook["cells"].insert(setup + 1, {**check, "source": CHECK_CELL})
    (tmp_path / "05.ipynb").write_text(json.dumps(notebook))
    kept = [
        line.split("==")[0]
        for line in (REPO_ROOT / "constraints" / "colab.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    constraints = tmp_path / "constraints.txt"
    versions = {name: platform_setup.installed(name) for name in kept}
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in versions.items() if v))
    content = tmp_path / "content"
    content.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    environ.update(COLAB_ENV, PIP_CONSTRAINT=str(constraints), MLFLOW_TRACKING_URI=store)
    if data_source().local:  # the clone is not beside ../shared: name the copy
        environ["LEXGLUE_PATH"] = data_source().location
    command = [
        str(python_without_the_tutorial), "-m", "papermill", str(tmp_path / "05.ipynb"),
        str(tmp_path / "05-out.ipynb"), "--cwd", str(content), "-k", "python3",
        "-p", "sweep_preset", "smoke", "-y", "sweep_values: [8]",
    ]  # fmt: skip
    result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]

    executed = json.loads((tmp_path / "05-out.ipynb").read_text())["cells"]
    printed = "".join("".join(o.get("text", [])) for o in executed[setup + 1]["outputs"])
    clone = content / "lexglue"
    assert f"package: {clone / 'custom_module' / '__init__.py'}" in printed
    assert f"python: {python_without_the_tutorial}" in printed
    runs = mlflow_runs(store)
    assert runs["r=8"] == "FINISHED"  # trained in notebook 02's child kernel
    assert runs["crash and resume"] == "FINISHED"  # killed, then resumed, by processes
