"""`RandomStateCallback` with CUDA (simulated: no GPU needed), `DistributedTraining`, which keeps
DDP ranks in the notebook's MLflow run, and `TorchrunDDPStrategy`."""

from __future__ import annotations

import random
import threading
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from mlflow.utils.autologging_utils import client as autologging_client
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.trainer.connectors import accelerator_connector
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from custom_module.callbacks import RandomStateCallback
from custom_module.distributed import AUTOLOG_POOL, DistributedTraining, TorchrunDDPStrategy


def test_cuda_random_states_are_saved_and_restored(monkeypatch):
    """A resumed GPU run must draw the dropout masks of the uninterrupted one: the CUDA
    generators' states travel in the checkpoint beside the CPU's."""
    states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    callback = RandomStateCallback()
    saved = callback.state_dict()
    assert saved["cuda"] is states
    callback.load_state_dict(saved)
    assert restored == [states]


def test_a_cpu_checkpoint_resumes_anywhere_and_old_ones_still_load(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    saved = RandomStateCallback().state_dict()
    assert saved["cuda"] == []
    expected = (torch.rand(3), np.random.rand(), random.random())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # resumed on a GPU machine
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: pytest.fail("no CUDA states"))
    for state in (saved, {k: v for k, v in saved.items() if k != "cuda"}):  # before CUDA states
        RandomStateCallback().load_state_dict(state)
        assert (torch.rand(3).tolist(), np.random.rand(), random.random()) == (
            expected[0].tolist(),
            expected[1],
            expected[2],
        )


def fake_trainer(rank: int, stopped_epoch: int = 0, rank_zero_run_id=None) -> SimpleNamespace:
    """A trainer on `rank`; its strategy's broadcast hands out rank 0's `rank_zero_run_id` (by
    default what the caller passes, as on one device or in forked ranks)."""
    stopper = SimpleNamespace(
        stopped_epoch=stopped_epoch, patience=1, best_score=torch.tensor(0.75), wait_count=1
    )
    broadcast = (lambda value: value) if rank_zero_run_id is None else lambda _: rank_zero_run_id
    strategy = SimpleNamespace(broadcast=broadcast, barrier=lambda: None)
    return SimpleNamespace(
        is_global_zero=rank == 0, early_stopping_callback=stopper, strategy=strategy
    )


def test_autolog_logs_without_threads_a_fork_could_catch_in_sqlite(monkeypatch):
    """Only when the kernel forks ranks: otherwise autolog keeps its pool."""
    pool = getattr(autologging_client, AUTOLOG_POOL)
    monkeypatch.setattr(autologging_client, AUTOLOG_POOL, pool)
    DistributedTraining()
    assert getattr(autologging_client, AUTOLOG_POOL) is pool
    DistributedTraining(devices=2)
    inline = getattr(autologging_client, AUTOLOG_POOL)
    assert inline.submit(threading.get_ident).result() == threading.get_ident()


def test_the_private_autolog_pool_the_workaround_replaces_still_exists():
    assert hasattr(autologging_client, AUTOLOG_POOL), (
        f"mlflow {mlflow.__version__} renamed or removed {AUTOLOG_POOL}: "
        "custom_module/distributed.py's log_autolog_inline must follow it"
    )


def test_without_the_private_pool_several_devices_fail_with_what_to_do(monkeypatch):
    monkeypatch.delattr(autologging_client, AUTOLOG_POOL)
    with pytest.raises(RuntimeError, match=f"has no .*{AUTOLOG_POOL}: use the MLflow version"):
        DistributedTraining(devices=2)


def test_rank_zero_logs_where_early_stopping_stopped(tracking_store):
    """The kernel's EarlyStopping never ran under DDP (autolog would log nothing): rank 0 logs
    the outcome under autolog's names, once."""
    with mlflow.start_run(run_name="ddp early stop") as run:
        callback = DistributedTraining()
        callback.joined = True  # as after `setup` in a forked rank 0
        callback.on_fit_end(fake_trainer(rank=0, stopped_epoch=4), None)
        callback.on_fit_end(fake_trainer(rank=0, stopped_epoch=0), None)  # it never fired: none
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics == {"stopped_epoch": 4, "restored_epoch": 3, "best_score": 0.75, "wait_count": 1}


def test_with_one_device_it_does_nothing(tracking_store):
    with mlflow.start_run(run_name="one device") as run:
        callback = DistributedTraining()
        callback.run_id = run.info.run_id
        callback.setup(fake_trainer(rank=0), None, "fit")  # the run is active: nothing to join
        callback.on_fit_end(fake_trainer(rank=0, stopped_epoch=4), None)  # autolog logs it
    assert not callback.joined
    assert mlflow.get_run(run.info.run_id).data.metrics == {}


def test_under_torchrun_every_rank_gets_rank_zeros_run_id(tracking_store):
    """Under torchrun rank 0 is the notebook that started the run (nothing to join); the other
    ranks' notebooks started none, and learn its id in `setup` to read the run after `fit`."""
    with mlflow.start_run(run_name="torchrun rank 0") as run:
        rank_zero = DistributedTraining()
        rank_zero.run_id = run.info.run_id
        rank_zero.setup(fake_trainer(rank=0), None, "fit")
    other = DistributedTraining()  # run_id None: rank 1's notebook has no run
    other.setup(fake_trainer(rank=1, rank_zero_run_id=run.info.run_id), None, "fit")
    assert (other.run_id, other.joined, rank_zero.joined) == (run.info.run_id, False, False)


TORCHRUN_RANK_0_OF_1 = {
    "TORCHELASTIC_RUN_ID": "test",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "GROUP_RANK": "0",
    "WORLD_SIZE": "1",
    "LOCAL_WORLD_SIZE": "1",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


def test_torchrun_ddp_is_allowed_in_a_kernel_where_ddp_is_refused(monkeypatch):
    """Lightning refuses `ddp` in a kernel (its launcher would start the script again); with the
    ranks torchrun started there is nothing to launch, and the ranks are torchrun's."""
    for name, value in TORCHRUN_RANK_0_OF_1.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(accelerator_connector, "_IS_INTERACTIVE", True)
    with pytest.raises(MisconfigurationException, match="interactive"):
        pl.Trainer(accelerator="cpu", devices=1, strategy=DDPStrategy(), logger=False)
    trainer = pl.Trainer(accelerator="cpu", devices=1, strategy=TorchrunDDPStrategy(), logger=False)
    assert trainer.strategy.launcher is None
    assert type(trainer.strategy.cluster_environment).__name__ == "TorchElasticEnvironment"


def test_torchrun_ddp_refuses_devices_that_are_not_torchruns_ranks(monkeypatch):
    """`--devices 1` with `torchrun --nproc-per-node 2`: a clear error before any rank waits."""
    for name, value in {**TORCHRUN_RANK_0_OF_1, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    trainer = pl.Trainer(accelerator="cpu", devices=1, strategy=TorchrunDDPStrategy(), logger=False)
    with pytest.raises(ValueError, match="does not match the world size"):
        trainer.strategy.setup_environment()
