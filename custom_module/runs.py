"""Reading runs back from MLflow: per-epoch metrics, system metrics, what was logged, and the
child runs of a sweep side by side (notebook 05), found by the tag MLflow links them with."""

import tempfile

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Run

from custom_module.checkpoints import checkpoint_paths, tagged_best_epoch
from custom_module.config import MONITOR
from custom_module.tracking import PARENT_TAG, get_run

TENSORBOARD_ARTIFACTS = "tensorboard"
EPOCH_METRICS = ("Train_Loss", "Val_Loss", "Train_F1_Score", "Val_Precision", "Val_Recall")
EPOCH_METRICS += (MONITOR, "Val_PR_AUC")
SYSTEM_METRICS = {
    "system/cpu_utilization_percentage": "CPU utilisation (%)",
    "system/system_memory_usage_megabytes": "memory used (MB)",
}
# MLflow's series per GPU N where NVML (nvidia-ml-py) finds one: system/gpu_N_<suffix>.
GPU_METRICS = {
    "utilization_percentage": "GPU {} utilisation (%)",
    "memory_usage_megabytes": "GPU {} memory (MB)",
}


def epoch_table(run_id: str, names: tuple[str, ...] = EPOCH_METRICS) -> pd.DataFrame:
    """One row per epoch (autolog's step, from 0 like `checkpoints/epoch_0`), one per metric."""
    client = mlflow.MlflowClient()
    columns = {
        name: {m.step: round(m.value, 4) for m in client.get_metric_history(run_id, name)}
        for name in names
    }
    return pd.DataFrame(columns).sort_index().rename_axis("epoch")


def tensorboard_scalars(run_id: str) -> pd.Series:
    """Per scalar tag of a run's TensorBoard event files: "same values" as the MLflow metric of
    that name, "different values", or "not in MLflow": the TensorBoard logger adds files only."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory() as scratch:
        folder = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=TENSORBOARD_ARTIFACTS, dst_path=scratch
        )
        events = EventAccumulator(folder).Reload()
    rows = {}
    for tag in sorted(events.Tags()["scalars"]):
        values = [event.value for event in events.Scalars(tag)]
        history = client.get_metric_history(run_id, tag)
        logged = [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
        same = len(logged) == len(values) and np.allclose(values, logged, rtol=1e-6, atol=1e-6)
        rows[tag] = "same values" if same else "different values" if logged else "not in MLflow"
    return pd.Series(rows, name="MLflow metric")


def system_metrics(run_id: str) -> pd.DataFrame:
    """The run's CPU, memory and (where sampled) GPU series, by minutes since the first sample."""
    client, names = mlflow.MlflowClient(), dict(SYSTEM_METRICS)
    for name in sorted(get_run(run_id).data.metrics):
        gpu, _, suffix = name.removeprefix("system/gpu_").partition("_")
        if name.startswith("system/gpu_") and suffix in GPU_METRICS:
            names[name] = GPU_METRICS[suffix].format(gpu)
    columns = {
        label: {m.timestamp: m.value for m in client.get_metric_history(run_id, name)}
        for name, label in names.items()
    }
    table = pd.DataFrame(columns).sort_index()
    table.index = ((table.index - table.index.min()) / 60_000).round(2).rename("minutes")
    return table


def child_runs(parent_run_id: str) -> list[Run]:
    """The runs filed under `parent_run_id`, oldest first; LookupError if none (or no such run)."""
    parent = get_run(parent_run_id)
    children = mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    if not children:
        raise LookupError(f"Run {parent_run_id} has no child runs: it is not a sweep's parent.")
    return children


def checkpoint_megabytes(run: str | Run, epoch: int) -> float:
    """Size of the run's checkpoint file of `epoch`, in MB."""
    run = get_run(run)
    path = checkpoint_paths(run)[epoch]
    folder, client = path.rsplit("/", 1)[0], mlflow.MlflowClient()
    sizes = {f.path: f.file_size for f in client.list_artifacts(run.info.run_id, folder)}
    return round(sizes[path] / 1e6, 2)


def best_validation(run: str | Run) -> tuple[int, float]:
    """The run's tagged best epoch, and its validation F1 after that epoch."""
    run = get_run(run)
    best_epoch, run_id = tagged_best_epoch(run), run.info.run_id
    history = mlflow.MlflowClient().get_metric_history(run_id, MONITOR)
    return best_epoch, next(m.value for m in history if m.step == best_epoch)


def sweep_table(parent_run_id: str, parameter: str = "r") -> pd.DataFrame:
    """Per child run, by its value of the numeric setting `parameter`: size, best epoch, scores."""
    rows = []
    for run in child_runs(parent_run_id):
        best_epoch, best_f1 = best_validation(run)
        rows.append(
            {
                parameter: run.data.params[f"config.{parameter}"],
                "trainable params": int(run.data.params["trainable_params"]),
                "checkpoint MB": checkpoint_megabytes(run, best_epoch),
                "best epoch": best_epoch,
                f"best {MONITOR}": round(best_f1, 3),
                "Test_F1_Score": round(run.data.metrics["Test_F1_Score"], 3),
                "minutes": round((run.info.end_time - run.info.start_time) / 60_000, 1),
                "run_id": run.info.run_id,
            }
        )
    table = pd.DataFrame(rows)
    table[parameter] = pd.to_numeric(table[parameter])  # logged as text: "8", "0.002"
    return table.set_index(parameter).sort_index()
