"""The multilabel task end to end: training, LexGLUE's protocol, and a pyfunc naming categories."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from custom_module import evaluation
from custom_module.checkpoints import load_epoch
from custom_module.evaluation import (
    DEFAULT_THRESHOLD,
    binary_scores,
    build_report,
    evaluate_run,
    log_evaluation,
    predict,
    same_clauses,
)
from custom_module.serving import INPUT_EXAMPLE, PYFUNC_FILE, export_artifacts, signature
from custom_module.tracking import run_config
from custom_module.train import train
from data import LABEL_NAMES, LexGlueDataModule

# Trains through notebook 02 (minutes): `make test-fast` leaves these out.
pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def scored(tracking_store):
    run_id = train(preset_name="smoke", num_classes=8, experiment_name="tests-multilabel")
    return evaluate_run(run_id)


@pytest.fixture(scope="module")
def report(scored):
    # Served at 0.5, untuned: these tests are about LexGLUE's protocol and the pyfunc;
    # notebook 03's threshold rule is checked in test_evaluation.py.
    report = build_report(scored, DEFAULT_THRESHOLD, tuned_threshold=DEFAULT_THRESHOLD)
    log_evaluation(report)
    return report


def test_lexglue_protocol_scores_nine_columns_at_one_half(scored, report):
    test = scored.predictions["test"]
    assert test.probabilities.shape == (len(test.categories), len(LABEL_NAMES))
    truth = np.column_stack([test.categories, test.categories.sum(axis=1) == 0])
    predicted = test.probabilities > 0.5
    predicted = np.column_stack([predicted, predicted.sum(axis=1) == 0])
    lexglue_scores = report["lexglue"]
    assert lexglue_scores["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert lexglue_scores["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0)
    )
    logged = mlflow.get_run(report["run_id"]).data.metrics
    assert logged["Eval_Test_LexGLUE_Micro_F1"] == pytest.approx(lexglue_scores["micro_f1"])


def test_pyfunc_names_the_categories_above_the_threshold(report, tmp_path):
    # Saved rather than logged and registered: notebook 04's path is tested in test_serving.py.
    merged = load_epoch(report["run_id"], report["best_epoch"])
    merged.model = merged.model.merge_and_unload()
    artifacts = export_artifacts(report["run_id"], merged, tmp_path / "artifacts")
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=str(PYFUNC_FILE),
        artifacts=artifacts,
        signature=signature("multilabel"),
        input_example=INPUT_EXAMPLE,
    )
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    clauses = ["we may terminate your account at any time .", "you can contact support ."]
    answer = model.predict(pd.DataFrame({"text": clauses}))
    category_columns = [f"prob_{name}" for name in LABEL_NAMES]
    assert list(answer.columns) == ["label", "prob_unfair", "categories", *category_columns]
    for _, row in answer.iterrows():
        above = [name for name in LABEL_NAMES if row[f"prob_{name}"] > report["threshold"]]
        assert row["categories"] == "; ".join(above)
        assert row["prob_unfair"] == pytest.approx(max(row[category_columns]))
        assert row["label"] == ("unfair" if above else "fair")


@pytest.fixture(scope="module")
def whole_test_split(report) -> evaluation.SplitPredictions:
    return evaluation.multilabel_test_predictions(report["run_id"])


def test_notebook_03s_lexglue_section_scores_the_best_epoch_like_the_report(
    report, whole_test_split
):
    assert len(whole_test_split.probabilities) == 1607  # LexGLUE scores the whole split
    # On the run's own sample, the same scores as the report of its best epoch.
    own = evaluation.lexglue_result(same_clauses(whole_test_split, run_config(report["run_id"])))
    assert own["micro_f1"] == pytest.approx(100 * report["lexglue"]["micro_f1"], abs=0.05)
    assert own["macro_f1"] == pytest.approx(100 * report["lexglue"]["macro_f1"], abs=0.05)
    result = evaluation.lexglue_result(whole_test_split)
    assert list(result["f1_per_column"]) == [*LABEL_NAMES, evaluation.NO_UNFAIR_LABEL]
    table = evaluation.lexglue_table(result)
    assert len(table) == len(evaluation.PUBLISHED) + 1
    assert table["macro_f1"].is_monotonic_decreasing


def test_read_as_binary_on_its_own_clauses_it_scores_as_the_report_at_one_half(
    report, whole_test_split
):
    own = same_clauses(whole_test_split, run_config(report["run_id"]))
    as_binary = binary_scores(own.is_unfair, own.prob_unfair, DEFAULT_THRESHOLD)
    expected = report["test_at_default_threshold"]
    assert as_binary["confusion_matrix"] == expected["confusion_matrix"]
    assert as_binary["pr_auc"] == pytest.approx(expected["pr_auc"], abs=1e-4)


def test_read_as_binary_it_scores_the_clauses_of_the_binary_run_it_is_compared_with(
    report, smoke_run_id, whole_test_split
):
    # Another sample than the multilabel run's own (64 clauses, seed 42), sampled for the
    # binary task: the comparison must score exactly the clauses that run was tested on.
    binary_config = run_config(smoke_run_id).replace(test_sample_size=48, seed=7)
    datamodule = LexGlueDataModule(binary_config)
    module = load_epoch(report["run_id"], report["best_epoch"])
    prob_unfair = predict(module, datamodule.eval_dataloader("test")).max(axis=1)
    is_unfair = datamodule.categories["test"].max(axis=1)
    expected = binary_scores(is_unfair, prob_unfair, DEFAULT_THRESHOLD)
    chosen = same_clauses(whole_test_split, binary_config)
    as_binary = binary_scores(chosen.is_unfair, chosen.prob_unfair, DEFAULT_THRESHOLD)
    assert as_binary["confusion_matrix"] == expected["confusion_matrix"]
    assert as_binary["pr_auc"] == pytest.approx(expected["pr_auc"], abs=1e-4)


def test_a_binary_run_is_refused_with_what_to_train_instead(smoke_run_id):
    with pytest.raises(ValueError, match="--num-classes 8"):
        evaluation.multilabel_test_predictions(smoke_run_id)
