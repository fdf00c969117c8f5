"""Lightning callbacks the training notebook adds to its `Trainer`.

`RandomStateCallback` makes a resumed run draw the same random numbers as an uninterrupted one;
`EpochSummary` prints one line per epoch, readable in a notebook, under papermill and in a log.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytorch_lightning as pl
import torch

SUMMARY_METRICS = ("Train_Loss", "Val_Loss", "Val_F1_Score")


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


class EpochSummary(pl.Callback):
    """One line per epoch (`epoch 0: Train_Loss 0.311 | Val_Loss 0.172 | ...`), instead of a
    progress bar that papermill and nbval would store as hundreds of redrawn lines."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        shown = [
            f"{name} {float(metrics[name]):.3f}" for name in SUMMARY_METRICS if name in metrics
        ]
        seconds = time.perf_counter() - self.started
        print(f"epoch {trainer.current_epoch}: {' | '.join(shown)} ({seconds:.0f} s)", flush=True)
