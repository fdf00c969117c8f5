"""Lightning callbacks for the training notebook's `Trainer`: `RandomStateCallback` makes a resumed
run draw the same random numbers as an uninterrupted one; `EpochSummary` prints a line per epoch.
(DDP and torchrun's callback is `distributed.DistributedTraining`.)"""

import random
import time

import numpy as np
import pytorch_lightning as pl
import torch
from IPython.display import display

from custom_module.config import MONITOR
from custom_module.notebook_helpers import in_ipython

SUMMARY_METRICS = ("Train_Loss", "Val_Loss", MONITOR)


class RandomStateCallback(pl.Callback):
    """Puts the torch (CPU and every CUDA device), numpy and Python random states into every
    checkpoint and restores them on resume, so dropout after a crash draws the same masks as an
    uninterrupted run. As tensors and tuples: `load_checkpoint`'s unpickler refuses numpy arrays."""

    def state_dict(self) -> dict:
        algorithm, keys, *rest = np.random.get_state()  # rest: position, has_gauss, cached_gaussian
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (algorithm, torch.from_numpy(keys.astype(np.int64)), *rest),
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict.get("cuda") and torch.cuda.is_available():  # absent before CUDA was saved
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        algorithm, keys, *rest = state_dict["numpy"]
        np.random.set_state((algorithm, keys.numpy().astype(np.uint32), *rest))
        random.setstate(state_dict["python"])


class EpochSummary(pl.Callback):
    """One printed line per epoch (`epoch 0: Train_Loss 0.311 | ...`), not a progress bar that
    papermill would store as hundreds of redrawn lines. In IPython a display under it counts the
    running epoch's steps (at most every `refresh_seconds`), emptied at the epoch's end."""

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self.progress = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = self.shown_at = time.perf_counter()
        # A display to update exists in the kernel's own process only: DDP ranks just print.
        if in_ipython() and trainer.world_size == 1:
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
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = [f"{n} {float(metrics[n]):.3f}" for n in SUMMARY_METRICS if n in metrics]
        seconds = time.perf_counter() - self.started
        self._show("")
        self.progress = None
        print(f"epoch {trainer.current_epoch}: {' | '.join(shown)} ({seconds:.0f} s)", flush=True)

    def _show(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update({"text/plain": text}, raw=True)
