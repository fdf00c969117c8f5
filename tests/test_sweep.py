"""Comparing a sweep's child runs: found through their parent tag, read back per best epoch."""

from __future__ import annotations

import mlflow
import pytest

from custom_module import runs
from custom_module.tracking import configure_tracking


@pytest.fixture(scope="module")
def parent_run_id(tracking_store, tmp_path_factory) -> str:
    """A parent run with two children shaped like notebook 02's runs (params, per-epoch
    validation F1, the best_epoch tag, test F1, checkpoint files), and one unrelated run."""
    mlflow.set_experiment(configure_tracking("tests-sweep"))  # artifacts beside the store
    folder = tmp_path_factory.mktemp("checkpoint")
    with mlflow.start_run(run_name="sweep") as parent:
        pass
    for rank, scores, size in ((2, [0.6, 0.7, 0.65], 1_000_000), (8, [0.62, 0.8, 0.81], 3_000_000)):
        with mlflow.start_run(run_name=f"r={rank}", parent_run_id=parent.info.run_id):
            lr = 0.002 if rank == 2 else 0.001
            mlflow.log_params(
                {
                    "config.r": rank,
                    "config.lr": lr,
                    "trainable_params": rank * 1000,
                }
            )
            for epoch, score in enumerate(scores):
                mlflow.log_metric("Val_F1_Score", score, step=epoch)
                (folder / "checkpoint.pth").write_bytes(b"0" * size)
                mlflow.log_artifact(str(folder / "checkpoint.pth"), f"checkpoints/epoch_{epoch}")
            best = max(range(len(scores)), key=scores.__getitem__)
            mlflow.set_tag("best_epoch", str(best))
            mlflow.log_metric("Test_F1_Score", scores[best] - 0.05)
    with mlflow.start_run(run_name="not in the sweep"):
        mlflow.log_param("config.r", 16)
    return parent.info.run_id


def test_children_are_found_through_the_parent_tag(parent_run_id):
    names = [run.data.tags["mlflow.runName"] for run in runs.child_runs(parent_run_id)]
    assert names == ["r=2", "r=8"]


def test_table_reads_each_child_at_its_best_epoch(parent_run_id):
    table = runs.sweep_table(parent_run_id)
    assert list(table.index) == [2, 8]
    assert table.loc[8, "best epoch"] == 2 and table.loc[8, "best Val_F1_Score"] == 0.81
    assert table.loc[2, "best epoch"] == 1 and table.loc[2, "Test_F1_Score"] == 0.65
    assert table.loc[2, "checkpoint MB"] == 1.0 and table.loc[8, "trainable params"] == 8000


def test_table_can_be_indexed_by_any_numeric_setting_of_the_children(parent_run_id):
    table = runs.sweep_table(parent_run_id, parameter="lr")
    assert list(table.index) == [0.001, 0.002]  # read as numbers, sorted as numbers
    assert list(table["best Val_F1_Score"]) == [0.81, 0.7]


def test_a_run_without_children_or_an_unknown_id_is_refused_clearly(parent_run_id):
    child = runs.child_runs(parent_run_id)[0].info.run_id
    with pytest.raises(LookupError, match="has no child runs"):
        runs.sweep_table(child)
    with pytest.raises(LookupError, match="No run"):
        runs.child_runs("0" * 32)
