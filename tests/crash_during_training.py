"""Starts a smoke-sized run and SIGKILLs its own process mid-epoch, like a lost machine.

    python tests/crash_during_training.py EPOCH BATCH

Prints `run_id: ...` when training starts; used by test_resume.py.
"""

import os
import signal
import sys

import mlflow
import pytorch_lightning as pl

from custom_module import preset, train

RESUME_CONFIG = {"max_epochs": 3, "experiment_name": "tests-resume"}


class KillAt(pl.Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_start(self, trainer, pl_module) -> None:
        print(f"run_id: {mlflow.active_run().info.run_id}", flush=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    epoch, batch = int(sys.argv[1]), int(sys.argv[2])
    train(preset("smoke", **RESUME_CONFIG), extra_callbacks=[KillAt(epoch, batch)])
