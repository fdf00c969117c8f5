"""`RandomStateCallback` with CUDA (simulated: no GPU needed) and `RankZeroRun`, the callback that
keeps DDP ranks forked from a notebook in the notebook's MLflow run."""

from __future__ import annotations

import random
import threading
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch

from custom_module.callbacks import RandomStateCallback, RankZeroRun


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


def fake_trainer(rank: int, stopped_epoch: int = 0) -> SimpleNamespace:
    stopper = SimpleNamespace(
        stopped_epoch=stopped_epoch, patience=1, best_score=torch.tensor(0.75), wait_count=1
    )
    return SimpleNamespace(is_global_zero=rank == 0, early_stopping_callback=stopper)


def test_rank_zero_of_a_forked_process_joins_the_run_and_runs_the_one_monitor(
    tracking_store, monkeypatch
):
    with mlflow.start_run(run_name="ddp parent") as run:
        pass  # a forked rank sees no active run: this test plays one, outside the `with`
    joined = []
    monkeypatch.setattr(
        mlflow, "start_run", lambda **kwargs: joined.append(kwargs) or mlflow.ActiveRun(run)
    )
    callback = RankZeroRun()
    callback.run_id = run.info.run_id
    callback.setup(fake_trainer(rank=1), None, "fit")
    assert joined == [] and not callback.joined  # the other ranks log nothing
    callback.setup(fake_trainer(rank=0), None, "fit")  # the one monitor: the kernel runs none
    callback.setup(fake_trainer(rank=0), None, "test")  # a second would repeat its steps
    assert joined == [
        {"run_id": run.info.run_id, "log_system_metrics": True},
        {"run_id": run.info.run_id, "log_system_metrics": False},
    ]


def test_autolog_logs_without_threads_a_fork_could_catch_in_sqlite():
    from mlflow.utils.autologging_utils import client as autologging_client

    RankZeroRun()
    pool = autologging_client._AUTOLOGGING_QUEUEING_CLIENT_THREAD_POOL
    assert pool.submit(threading.get_ident).result() == threading.get_ident()


def test_rank_zero_logs_where_early_stopping_stopped(tracking_store):
    """The kernel's EarlyStopping never ran under DDP (autolog would log nothing): rank 0 logs
    the outcome under autolog's names, once."""
    with mlflow.start_run(run_name="ddp early stop") as run:
        callback = RankZeroRun()
        callback.joined = True  # as after `setup` in a forked rank 0
        callback.on_fit_end(fake_trainer(rank=0, stopped_epoch=4), None)
        callback.on_fit_end(fake_trainer(rank=0, stopped_epoch=0), None)  # it never fired: none
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics == {"stopped_epoch": 4, "restored_epoch": 3, "best_score": 0.75, "wait_count": 1}


def test_with_one_device_it_does_nothing(tracking_store):
    with mlflow.start_run(run_name="one device") as run:
        callback = RankZeroRun()
        callback.run_id = run.info.run_id
        callback.setup(fake_trainer(rank=0), None, "fit")  # the run is active: nothing to join
        callback.on_fit_end(fake_trainer(rank=0, stopped_epoch=4), None)  # autolog logs it
    assert not callback.joined
    assert mlflow.get_run(run.info.run_id).data.metrics == {}
