"""Any logged epoch loads back exactly; wrong run ids and epochs say what exists."""

from __future__ import annotations

import mlflow
import pytest
import torch

from custom_module.checkpoints import best_epoch, load_epoch, logged_epochs


def test_every_logged_epoch_loads_with_the_weights_it_ended_with(smoke_run_id, smoke_epoch_weights):
    epochs = logged_epochs(smoke_run_id)
    assert epochs == sorted(smoke_epoch_weights.by_epoch) == [0, 1]
    for epoch in epochs:
        loaded = load_epoch(smoke_run_id, epoch).state_dict()
        expected = smoke_epoch_weights.by_epoch[epoch]
        assert loaded.keys() == expected.keys()
        for key, tensor in expected.items():
            assert torch.equal(loaded[key], tensor), (epoch, key)


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


def test_best_epoch_is_tagged_and_has_the_highest_validation_f1(smoke_run_id, smoke_run):
    history = mlflow.MlflowClient().get_metric_history(smoke_run_id, "Val_F1_Score")
    scores = {metric.step: metric.value for metric in history}
    assert best_epoch(smoke_run_id) == max(sorted(scores), key=scores.__getitem__)
    assert smoke_run.data.tags["best_epoch"] == str(best_epoch(smoke_run_id))
