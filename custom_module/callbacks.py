"""Lightning callbacks the training notebook adds to its `Trainer`.

`RandomStateCallback` makes a resumed run draw the same random numbers as an uninterrupted one;
`EpochSummary` shows one line per epoch that counts the steps while the epoch runs.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytorch_lightning as pl
import torch
from IPython.display import display

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
    """One printed line per epoch (`epoch 0: Train_Loss 0.311 | Val_Loss 0.172 | ...`), instead of
    a progress bar that papermill and nbval would store as hundreds of redrawn lines.

    While an epoch runs, a line under it counts the steps and the time left, replaced in place (an
    IPython display, updated at most every `refresh_seconds`) and emptied when the epoch's line is
    printed. So a learner in Jupyter watches the steps go by, while an executed notebook (papermill,
    nbval) keeps one line per epoch. Outside IPython only the epoch lines are printed.
    """

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self.progress = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = self.shown_at = time.perf_counter()
        if in_ipython():  # display() returns a handle to update there only
            start = {"text/plain": f"epoch {trainer.current_epoch}: starting"}
            self.progress = display(start, raw=True, display_id=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self.progress is None or now - self.shown_at < self.refresh_seconds:
            return
        self.shown_at = now
        done, total = batch_idx + 1, trainer.num_training_batches
        left = (now - self.started) / done * (total - done)
        self._show(f"epoch {trainer.current_epoch}: step {done}/{total}, about {left:.0f} s left")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._show(f"epoch {trainer.current_epoch}: validating")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        shown = [
            f"{name} {float(metrics[name]):.3f}" for name in SUMMARY_METRICS if name in metrics
        ]
        seconds = time.perf_counter() - self.started
        self._show("")
        self.progress = None
        print(f"epoch {trainer.current_epoch}: {' | '.join(shown)} ({seconds:.0f} s)", flush=True)

    def _show(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update({"text/plain": text}, raw=True)


def in_ipython() -> bool:
    """True inside an IPython kernel or shell (Jupyter, papermill, nbval), where displays exist."""
    from IPython import get_ipython

    return get_ipython() is not None
