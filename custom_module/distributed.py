"""What DDP and torchrun need around notebook 02's `Trainer` and MLflow run, behind one object,
`DistributedTraining`; with one device it changes nothing (docs/distributed.md)."""

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Executor, Future

import mlflow
import pytorch_lightning as pl
import torch
from mlflow.entities import Run
from mlflow.utils.autologging_utils import client as autologging_client
from pytorch_lightning.strategies import DDPStrategy

from custom_module.notebook_helpers import in_ipython

# MLflow's private thread pool behind autolog's asynchronous logging (mlflow 3.x): the one private
# name this tutorial touches. tests/test_callbacks.py fails, naming it, if MLflow drops it.
AUTOLOG_POOL = "_AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL"


class InlineExecutor(Executor):
    """Runs each task at once, in the caller's thread. A fork can catch a thread of autolog's pool
    inside sqlite, and the rank then waits forever on its lock (or on the pool's lost threads)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()  # a failure raises here, as it would from the pool's future
        future.set_result(fn(*args, **kwargs))
        return future


def log_autolog_inline() -> None:
    """Make autolog log in the caller's thread instead of its pool, before a kernel forks ranks."""
    if not hasattr(autologging_client, AUTOLOG_POOL):
        raise RuntimeError(
            f"mlflow {mlflow.__version__} has no {autologging_client.__name__}.{AUTOLOG_POOL}: "
            "use the MLflow version in requirements.txt to train on several devices in a kernel."
        )
    setattr(autologging_client, AUTOLOG_POOL, InlineExecutor())


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
            log_autolog_inline()

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
