"""Comparing the runs of a sweep: child runs filed under one parent run (notebook 05).

Each child is an ordinary notebook-02 run with one setting changed; MLflow links it to the
parent with the tag `mlflow.parentRunId`, which is how the UI nests them and how
`child_runs` finds them again.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from matplotlib.ticker import MaxNLocator
from mlflow.entities import Run

from custom_module.checkpoints import MONITOR, checkpoint_paths, tagged_best_epoch
from custom_module.tracking import get_run

PARENT_TAG = "mlflow.parentRunId"


def child_runs(parent_run_id: str) -> list[Run]:
    """The runs filed under `parent_run_id`, oldest first; LookupError for an unknown run or
    one without children."""
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


def checkpoint_megabytes(run_id: str, epoch: int) -> float:
    """Size of the run's checkpoint file of `epoch`, in MB."""
    path = checkpoint_paths(run_id)[epoch]
    folder = path.rsplit("/", 1)[0]
    sizes = {f.path: f.file_size for f in mlflow.MlflowClient().list_artifacts(run_id, folder)}
    return round(sizes[path] / 1e6, 2)


def best_validation(run_id: str) -> tuple[int, float]:
    """The run's tagged best epoch, and its validation F1 after that epoch."""
    best_epoch = tagged_best_epoch(run_id)
    history = mlflow.MlflowClient().get_metric_history(run_id, MONITOR)
    return best_epoch, next(m.value for m in history if m.step == best_epoch)


def sweep_table(parent_run_id: str, parameter: str = "lora_r") -> pd.DataFrame:
    """One row per child run, indexed by its value of `parameter` (a numeric setting of the
    run's config, such as `lora_r` or `seed`): its size, its best epoch and its scores."""
    rows = []
    for run in child_runs(parent_run_id):
        run_id = run.info.run_id
        best_epoch, best_f1 = best_validation(run_id)
        rows.append(
            {
                parameter: run.data.params[f"config.{parameter}"],
                "trainable params": int(run.data.params["trainable_params"]),
                "checkpoint MB": checkpoint_megabytes(run_id, best_epoch),
                "best epoch": best_epoch,
                f"best {MONITOR}": round(best_f1, 3),
                "Test_F1_Score": round(run.data.metrics["Test_F1_Score"], 3),
                "minutes": round((run.info.end_time - run.info.start_time) / 60_000, 1),
                "run_id": run_id,
            }
        )
    table = pd.DataFrame(rows)
    table[parameter] = pd.to_numeric(table[parameter])  # logged as text: "8", "0.002"
    return table.set_index(parameter).sort_index()


def plot_sweep(parent_run_id: str, parameter: str = "lora_r", metric: str = MONITOR) -> plt.Figure:
    """`metric` over epochs, one line per child run, labelled with its swept value."""
    client = mlflow.MlflowClient()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for run in child_runs(parent_run_id):
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        label = f"{parameter}={run.data.params[f'config.{parameter}']}"
        axes.plot([m.step for m in history], [m.value for m in history], marker="o", label=label)
    axes.set(xlabel="epoch (from 0)", ylabel=metric, title=f"{metric} per epoch, by {parameter}")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    figure.tight_layout()
    return figure
