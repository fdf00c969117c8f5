"""Lightning callbacks for the training notebook's `Trainer`: `RandomStateCallback` makes a resumed
run draw the same random numbers as an uninterrupted one; `EpochSummary` prints a line per epoch;
`RankZeroRun` keeps DDP ranks in the notebook's MLflow run; `TorchrunDDPStrategy` is DDP in the
ranks torchrun started."""

import random
import time
from concurrent.futures import Executor, Future

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from IPython import get_ipython
from IPython.display import display
from mlflow.utils.autologging_utils import client as autologging_client
from pytorch_lightning.strategies import DDPStrategy

SUMMARY_METRICS = ("Train_Loss", "Val_Loss", "Val_F1_Score")


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


class InlineExecutor(Executor):
    """Runs each task at once, in the caller's thread. A fork can catch a thread of autolog's pool
    inside sqlite, and the rank then waits forever on its lock (or on the pool's lost threads)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()  # a failure raises here, as it would from the pool's future
        future.set_result(fn(*args, **kwargs))
        return future


class RankZeroRun(pl.Callback):
    """Keeps rank 0 of DDP processes forked from a kernel (`forks`) in the kernel's MLflow run
    (`run_id`, set by the notebook): since MLflow 2.18 a fork does not inherit the active run.
    Rank 0 runs the one system-metrics monitor in `fit`, and logs EarlyStopping's outcome (the
    ranks ran it, not autolog's copy). Under torchrun, every rank gets rank 0's run id in `setup`
    and waits at each stage's end for autolog's last metrics and checkpoint on rank 0."""

    def __init__(self, forks: bool = False) -> None:
        self.run_id: str | None = None
        self.joined = False
        if forks:  # before the fork, in the kernel: the ranks inherit its autolog client module
            autologging_client._AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL = InlineExecutor()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.run_id = trainer.strategy.broadcast(self.run_id)  # rank 0's, on every rank
        if trainer.is_global_zero and mlflow.active_run() is None and self.run_id:
            mlflow.start_run(run_id=self.run_id, log_system_metrics=stage == "fit")
            self.joined = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stopper = trainer.early_stopping_callback
        if self.joined and stopper is not None and stopper.stopped_epoch:
            restored = stopper.stopped_epoch - max(1, stopper.patience)
            outcome = {"stopped_epoch": stopper.stopped_epoch, "restored_epoch": restored}
            best = {"best_score": float(stopper.best_score), "wait_count": stopper.wait_count}
            mlflow.log_metrics(outcome | best)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        trainer.strategy.barrier()  # after autolog's `on_train_end`/`on_test_end` logging


class TorchrunDDPStrategy(DDPStrategy):
    """DDP in the ranks torchrun started, each executing the notebook: nothing to launch, so
    Lightning allows it in a kernel (not `ddp`, whose launcher would start the script again)."""

    def setup_environment(self) -> None:  # no launcher, so Lightning would not check the layout
        self.cluster_environment.validate_settings(len(self.parallel_devices), self.num_nodes)
        super().setup_environment()

    def _configure_launcher(self) -> None:
        self._launcher = None


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


def in_ipython() -> bool:
    """True inside an IPython kernel or shell (Jupyter, papermill, nbval), where displays exist."""
    return get_ipython() is not None
