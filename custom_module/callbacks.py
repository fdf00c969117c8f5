"""Lightning callbacks for the training notebook's `Trainer`: `RandomStateCallback` makes a resumed
run draw the same random numbers as an uninterrupted one; `EpochSummary` prints a line per epoch."""

from __future__ import annotations

import random
import time

import numpy as np
import pytorch_lightning as pl
import torch
from IPython import get_ipython
from IPython.display import display

SUMMARY_METRICS = ("Train_Loss", "Val_Loss", "Val_F1_Score")


class RandomStateCallback(pl.Callback):
    """Puts the torch, numpy and Python random states into every checkpoint and restores them
    on resume, so dropout after a crash draws the same masks as an uninterrupted run. They are
    stored as tensors and tuples: torch's weights-only unpickler (`load_checkpoint`) refuses numpy
    arrays."""

    def state_dict(self) -> dict:
        algorithm, keys, *rest = np.random.get_state()  # rest: position, has_gauss, cached_gaussian
        return {
            "torch": torch.get_rng_state(),
            "numpy": (algorithm, torch.from_numpy(keys.astype(np.int64)), *rest),
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        algorithm, keys, *rest = state_dict["numpy"]
        np.random.set_state((algorithm, keys.numpy().astype(np.uint32), *rest))
        random.setstate(state_dict["python"])


class EpochSummary(pl.Callback):
    """One printed line per epoch (`epoch 0: Train_Loss 0.311 | Val_Loss 0.172 | ...`), not a
    progress bar that papermill and nbval would store as hundreds of redrawn lines. In IPython, a
    display under it counts the running epoch's steps (updated at most every `refresh_seconds`)
    and is emptied at the epoch's end, so executed notebooks keep one line per epoch."""

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
        shown = [f"{n} {float(metrics[n]):.3f}" for n in SUMMARY_METRICS if n in metrics]
        seconds = time.perf_counter() - self.started
        self._show("")
        self.progress = None
        print(f"epoch {trainer.current_epoch}: {' | '.join(shown)} ({seconds:.0f} s)", flush=True)

    def _show(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update({"text/plain": text}, raw=True)


def in_ipython() -> bool:
    """True inside an IPython kernel or shell (Jupyter, papermill, nbval), where displays exist."""
    return get_ipython() is not None
