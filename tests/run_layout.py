"""What several test files do, written once: run a command line as a reader types it, read a
run's artifact paths and a metric by step, check that no metric is logged twice for one step."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import mlflow

from custom_module.config import MONITOR
from custom_module.processes import kill_tree

# What notebook 04 registers in the test store (conftest.py's `evaluated_and_served`).
TEST_MODEL_NAME = "tests-unfair-tos"


def command_line(module: str, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m module arguments` in another process (with this test session's environment and
    store), its output captured as text. On a hang it kills the process with everything below it
    (papermill's kernel, DDP's ranks), so that nothing is left running."""
    command = [sys.executable, "-m", module, *arguments]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(process)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def printed_run_id(output: str) -> str:
    """The run id `python -m custom_module.train` prints last (`run_id: ...`)."""
    return output.split("run_id: ")[-1].split()[0]


def failed_saying(result: subprocess.CompletedProcess, *messages: str) -> None:
    """The command exited 1 and said each message on stderr: what a reader sees of an error."""
    assert result.returncode == 1, result.stdout[-2000:]
    for message in messages:
        assert message in result.stderr, result.stderr[-2000:]


def artifact_paths(run_id: str, path: str = "") -> list[str]:
    client = mlflow.MlflowClient()
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(run_id, item.path) if item.is_dir else [item.path]
    return found


def assert_each_step_logged_once(run_id: str) -> None:
    """No (metric, step) pair of training twice, system metrics included: one monitor, one logger,
    even across a crash and a resume or several ranks. (Notebook 03's `Eval_*` metrics are logged
    again by each evaluation of the run.)"""
    client, metrics = mlflow.MlflowClient(), mlflow.get_run(run_id).data.metrics
    for name in (name for name in metrics if not name.startswith("Eval_")):
        steps = Counter(m.step for m in client.get_metric_history(run_id, name))
        assert max(steps.values()) == 1, f"{name}: {steps.most_common(1)}"


def by_step(run_id: str, name: str = MONITOR, tracking_uri: str | None = None) -> dict[int, float]:
    """A metric's values by step (the epoch, for the module's metrics), in step order."""
    history = mlflow.MlflowClient(tracking_uri).get_metric_history(run_id, name)
    return {m.step: m.value for m in sorted(history, key=lambda m: m.step)}
