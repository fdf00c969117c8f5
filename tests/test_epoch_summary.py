"""`EpochSummary`: a line per epoch for the record, the running epoch's steps only while it runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from custom_module import callbacks
from custom_module.callbacks import EpochSummary


class Display:
    """A stand-in for IPython's display handle: what the learner would see, update by update."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def __call__(self, bundle: dict, raw: bool, display_id: bool) -> Display:
        assert raw and display_id
        self.shown.append(bundle["text/plain"])
        return self

    def update(self, bundle: dict, raw: bool) -> None:
        self.shown.append(bundle["text/plain"])


def trainer(epoch: int = 0, rank: int = 0, world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        current_epoch=epoch,
        world_size=world_size,
        is_global_zero=rank == 0,
        num_training_batches=4,
        callback_metrics={"Train_Loss": 0.5, "Val_F1_Score": 0.75},
        state=SimpleNamespace(fn="fit"),
    )


def run_epoch(summary: EpochSummary, epoch: int = 0, rank: int = 0, world_size: int = 1) -> None:
    fit = trainer(epoch, rank, world_size)
    summary.on_train_epoch_start(fit, None)
    for step in range(fit.num_training_batches):
        summary.on_train_batch_end(fit, None, None, None, step)
    summary.on_validation_epoch_start(fit, None)
    summary.on_train_epoch_end(fit, None)


def test_in_jupyter_the_steps_show_while_the_epoch_runs_and_only_its_line_stays(
    monkeypatch, capsys
):
    display = Display()
    monkeypatch.setattr(callbacks, "display", display)
    monkeypatch.setattr(callbacks, "in_ipython", lambda: True)
    run_epoch(EpochSummary(refresh_seconds=0.0))
    assert display.shown[0] == "epoch 0: starting"
    assert [line.split(",")[0] for line in display.shown[1:5]] == [
        f"epoch 0: step {step}/4" for step in range(1, 5)
    ]
    assert display.shown[5:] == ["epoch 0: validating", ""]  # emptied when the epoch ends
    assert capsys.readouterr().out.startswith("epoch 0: Train_Loss 0.500 | Val_F1_Score 0.750 (")


def test_updates_are_rate_limited(monkeypatch):
    display = Display()
    monkeypatch.setattr(callbacks, "display", display)
    monkeypatch.setattr(callbacks, "in_ipython", lambda: True)
    run_epoch(EpochSummary(refresh_seconds=3600.0))
    assert not any("step" in line for line in display.shown)


@pytest.mark.parametrize("epoch", [0, 3])
def test_outside_ipython_only_the_epoch_lines_are_printed(monkeypatch, capsys, epoch):
    monkeypatch.setattr(callbacks, "display", lambda *args, **kwargs: pytest.fail("displayed"))
    monkeypatch.setattr(callbacks, "in_ipython", lambda: False)
    run_epoch(EpochSummary(refresh_seconds=0.0), epoch)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and printed[0].startswith(f"epoch {epoch}: Train_Loss 0.500")


@pytest.mark.parametrize(("rank", "lines"), [(0, 1), (1, 0)])
def test_ddp_ranks_forked_from_a_kernel_print_once_and_display_nothing(
    monkeypatch, capsys, rank, lines
):
    """A rank is a forked process: it must not touch the kernel's display, and only rank 0
    prints, so the notebook keeps one line per epoch whatever the number of devices."""
    monkeypatch.setattr(callbacks, "display", lambda *args, **kwargs: pytest.fail("displayed"))
    monkeypatch.setattr(callbacks, "in_ipython", lambda: True)
    run_epoch(EpochSummary(refresh_seconds=0.0), rank=rank, world_size=2)
    assert len(capsys.readouterr().out.splitlines()) == lines
