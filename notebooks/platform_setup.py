"""The setup cell's second half, on Colab and Databricks only (`%run .../platform_setup.py`):
install this repository as a package, so that the kernels and processes notebooks 05 and 06 start
import it too; keep the platform's own stack; restart Python only where the install changed a
package this kernel had already loaded; on Colab, keep the MLflow store on Google Drive; then work
from notebooks/, as everywhere else.

Only the standard library: nothing of the tutorial is installed yet. docs/platforms.md says what
each step does and why.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import MutableMapping
from contextlib import closing
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

from IPython import get_ipython

REPOSITORY = Path(__file__).resolve().parents[1]
# Colab keeps its own torch, numpy, pandas and kernel (a file of versions from its image).
COLAB_CONSTRAINTS = REPOSITORY / "constraints" / "colab.txt"
COLAB_EXTRAS = "batch,onnx"  # 05 and 06 run notebook 02 in papermill kernels
# Databricks serverless: no JupyterLab or papermill (docs/platforms.md: 05 and 06 run elsewhere),
# and PyTorch's CPU build (a 192 MB wheel) where the workspace reaches its index.
DATABRICKS_EXTRAS = "onnx"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
COLAB_DRIVE = "/content/drive"
DRIVE_STORE_FOLDER = "MyDrive/lexglue-lora-mlflow"


def pip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    """`pip install` into this kernel's own Python, which the processes it starts use too."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", *arguments]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return result


def loaded_versions() -> dict[str, str | None]:
    """The installed version of every distribution this kernel has imported something from
    (None: no longer installed)."""
    importlib.invalidate_caches()
    owners = packages_distributions()
    modules = {name.partition(".")[0] for name in list(sys.modules)}
    return {dist: installed(dist) for module in modules for dist in owners.get(module, ())}


def installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def project() -> dict:
    """pyproject.toml's `[project]`: the package's name and its requirements (their one home)."""
    return tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]


def torch_range() -> str:
    """The requirement on torch, e.g. `torch>=2.5,<2.15`."""
    return next(line for line in project()["dependencies"] if re.match(r"torch\W", line))


def install(extras: str, constraints: Path | None) -> list[str]:
    """Install the repository (editable) with `extras`; return the loaded distributions it
    changed. A constraints file the learner set in PIP_CONSTRAINT replaces `constraints`."""
    before = loaded_versions()
    own = constraints and not os.environ.get("PIP_CONSTRAINT")
    pip(*(["-c", str(constraints)] if own else []), "-e", f"{REPOSITORY}[{extras}]")
    after = loaded_versions()
    return sorted(f"{d} {v} -> {after.get(d)}" for d, v in before.items() if after.get(d) != v)


def use_drive_store(
    mount_point: str = COLAB_DRIVE, environ: MutableMapping[str, str] | None = None
) -> str:
    """`MLFLOW_TRACKING_URI` if set, else (and then set to) a sqlite file on Google Drive: each
    notebook runs in a runtime whose disk goes with it, and Drive outlives them."""
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
    """Switch the database to a rollback journal and try its write lock, before MLflow opens it:
    WAL fails on Drive's FUSE mount (`-shm` is not kept coherent) and, once set, persists."""
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


def restart(changed: list[str]) -> None:
    """Restart Python: modules already loaded would mix old and new versions."""
    print(f"Restarting Python, as the install changed what it had loaded: {', '.join(changed)}.")
    print("Run this cell again once it has restarted (the install is kept), then the rest.")
    sys.stdout.flush()  # the kernel's output thread sends it before the process goes
    namespace = get_ipython().user_ns
    if "dbutils" in namespace:  # Databricks
        namespace["dbutils"].library.restartPython()
    else:  # Colab starts a new kernel in the same runtime, as its "Restart session" does
        os.kill(os.getpid(), signal.SIGKILL)


def installed_here() -> bool:
    """True once this clone is installed and imported (in a new kernel after the install: a
    restarted one, or one that notebooks 05 and 06 start). Importable alone is not enough: a
    Databricks Git folder puts its root on the path before anything is installed."""
    spec = importlib.util.find_spec("custom_module")
    here = bool(spec and spec.origin and Path(spec.origin).is_relative_to(REPOSITORY))
    return here and installed(project()["name"]) is not None


def main() -> None:
    if installed_here():
        changed = []
    elif "COLAB_RELEASE_TAG" in os.environ:
        changed = install(COLAB_EXTRAS, COLAB_CONSTRAINTS)
    else:
        cpu = pip(torch_range(), "--index-url", CPU_TORCH_INDEX, check=False)
        if cpu.returncode:
            print(f"{CPU_TORCH_INDEX} is out of reach: PyPI's torch follows (a CUDA build, GBs).")
        changed = install(DATABRICKS_EXTRAS, None)
    if changed:
        restart(changed)
    # This kernel started before the install: it finds the package through the path instead.
    sys.path.insert(0, str(REPOSITORY))
    os.chdir(REPOSITORY / "notebooks")  # where the notebooks' relative paths start
    if "COLAB_RELEASE_TAG" in os.environ:
        print(f"MLflow store: {use_drive_store()}")


if __name__ == "__main__":
    main()
