"""A training run that dies the hard way, to show (and test) resuming it.

`train_then_kill(...)` starts `python -m custom_module.train` in another process and SIGKILLs
it, kernel included, as soon as the run has logged its first checkpoint: like a machine that
loses power mid-epoch. The MLflow run stays `RUNNING`, with the checkpoint of epoch 0;
`python -m custom_module.train --resume RUN_ID` continues it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil

from custom_module.checkpoints import logged_epochs


def first_checkpointed_run(experiment_name: str, started_after_ms: int) -> str | None:
    """A run of the experiment that started after `started_after_ms`, is still running and has
    logged a checkpoint file; None while there is none."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"attributes.status = 'RUNNING' and attributes.start_time > {started_after_ms}"
        ),
        output_format="list",
    )
    return next((r.info.run_id for r in runs if logged_epochs(r.info.run_id)), None)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and every process below it (papermill's kernel does the training)."""
    family = psutil.Process(process.pid).children(recursive=True)
    for member in [*family, psutil.Process(process.pid)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # it may have exited already
            member.send_signal(signal.SIGKILL)
    process.wait()


def train_then_kill(
    experiment_name: str, output: Path, timeout_seconds: float = 600, **parameters
) -> str:
    """Train with notebook 02's `parameters` in another process; kill it once epoch 0 is
    checkpointed. Returns the id of the run it leaves behind, still `RUNNING`."""
    command = [sys.executable, "-m", "custom_module.train", "--output", str(output)]
    command += ["--experiment-name", experiment_name]
    for name, value in parameters.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    started = int(time.time() * 1000)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline:
            run_id = first_checkpointed_run(experiment_name, started)
            if run_id is not None:
                kill_tree(process)
                return run_id
            if process.poll() is not None:
                raise RuntimeError(
                    "Training ended before its first checkpoint:\n"
                    + process.stderr.read().decode(errors="replace")[-3000:]
                )
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            kill_tree(process)
    raise TimeoutError(f"No checkpoint was logged within {timeout_seconds:.0f} s.")
