"""Reading a training run back from MLflow: per-epoch metrics, checkpoints, what was logged."""

from __future__ import annotations

import matplotlib.pyplot as plt
import mlflow
import pandas as pd

EPOCH_METRICS = (
    "Train_Loss",
    "Val_Loss",
    "Train_F1_Score",
    "Val_Precision",
    "Val_Recall",
    "Val_F1_Score",
)


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


def checkpoint_artifacts(run_id: str) -> list[str]:
    """Artifact paths of the per-epoch checkpoints of a run, in epoch order."""
    client = mlflow.MlflowClient()
    folders = [item.path for item in client.list_artifacts(run_id, "checkpoints") if item.is_dir]
    folders.sort(key=lambda path: int(path.rsplit("_", 1)[1]))
    return [
        item.path
        for folder in folders
        for item in client.list_artifacts(run_id, folder)
        if item.path.endswith(".pth")
    ]


def logged_summary(run_id: str) -> pd.Series:
    """What a run holds, counted: checkpoints, system metrics, hyper-parameters, test F1."""
    run = mlflow.get_run(run_id)
    metrics = run.data.metrics
    return pd.Series(
        {
            "status": run.info.status,
            "epochs checkpointed": len(checkpoint_artifacts(run_id)),
            "system metrics": sum(name.startswith("system/") for name in metrics),
            "parameters": len(run.data.params),
            "Test_F1_Score": round(metrics.get("Test_F1_Score", float("nan")), 4),
        }
    )


def plot_learning_curves(table: pd.DataFrame) -> plt.Figure:
    """Loss per epoch on the left, validation precision / recall / F1 on the right."""
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(10, 4))
    table[["Train_Loss", "Val_Loss"]].plot(ax=loss_axis, marker="o")
    loss_axis.set_title("Loss per epoch")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("weighted BCE loss")
    table[["Val_Precision", "Val_Recall", "Val_F1_Score"]].plot(ax=f1_axis, marker="o")
    f1_axis.set_title("Validation metrics per epoch (threshold 0.5)")
    f1_axis.set_xlabel("epoch")
    f1_axis.set_ylabel("score")
    figure.tight_layout()
    return figure
