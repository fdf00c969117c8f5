"""What a run logged, as names and paths: compared between the notebook and the CLI."""

from __future__ import annotations

import re

import mlflow

# TensorBoard names its event files after the time, host and process that wrote them.
EVENT_FILE = re.compile(r"events\.out\.tfevents\.\d+\..+\.\d+\.(\d+)$")


def artifact_paths(run_id: str, path: str = "") -> list[str]:
    client = mlflow.MlflowClient()
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(run_id, item.path) if item.is_dir else [item.path]
    return found


def logged_layout(run_id: str) -> dict[str, list[str]]:
    """What a run logged, without the values: names of params, metrics, tags; artifact paths."""
    run = mlflow.get_run(run_id)
    return {
        "params": sorted(run.data.params),
        "metrics": sorted(run.data.metrics),
        "tags": sorted(tag for tag in run.data.tags if not tag.startswith("mlflow.")),
        "artifacts": sorted(
            EVENT_FILE.sub(r"events.out.tfevents.TIME.HOST.PID.\1", path)
            for path in artifact_paths(run_id)
        ),
    }
