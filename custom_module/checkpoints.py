"""Per-epoch checkpoints of a run: which exist, loading one back, and the best epoch.

Autolog writes `checkpoints/epoch_N/checkpoint.pth` for every epoch N (counted from 0). The
helpers here turn the usual mistakes (a wrong run id, an epoch that was never logged, a run
without checkpoints) into errors that list what does exist.
"""

from __future__ import annotations

import random

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch

from custom_module.module import TransformerModule
from custom_module.tracking import get_run

BEST_EPOCH_TAG = "best_epoch"
MONITOR = "Val_F1_Score"


def logged_epochs(run_id: str) -> list[int]:
    """Epochs with a checkpoint in the run, ascending; LookupError for an unknown run."""
    get_run(run_id)
    folders = mlflow.MlflowClient().list_artifacts(run_id, "checkpoints")
    return sorted(
        int(item.path.rsplit("_", 1)[1])
        for item in folders
        if item.is_dir and item.path.rsplit("/", 1)[-1].startswith("epoch_")
    )


def load_epoch(run_id: str, epoch: int) -> TransformerModule:
    """The module as it was at the end of `epoch`, in eval mode, via `mlflow.pytorch`."""
    epochs = logged_epochs(run_id)
    if not epochs:
        raise LookupError(
            f"Run {run_id} has no checkpoints: it was not trained with checkpoint autologging "
            "(`custom_module.train`), or it died before its first epoch ended."
        )
    if epoch not in epochs:
        raise LookupError(f"Run {run_id} has no checkpoint for epoch {epoch}; logged: {epochs}.")
    module = mlflow.pytorch.load_checkpoint(TransformerModule, run_id, epoch=epoch)
    return module.eval()


def best_epoch(run_id: str, monitor: str = MONITOR) -> int:
    """The epoch with the highest `monitor` among those checkpointed (earliest on a tie).

    Early stopping does not restore the best weights, so the last epoch is usually not it.
    """
    epochs = set(logged_epochs(run_id))
    history = mlflow.MlflowClient().get_metric_history(run_id, monitor)
    scores = {metric.step: metric.value for metric in history if metric.step in epochs}
    if not scores:
        raise LookupError(f"Run {run_id} has no {monitor} for any checkpointed epoch.")
    return max(sorted(scores), key=scores.__getitem__)


def tag_best_epoch(run_id: str, monitor: str = MONITOR) -> int:
    """Record the best epoch on the run as the tag `best_epoch`, and return it."""
    epoch = best_epoch(run_id, monitor)
    mlflow.MlflowClient().set_tag(run_id, BEST_EPOCH_TAG, str(epoch))
    return epoch


class RandomStateCallback(pl.Callback):
    """Puts the torch, numpy and Python random states into every checkpoint and restores them
    on resume, so dropout after a crash draws the same masks as an uninterrupted run.

    The states are stored as tensors and plain tuples: torch's weights-only unpickler, which
    `load_checkpoint` uses, refuses numpy arrays.
    """

    def state_dict(self) -> dict:
        algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": (
                algorithm,
                torch.from_numpy(keys.astype(np.int64)),
                position,
                has_gauss,
                cached_gaussian,
            ),
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        algorithm, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state(
            (algorithm, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
        )
        random.setstate(state_dict["python"])
