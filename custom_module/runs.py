"""Reading a training run back from MLflow: per-epoch metrics, system metrics, what was logged."""

from __future__ import annotations

import tempfile

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from matplotlib.ticker import MaxNLocator

from custom_module.checkpoints import logged_epochs

EPOCH_METRICS = (
    "Train_Loss",
    "Val_Loss",
    "Train_F1_Score",
    "Val_Precision",
    "Val_Recall",
    "Val_F1_Score",
    "Val_PR_AUC",
)
SYSTEM_METRICS = {
    "system/cpu_utilization_percentage": "CPU utilisation (%)",
    "system/system_memory_usage_megabytes": "memory used (MB)",
}


def epoch_table(run_id: str, names: tuple[str, ...] = EPOCH_METRICS) -> pd.DataFrame:
    """One row per epoch, one column per metric.

    Autolog logs epoch metrics with the epoch as their step, counted from 0 like the
    checkpoint folders (`checkpoints/epoch_0`).
    """
    client = mlflow.MlflowClient()
    columns = {
        name: {m.step: round(m.value, 4) for m in client.get_metric_history(run_id, name)}
        for name in names
    }
    table = pd.DataFrame(columns).sort_index()
    table.index.name = "epoch"
    return table


def logged_summary(run_id: str) -> pd.Series:
    """What a run holds, counted: checkpoints, system metrics, parameters, tags."""
    run = mlflow.get_run(run_id)
    return pd.Series(
        {
            "status": run.info.status,
            "epochs checkpointed": len(logged_epochs(run_id)),
            "system metrics": sum(name.startswith("system/") for name in run.data.metrics),
            "model metrics": sum(not name.startswith("system/") for name in run.data.metrics),
            "parameters": len(run.data.params),
            "best_epoch tag": run.data.tags.get("best_epoch", "missing"),
        }
    )


TENSORBOARD_ARTIFACTS = "tensorboard"


def tensorboard_scalars(run_id: str) -> pd.DataFrame:
    """The scalars in a run's TensorBoard event files, each checked against MLflow's copy.

    One row per TensorBoard tag: whether the run holds an MLflow metric of that name with the
    same values in the same order ("same values"), other values, or none ("not in MLflow", like
    Lightning's `epoch` counter). The tests read it to prove the logger adds files, not metrics.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory() as scratch:
        folder = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=TENSORBOARD_ARTIFACTS, dst_path=scratch
        )
        events = EventAccumulator(folder)
        events.Reload()
    rows = {}
    for tag in sorted(events.Tags()["scalars"]):
        values = [event.value for event in events.Scalars(tag)]
        history = client.get_metric_history(run_id, tag)
        logged = [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
        if not logged:
            rows[tag] = "not in MLflow"
        elif len(logged) == len(values) and all(
            abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(values, logged, strict=True)
        ):
            rows[tag] = "same values"
        else:
            rows[tag] = "different values"
    table = pd.Series(rows, name="MLflow metric").to_frame()
    table.index.name = "TensorBoard scalar"
    return table


def plot_learning_curves(table: pd.DataFrame, best_epoch: int, weighted: bool) -> plt.Figure:
    """Loss per epoch on the left, validation scores on the right; the best epoch marked."""
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4))
    table[["Train_Loss", "Val_Loss"]].plot(ax=loss_axis, marker="o")
    loss_axis.set_title("Loss per epoch")
    loss_axis.set_ylabel(f"{'class-weighted' if weighted else 'unweighted'} BCE loss")
    table[["Val_Precision", "Val_Recall", "Val_F1_Score", "Val_PR_AUC"]].plot(
        ax=score_axis, marker="o"
    )
    score_axis.set_title("Validation scores per epoch (threshold 0.5)")
    score_axis.set_ylabel("score")
    for axis in (loss_axis, score_axis):
        axis.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch (from 0)")
        axis.legend()
    figure.tight_layout()
    return figure


def system_metrics(run_id: str) -> pd.DataFrame:
    """CPU and memory samples of the run, indexed by minutes since the first sample."""
    client = mlflow.MlflowClient()
    columns = {
        label: {m.timestamp: m.value for m in client.get_metric_history(run_id, name)}
        for name, label in SYSTEM_METRICS.items()
    }
    table = pd.DataFrame(columns).sort_index()
    table.index = ((table.index - table.index.min()) / 60_000).round(2)
    table.index.name = "minutes"
    return table


def plot_system_metrics(table: pd.DataFrame) -> plt.Figure:
    """The `system/*` samples MLflow took while the run trained, one panel per metric."""
    figure, axes = plt.subplots(1, len(table.columns), figsize=(10, 3.5))
    for axis, column in zip(axes, table.columns, strict=True):
        table[column].plot(ax=axis, marker=".")
        axis.set_title(column)
        axis.set_xlabel("minutes since the run started")
        axis.set_ylabel(column)
    figure.tight_layout()
    return figure
