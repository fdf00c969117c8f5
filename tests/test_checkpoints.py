"""Logged epochs load back; wrong run ids and epochs say what exists; resuming refuses nonsense.

That a loaded epoch is the module as it ended that epoch is checked in test_evaluation.py: its
predictions reproduce the validation F1 that training logged for the epoch.
"""

from __future__ import annotations

import mlflow
import pytest

from custom_module.checkpoints import (
    best_epoch,
    download_latest_checkpoint,
    load_epoch,
    logged_epochs,
    tagged_best_epoch,
)


def test_every_epoch_of_the_run_is_logged(smoke_run_id):
    assert logged_epochs(smoke_run_id) == [0, 1]


def test_an_epoch_that_was_never_logged_lists_the_logged_ones(smoke_run_id):
    with pytest.raises(LookupError, match=r"no checkpoint for epoch 7; logged: \[0, 1\]"):
        load_epoch(smoke_run_id, 7)


def test_an_unknown_run_id_names_the_store(tracking_store):
    with pytest.raises(LookupError, match="No run '0+'"):
        load_epoch("0" * 32, 0)


def test_a_run_without_checkpoints_says_so(tracking_store):
    with mlflow.start_run(run_name="no-checkpoints") as run:
        pass
    with pytest.raises(LookupError, match="has no checkpoints"):
        load_epoch(run.info.run_id, 0)
    with pytest.raises(LookupError, match="no 'best_epoch' tag"):
        tagged_best_epoch(run.info.run_id)


def test_best_epoch_is_tagged_and_has_the_highest_validation_f1(smoke_run_id, smoke_run):
    history = mlflow.MlflowClient().get_metric_history(smoke_run_id, "Val_F1_Score")
    scores = {metric.step: metric.value for metric in history}
    assert best_epoch(smoke_run_id) == max(sorted(scores), key=scores.__getitem__)
    assert tagged_best_epoch(smoke_run_id) == best_epoch(smoke_run_id)


def test_a_finished_run_cannot_be_resumed(smoke_run_id, tmp_path):
    with pytest.raises(ValueError, match="already finished"):
        download_latest_checkpoint(smoke_run_id, str(tmp_path))


def test_a_checkpoint_tagged_but_never_uploaded_does_not_count(tracking_store, tmp_path):
    # Autolog sets the tag and logs the metrics file before it uploads the checkpoint: a process
    # killed in between leaves both, and no checkpoint.
    run = mlflow.start_run(run_name="killed-while-uploading")
    mlflow.set_tag("mlflow.latest_checkpoint_artifact", "checkpoints/epoch_0/checkpoint.pth")
    mlflow.log_dict({"epoch": 0}, "checkpoints/epoch_0/checkpoint_metrics.json")
    mlflow.end_run(status="KILLED")
    assert logged_epochs(run.info.run_id) == []
    with pytest.raises(LookupError, match="logged no checkpoint"):
        download_latest_checkpoint(run.info.run_id, str(tmp_path))
