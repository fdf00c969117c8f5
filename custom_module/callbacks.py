"""Lightning callbacks for the training notebook's `Trainer`: `RandomStateCallback` makes a resumed
run draw the same random numbers as an uninterrupted one; `EpochSummary` prints a line per epoch;
`DistributedTraining` is what DDP and torchrun need, behind one object."""

import contextlib
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from IPython import get_ipython
from IPython.display import display
from mlflow.entities import Run
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


class DistributedTraining(pl.Callback):
    """Everything DDP and torchrun need around notebook 02's `Trainer` and MLflow run, in one
    object; with one device it changes nothing (docs/distributed.md). `trainer_arguments()`: the
    devices, nodes and strategy; `start_run(...)`: the run, on every rank. Forked ranks
    (`devices` > 1 in a kernel) do not inherit the active run (MLflow >= 2.18): rank 0 joins it
    in `setup`, runs the one system-metrics monitor in `fit`, and logs EarlyStopping's outcome
    (the ranks ran it, not autolog's copy). Under torchrun every rank executes the notebook:
    rank 0 starts the run and logs; the others read it (`start_run`)."""

    def __init__(self, devices: int = 1) -> None:
        self.devices, self.torchrun = devices, "LOCAL_WORLD_SIZE" in os.environ
        self.rank = int(os.environ["RANK"]) if self.torchrun else 0
        self.forks = devices > 1 and not self.torchrun  # this kernel forks the ranks
        self.run_id: str | None = None
        self.joined = False  # forked rank 0, in the kernel's run
        if self.forks:  # before the fork, in the kernel: the ranks inherit its autolog client
            autologging_client._AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL = InlineExecutor()

    def trainer_arguments(self) -> dict:
        """`Trainer` arguments: one process, forked ranks, or the ranks torchrun started."""
        strategy = "auto"
        if self.torchrun:  # every rank executes the notebook: Lightning has nothing to start
            strategy = TorchrunDDPStrategy(forward_sync_buffers=False)
        elif self.forks:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its threads die in a fork
            start_method = "fork" if in_ipython() else "popen"  # a kernel may only fork ranks
            strategy = DDPStrategy(start_method=start_method, forward_sync_buffers=False)
        world = int(os.environ.get("WORLD_SIZE", 1))
        nodes = world // int(os.environ["LOCAL_WORLD_SIZE"]) if self.torchrun else 1
        # The data module's batch samplers split the data by rank: no DistributedSampler.
        kwargs = {"devices": self.devices, "num_nodes": nodes, "strategy": strategy}
        return kwargs | {"use_distributed_sampler": False}

    @contextlib.contextmanager
    def start_run(self, **kwargs) -> Iterator[Run]:
        """`mlflow.start_run(**kwargs)`; under torchrun on rank 0 only, every rank getting its
        run. The others log to a shadow run (deleted on exit), autolog off: rank 0's run gets
        each value once, and no two processes write to it at the same time."""
        if not self.torchrun:
            monitor = False if self.forks else None  # forked ranks: rank 0 samples in `fit`
            with mlflow.start_run(log_system_metrics=monitor, **kwargs) as run:
                self.run_id = run.info.run_id
                yield run
            return
        if not torch.distributed.is_initialized():  # Lightning then uses this process group
            torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        cpu = torch.distributed.new_group(backend="gloo")  # for the run id, a CPU object
        run_id = [mlflow.start_run(**kwargs).info.run_id if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(run_id, group=cpu)
        self.run_id, status = run_id[0], "FAILED"
        if self.rank > 0:  # what the notebook logs here goes to a shadow run, deleted at the end
            mlflow.pytorch.autolog(disable=True)
            shadow = mlflow.start_run(run_name=f"rank {self.rank}", log_system_metrics=False)
        try:
            yield mlflow.get_run(self.run_id)  # rank 0's run, on every rank
            status = "FINISHED"
        finally:
            mlflow.end_run(status)
            if self.rank > 0:
                mlflow.delete_run(shadow.info.run_id)
            torch.distributed.barrier(group=cpu)  # the others read the run once rank 0 ended it

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
