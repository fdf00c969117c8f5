"""A run killed mid-training and resumed ends as if it had never stopped."""

from __future__ import annotations

import mlflow
import pytest
from run_layout import assert_each_step_logged_once, by_step

from custom_module.checkpoints import logged_epochs
from custom_module.train import resume, train_then_kill

# Trains through notebook 02 (minutes): `make test-fast` leaves these out.
pytestmark = pytest.mark.notebook

EXPERIMENT = "tests-resume"
EPOCHS = 2  # the smoke preset's
EPOCH_METRICS = ("Train_Loss", "Val_Loss", "Val_F1_Score", "Val_Precision", "Val_Recall")


@pytest.fixture(scope="module")
def crashed_run_id(tracking_store: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A smoke run SIGKILLed (kernel and all) right after it logged the checkpoint of epoch 0,
    with epoch 1 (a few seconds) under way."""
    output = tmp_path_factory.mktemp("crash") / "02.ipynb"
    return train_then_kill(EXPERIMENT, output, preset_name="smoke")


def test_a_killed_run_is_left_running_with_a_checkpoint(crashed_run_id):
    run = mlflow.get_run(crashed_run_id)
    assert run.info.status == "RUNNING"
    assert logged_epochs(crashed_run_id) == [0]  # killed during epoch 1
    assert list(by_step(crashed_run_id)) == [0]


def test_resumed_run_matches_an_uninterrupted_one(crashed_run_id, smoke_run_id):
    resumed_id = resume(crashed_run_id)
    assert resumed_id == crashed_run_id
    assert mlflow.get_run(resumed_id).info.status == "FINISHED"
    assert_each_step_logged_once(resumed_id)  # every epoch once, though two processes logged
    for name in EPOCH_METRICS:
        # The session's smoke run had the same config and seed, and was never interrupted.
        resumed, reference = by_step(resumed_id, name), by_step(smoke_run_id, name)
        assert list(resumed) == list(reference) == list(range(EPOCHS)), name
        # Same seed, data order, dropout masks (random states are checkpointed) and CPU kernels:
        # the arithmetic is identical, so only float32 rounding may differ.
        assert list(resumed.values()) == pytest.approx(list(reference.values()), abs=1e-5), name
