"""The preset search's table, read back from child runs shaped like notebook 02's."""

from __future__ import annotations

import mlflow
import preset_search as search
import pytest

from custom_module.tracking import configure_tracking


@pytest.fixture(scope="module")
def parent_run_id(tracking_store) -> str:
    """A search parent with two candidates of three seeds each, and one unrelated run."""
    mlflow.set_experiment(configure_tracking("tests-search"))
    with mlflow.start_run(run_name="preset search") as parent:
        pass
    scores = {"narrow": (0.70, 0.74, 0.72), "wide": (0.78, 0.80, 0.83)}
    for candidate, test_f1s in scores.items():
        for seed, test_f1 in zip(search.SEEDS, test_f1s, strict=True):
            with mlflow.start_run(
                run_name=f"{candidate} / seed {seed}", parent_run_id=parent.info.run_id
            ):
                mlflow.log_param("config.seed", seed)
                mlflow.set_tag(search.CANDIDATE_TAG, candidate)
                for epoch, val_f1 in enumerate((test_f1 - 0.1, test_f1 - 0.05)):
                    mlflow.log_metric("Val_F1_Score", val_f1, step=epoch)
                mlflow.set_tag("best_epoch", "1")
                mlflow.log_metrics({"Test_F1_Score": test_f1, "Test_PR_AUC": test_f1 + 0.1})
    with mlflow.start_run(run_name="not in the search"):
        mlflow.log_param("config.seed", 7)
    return parent.info.run_id


def test_table_has_one_row_per_candidate_with_medians_over_seeds(parent_run_id):
    table = search.search_table(parent_run_id)
    assert list(table.index) == ["narrow", "wide"]  # the order searched
    assert list(table["seeds"]) == [3, 3]
    assert table.loc["wide", "Test_F1_Score"] == 0.80
    assert table.loc["wide", "best Val_F1_Score"] == 0.75
    assert (table.loc["narrow", "Test_F1 min"], table.loc["narrow", "Test_F1 max"]) == (0.70, 0.74)
    assert table.loc["wide", "Test_PR_AUC"] == 0.90
    assert (table["training minutes"] >= 0).all()


def test_each_run_is_read_at_its_tagged_best_epoch(parent_run_id):
    runs = search.search_runs(parent_run_id)
    assert len(runs) == 6 and set(runs["seed"]) == set(search.SEEDS)
    assert (runs["best epoch"] == 1).all()


def test_the_command_line_prints_a_finished_searchs_table(parent_run_id, capsys):
    search.main(["--table", parent_run_id])
    printed = capsys.readouterr().out
    assert f"parent run: {parent_run_id}" in printed and "wide" in printed


def test_a_candidate_with_an_unknown_field_is_refused_before_training():
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\): \['learning_rte'\]"):
        search.run_search({"typo": {"learning_rte": 1e-3}})


def test_the_shipped_candidates_are_valid_and_include_the_preset_itself():
    search.check_candidates(search.CANDIDATES)
    assert {} in search.CANDIDATES.values()


def test_a_candidate_is_added_to_a_finished_search_without_training_the_others(
    tracking_store, monkeypatch
):
    experiment = mlflow.set_experiment(configure_tracking(search.EXPERIMENT))
    with mlflow.start_run(run_name="preset search") as parent:
        pass
    trained = []

    def fake_train(config_overrides, seed, run_name, parent_run_id, **parameters):
        """Stands in for notebook 02: a child run with what the table reads."""
        trained.append(config_overrides)
        with mlflow.start_run(run_name=run_name, parent_run_id=parent_run_id) as child:
            mlflow.log_param("config.seed", seed)
            mlflow.log_metric("Val_F1_Score", 0.75, step=0)
            mlflow.set_tag("best_epoch", "0")
            mlflow.log_metrics({"Test_F1_Score": 0.8, "Test_PR_AUC": 0.88})
        return child.info.run_id

    monkeypatch.setattr(search, "train", fake_train)
    added = "cpu preset, batch 8"
    search.main(["--parent", parent.info.run_id, "--candidate", added, "--seeds", "5"])
    assert trained == [search.CANDIDATES[added]]
    table = search.search_table(parent.info.run_id)
    assert list(table.index) == [added] and table.loc[added, "seeds"] == 1
    runs = mlflow.search_runs([experiment.experiment_id])
    assert list(runs["tags.mlflow.runName"]).count("preset search") == 1  # no second parent
