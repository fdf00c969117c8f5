"""Evaluation of a run: per-epoch scores, threshold tuning, LexGLUE's protocol, logging."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from sklearn.metrics import f1_score

from custom_module.evaluation import (
    SplitPredictions,
    choose_threshold,
    evaluate_run,
    lexglue_scores,
    log_evaluation,
    logged_report,
    recall_per_category,
    tune_threshold,
)


@pytest.fixture(scope="module")
def report(smoke_run_id):
    return evaluate_run(smoke_run_id)


def test_every_logged_epoch_is_scored_and_matches_what_training_logged(report, smoke_run):
    # The module's torchmetrics and sklearn, on the same checkpoints and clauses, must agree.
    client = mlflow.MlflowClient()
    logged = {
        m.step: m.value for m in client.get_metric_history(smoke_run.info.run_id, "Val_F1_Score")
    }
    assert [row["epoch"] for row in report.epochs] == sorted(logged)
    for row in report.epochs:
        assert row["val_f1"] == pytest.approx(logged[row["epoch"]], abs=1e-4)
    best = next(row for row in report.epochs if row["epoch"] == report.best_epoch)
    assert best["test_f1"] == pytest.approx(smoke_run.data.metrics["Test_F1_Score"], abs=1e-4)


def test_best_epoch_is_the_one_tagged_by_training(report, smoke_run_id):
    assert report.best_epoch == int(mlflow.get_run(smoke_run_id).data.tags["best_epoch"])


def test_test_report_is_at_the_served_threshold(report):
    validation, test = report.predictions["validation"], report.predictions["test"]
    tuned = tune_threshold(validation.is_unfair, validation.prob_unfair)
    assert report.tuned_threshold == pytest.approx(tuned, abs=1e-6)
    assert report.threshold in (pytest.approx(tuned, abs=1e-6), 0.5)
    assert report.test["threshold"] == pytest.approx(report.threshold, abs=1e-6)
    predicted = test.prob_unfair > report.test["threshold"]
    assert report.test["f1"] == pytest.approx(f1_score(test.is_unfair, predicted))
    assert np.array(report.test["confusion_matrix"]).sum() == len(test.is_unfair)


def test_tuned_threshold_maximises_f1():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 300)
    scores = np.clip(truth * 0.3 + rng.normal(0.35, 0.2, 300), 0, 1)
    threshold = tune_threshold(truth, scores)
    best = max(f1_score(truth, scores > t) for t in np.unique(scores))
    assert f1_score(truth, scores > threshold) == pytest.approx(best)
    assert threshold not in set(scores)


def separable_blocks(noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """500 clauses, about 1 in 5 unfair; unfair ones score about 0.35 and fair ones 0.2: well
    ranked, but all below 0.5, so a tuned threshold helps everywhere."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(500) < 0.2).astype(int)
    return truth, np.clip(0.2 + truth * 0.15 + rng.normal(0, noise, 500), 0, 1)


def test_a_tuned_threshold_that_helps_on_every_held_out_block_is_served():
    truth, scores = separable_blocks(noise=0.02)  # every unfair clause scores ~0.35, below 0.5
    threshold, tuned, folds = choose_threshold(truth, scores)
    assert folds["tuning_helps"].all() and len(folds) == 5
    assert threshold == tuned == pytest.approx(tune_threshold(truth, scores))
    assert folds["clauses"].sum() == len(truth)


def test_threshold_stays_at_one_half_unless_tuning_helps_on_every_block():
    truth = np.tile([1, 0, 0, 0, 0], 100)
    scores = np.where(truth == 1, 0.9, 0.1)  # perfectly ranked and calibrated: 0.5 is optimal
    scores[:100] = np.where(truth[:100] == 1, 0.45, 0.1)  # one block's quirk: low scores
    threshold, tuned, folds = choose_threshold(truth, scores)
    assert not folds["tuning_helps"].all()
    assert threshold == 0.5


def test_recall_per_category_counts_flagged_clauses_of_each_category():
    categories = np.zeros((4, 8))
    categories[[0, 1], 0] = 1  # two "Limitation of liability" clauses, one flagged
    categories[2, 3] = 1  # one "Content removal" clause, flagged
    predictions = SplitPredictions(np.array([[0.9], [0.1], [0.7], [0.2]]), categories)
    recall = recall_per_category(predictions, threshold=0.5)
    assert recall == {"Limitation of liability": 0.5, "Content removal": 1.0}


def test_lexglue_protocol_adds_the_no_label_column():
    categories = np.zeros((3, 8))
    categories[0, 1] = 1
    probabilities = np.full((3, 8), 0.1)
    probabilities[0, 1] = 0.9  # right
    probabilities[1, 2] = 0.8  # a fair clause called unfair: wrong label, no-label column off
    scores = lexglue_scores(SplitPredictions(probabilities, categories))
    # Per column (9): label 1 TP; label 2 FP; no-label column: TP (row 2), FN (row 1).
    assert scores["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert scores["macro_f1"] == pytest.approx((1.0 + 0.0 + 2 / 3) / 9)


def test_logged_report_round_trips_and_unevaluated_runs_say_so(report, tracking_store):
    with mlflow.start_run(run_name="never-evaluated") as unevaluated:
        pass
    with pytest.raises(LookupError, match="not been evaluated"):
        logged_report(unevaluated.info.run_id)
    log_evaluation(report)
    stored = logged_report(report.run_id)
    assert stored["threshold"] == report.threshold
    assert stored["best_epoch"] == report.best_epoch
    run = mlflow.get_run(report.run_id)
    assert run.data.metrics["Eval_Test_F1_Score"] == pytest.approx(report.test["f1"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(report.run_id, "evaluation")}
    assert artifacts == {
        "evaluation/report.json",
        "evaluation/pr_curve.png",
        "evaluation/confusion.png",
    }
