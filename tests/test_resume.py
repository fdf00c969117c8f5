"""A run killed mid-epoch and resumed ends as if it had never stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from custom_module import preset, train
from custom_module.train import resume

sys.path.insert(0, str(Path(__file__).parent))
from crash_during_training import RESUME_CONFIG  # noqa: E402

EPOCH_METRICS = ("Train_Loss", "Val_Loss", "Val_F1_Score", "Val_Precision", "Val_Recall")


def history(run_id: str, name: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, name))


@pytest.fixture(scope="module")
def crashed_run_id(tracking_store: str) -> str:
    """A run SIGKILLed at the third batch of epoch 1 (epoch 0 finished and checkpointed)."""
    script = Path(__file__).parent / "crash_during_training.py"
    result = subprocess.run(
        [sys.executable, str(script), "1", "2"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == -9, result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("run_id: "))
    return line.removeprefix("run_id: ")


def test_a_killed_run_is_left_running_with_epoch_0_checkpointed(crashed_run_id):
    run = mlflow.get_run(crashed_run_id)
    assert run.info.status == "RUNNING"
    assert run.data.tags["mlflow.latest_checkpoint_artifact"].startswith("checkpoints/epoch_0/")


def test_resumed_run_matches_an_uninterrupted_one(crashed_run_id):
    resumed_id = resume(crashed_run_id)
    assert resumed_id == crashed_run_id
    assert mlflow.get_run(resumed_id).info.status == "FINISHED"
    reference_id = train(preset("smoke", **RESUME_CONFIG))
    for name in EPOCH_METRICS:
        resumed, reference = history(resumed_id, name), history(reference_id, name)
        # Every epoch exactly once, with the same step numbering.
        assert [step for step, _ in resumed] == [0, 1, 2], name
        assert [step for step, _ in reference] == [0, 1, 2], name
        # Same seed, data order, dropout masks (random states are checkpointed) and CPU kernels:
        # the arithmetic is identical, so only float32 rounding may differ.
        for (_, got), (_, expected) in zip(resumed, reference, strict=True):
            assert got == pytest.approx(expected, abs=1e-5), name


def test_finished_run_cannot_be_resumed(smoke_run_id):
    with pytest.raises(ValueError, match="already finished"):
        resume(smoke_run_id)


def test_unknown_run_id_names_the_store(tracking_store):
    with pytest.raises(LookupError, match="No run"):
        resume("0" * 32)
