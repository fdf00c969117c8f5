"""The numbers the notebooks teach, checked on a fresh execution of them: the runs that nbval's
re-execution just logged to its scratch stores (`make test` points `FRESH_STORE` at the store of
notebooks 02-04, `FRESH_WORKSHOP_STORE` at the one of 01 and 05, `FRESH_METHODS_STORE` at 06's).

Without `FRESH_STORE` these checks are skipped: a plain `pytest tests` has no fresh execution to
read. Each check allows what a new seed or another machine moves (see `taught.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
import pytest
from run_layout import assert_each_step_logged_once, by_step
from taught import (
    CPU_TOTAL_PARAMS,
    CPU_TRAINABLE_PARAMS,
    F1_TOLERANCE,
    FULL_TRAINABLE_PARAMS,
    PR_AUC_TOLERANCE,
    REAL_TEXT_F1_FLOOR,
    WORKSHOP_BASELINE_F1,
    WORKSHOP_MARGIN,
    WORKSHOP_SPLIT_SIZES,
)
from test_taught_numbers import results, workshop_trivial_f1

from custom_module import baseline
from custom_module.checkpoints import MONITOR, logged_epochs, tagged_best_epoch
from custom_module.config import preset
from custom_module.evaluation import logged_report
from custom_module.runs import child_runs, sweep_table
from custom_module.tracking import latest_finished_run, registered_model_name

FRESH_STORE = os.environ.get("FRESH_STORE")
# `make test` re-runs notebooks 01 and 05, and 06, beside 02-04, each group with a store of its own.
FRESH_WORKSHOP_STORE = os.environ.get("FRESH_WORKSHOP_STORE", FRESH_STORE)
FRESH_METHODS_STORE = os.environ.get("FRESH_METHODS_STORE", FRESH_STORE)
pytestmark = pytest.mark.skipif(not FRESH_STORE, reason="no fresh execution: FRESH_STORE unset")


@pytest.fixture(scope="module", autouse=True)
def fresh_store():
    """Every check reads the scratch store nbval's execution logged to."""
    with tracking_store(FRESH_STORE):
        yield


@contextmanager
def tracking_store(uri: str) -> Iterator[None]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def training_run():
    """The `workshop` run notebook 02 just made (03 evaluated it, 04 logged its model)."""
    return latest_finished_run("lexglue-unfair-tos-lora")


def test_fresh_run_trained_the_workshop_preset_with_the_cpu_presets_model(training_run):
    params = training_run.data.params
    assert params["config.preset"] == "workshop" and params["config.debug_mode_sample"] == "2000"
    assert int(params["trainable_params"]) == CPU_TRAINABLE_PARAMS
    assert int(params["total_params"]) == CPU_TOTAL_PARAMS


def test_fresh_run_checkpointed_each_epoch_and_tagged_the_best(training_run):
    run_id = training_run.info.run_id
    epochs = logged_epochs(run_id)
    assert epochs == list(range(int(training_run.data.params["config.max_epochs"])))
    assert tagged_best_epoch(run_id) == 1  # validation F1 still rose after epoch 0
    assert "stopped_epoch" not in training_run.data.metrics  # autolog's: EarlyStopping never fired


def test_fresh_run_beats_the_baseline_on_every_test_clause(training_run):
    scores = baseline.baseline_test_metrics(preset("workshop"))
    assert scores["f1"] == pytest.approx(WORKSHOP_BASELINE_F1, abs=0.001)
    assert training_run.data.metrics["Test_F1_Score"] >= REAL_TEXT_F1_FLOOR > scores["f1"]


def test_fresh_scores_are_within_the_seed_spread_of_the_committed_ones(training_run):
    committed = results("02_peft_training.ipynb")["comparison"]["LoRA run"]
    metrics = training_run.data.metrics
    assert metrics["Test_F1_Score"] == pytest.approx(committed["f1"], abs=F1_TOLERANCE)
    assert metrics["Test_PR_AUC"] == pytest.approx(committed["pr_auc"], abs=PR_AUC_TOLERANCE)
    assert_each_step_logged_once(training_run.info.run_id)


def test_fresh_evaluation_serves_a_threshold_its_evidence_supports(training_run):
    report = logged_report(training_run.info.run_id)  # logged by notebook 03
    assert report["best_epoch"] == tagged_best_epoch(training_run.info.run_id)
    assert report["test"]["f1"] >= REAL_TEXT_F1_FLOOR  # every test clause, the served threshold
    default = report["test_at_default_threshold"]
    assert default["f1"] == pytest.approx(training_run.data.metrics["Test_F1_Score"], abs=0.001)
    assert report["test"] in (default, report["test_at_tuned_threshold"])


def test_fresh_champion_is_the_fresh_run(training_run):
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(registered_model_name(), "champion")
    assert champion.run_id == training_run.info.run_id  # notebook 04 promoted it


def test_fresh_run_logged_its_datasets_and_names_notebook_02(training_run):
    inputs = {i.dataset.name: i.dataset for i in training_run.inputs.dataset_inputs}
    assert sorted(inputs) == ["unfair_tos_test", "unfair_tos_train", "unfair_tos_validation"]
    rows = {name: json.loads(dataset.profile)["num_rows"] for name, dataset in inputs.items()}
    assert rows == {f"unfair_tos_{split}": n for split, n in WORKSHOP_SPLIT_SIZES.items()}
    assert training_run.data.tags["mlflow.source.name"] == "notebooks/02_peft_training.ipynb"


def test_fresh_served_model_shows_notebook_03s_test_scores_on_its_page(training_run):
    run_id = training_run.info.run_id
    models = mlflow.search_logged_models(
        experiment_ids=[training_run.info.experiment_id], output_format="list"
    )
    (model,) = [m for m in models if m.source_run_id == run_id]  # notebook 04 logged one
    metrics = {m.key: m for m in model.metrics}
    test_split = next(
        i.dataset for i in training_run.inputs.dataset_inputs if "test" in i.dataset.name
    )
    assert metrics["test_f1"].dataset_digest == test_split.digest
    served = logged_report(run_id)["test"]  # notebook 03's, at the served threshold
    for name in ("precision", "recall", "f1", "pr_auc"):
        assert metrics[f"test_{name}"].value == pytest.approx(served[name], abs=1e-4), name


def test_fresh_comparison_of_methods_has_a_child_per_method_with_its_costs(methods_store):
    experiment = mlflow.get_experiment_by_name("lexglue-unfair-tos-methods")  # notebook 06's
    (parent,) = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.run_name = 'methods workshop'",
        output_format="list",
    )
    children = {c.data.params["config.method"]: c for c in child_runs(parent.info.run_id)}
    assert sorted(children) == ["full", "head", "lora"]
    trainable = {name: int(c.data.params["trainable_params"]) for name, c in children.items()}
    assert trainable == {"head": 385, "lora": CPU_TRAINABLE_PARAMS, "full": FULL_TRAINABLE_PARAMS}
    for child in children.values():
        assert child.data.metrics["train_seconds"] > 0 and child.data.metrics["peak_memory_mb"] > 0
    committed = {row["method"]: row for row in results("06_does_lora_pay.ipynb")["table"]}
    for name, child in children.items():
        fresh = child.data.metrics["Test_F1_Score"]
        assert fresh == pytest.approx(committed[name]["Test F1"], abs=F1_TOLERANCE), name


@pytest.fixture
def workshop_store():
    """Notebooks 01 and 05's store, for as long as one check runs."""
    with tracking_store(FRESH_WORKSHOP_STORE):
        yield


@pytest.fixture
def methods_store():
    """Notebook 06's store, for as long as one check runs."""
    with tracking_store(FRESH_METHODS_STORE):
        yield


def test_fresh_workshop_sweep_and_resume(workshop_store):
    resumed_run = latest_finished_run("lexglue-unfair-tos-workshop")  # notebook 05's last run
    sweep_parent = mlflow.search_runs(
        [resumed_run.info.experiment_id],
        filter_string="attributes.run_name = 'sweep r'",
        output_format="list",
    )[0]
    table = sweep_table(sweep_parent.info.run_id)
    assert list(table.index) == [2, 8, 32]
    assert (table[f"best {MONITOR}"] >= workshop_trivial_f1() + WORKSHOP_MARGIN).all()
    assert resumed_run.info.run_name == "crash and resume"
    assert_each_step_logged_once(resumed_run.info.run_id)
    resumed, uninterrupted = by_step(resumed_run.info.run_id), by_step(table.loc[8, "run_id"])
    assert list(resumed) == list(uninterrupted) == [0, 1]  # the preset's two epochs
    assert list(resumed.values()) == pytest.approx(list(uninterrupted.values()), abs=1e-4)
