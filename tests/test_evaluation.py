"""Evaluation of a run: per-epoch scores, notebook 03's threshold rule, LexGLUE's protocol,
logging. The rule lives in the notebook's cells, so it is checked on what the notebook logged
when the command line executed it on the smoke run."""

from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pytest
from sklearn.metrics import f1_score

from custom_module.evaluation import (
    SplitPredictions,
    build_report,
    evaluate_run,
    lexglue_scores,
    log_evaluation,
    logged_report,
    paired_bootstrap,
    recall_per_category,
)


@pytest.fixture(scope="module")
def looked_up() -> Counter:
    return Counter()


@pytest.fixture(scope="module")
def scored(smoke_run_id, looked_up):
    """`evaluate_run` on the smoke run, counting how often it looks the run up and lists its
    artifacts (`looked_up`)."""
    get_run, list_artifacts = mlflow.get_run, mlflow.MlflowClient.list_artifacts

    def counted_get_run(*args, **kwargs):
        looked_up["run"] += 1
        return get_run(*args, **kwargs)

    def counted_list_artifacts(self, *args, **kwargs):
        looked_up["artifact listing"] += 1
        return list_artifacts(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlflow, "get_run", counted_get_run)
        patch.setattr(mlflow.MlflowClient, "list_artifacts", counted_list_artifacts)
        return evaluate_run(smoke_run_id)


@pytest.fixture(scope="module")
def executed(evaluated_and_served, smoke_run_id):
    """Notebook 03 on the smoke run, executed by the command line that logged_report names."""
    return {"results": evaluated_and_served["03"], "report": logged_report(smoke_run_id)}


@pytest.fixture(scope="module")
def notebook_report(executed):
    return executed["report"]


def best_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """The highest F1 any threshold reaches, by trying every one that changes a decision."""
    candidates = np.concatenate([[scores.min() - 1], np.unique(scores)])
    return max(f1_score(truth, scores > t, zero_division=0) for t in candidates)


def test_every_logged_epoch_is_scored_and_matches_what_training_logged(scored, smoke_run):
    # The module's torchmetrics and sklearn, on the same checkpoints and clauses, must agree.
    client = mlflow.MlflowClient()
    logged = {
        m.step: m.value for m in client.get_metric_history(smoke_run.info.run_id, "Val_F1_Score")
    }
    assert list(scored.epochs.index) == sorted(logged)
    for epoch, row in scored.epochs.iterrows():
        assert row["val_f1"] == pytest.approx(logged[epoch], abs=1e-4)
    best = scored.epochs.loc[scored.best_epoch]
    assert best["test_f1"] == pytest.approx(smoke_run.data.metrics["Test_F1_Score"], abs=1e-4)


def test_an_evaluation_looks_the_run_up_once_and_lists_its_checkpoints_once(scored, looked_up):
    # The package's lookups (MLflow's `load_checkpoint` reads the run's tags once per epoch
    # itself); listings: the checkpoints folder, then each epoch's folder in it.
    assert looked_up == {"run": 1, "artifact listing": 1 + len(scored.epochs)}


def test_the_kept_predictions_are_the_best_epoch_tagged_by_training(scored, smoke_run_id):
    assert scored.best_epoch == int(mlflow.get_run(smoke_run_id).data.tags["best_epoch"])
    test = scored.predictions["test"]
    f1 = f1_score(test.is_unfair, test.prob_unfair > 0.5)
    assert f1 == pytest.approx(scored.epochs.loc[scored.best_epoch, "test_f1"], abs=1e-4)


def test_the_command_line_evaluates_the_run_it_is_given(executed, smoke_run_id, scored):
    assert executed["results"]["run_id"] == smoke_run_id
    assert executed["results"]["served_threshold"] == executed["report"]["threshold"]
    assert executed["report"]["best_epoch"] == scored.best_epoch
    assert executed["report"]["epochs"] == scored.epochs.reset_index().to_dict("records")


def test_notebook_tunes_the_threshold_with_the_best_validation_f1(notebook_report, scored):
    validation = scored.predictions["validation"]
    truth, scores = validation.is_unfair, validation.prob_unfair
    tuned = notebook_report["tuned_threshold"]
    assert f1_score(truth, scores > tuned) == pytest.approx(best_f1(truth, scores))
    assert tuned not in set(scores)  # between two scores, so rounding cannot flip a clause


def test_notebook_scores_each_block_at_the_threshold_tuned_on_the_others(notebook_report, scored):
    validation = scored.predictions["validation"]
    truth, scores = validation.is_unfair, validation.prob_unfair
    folds = notebook_report["threshold_folds"]
    blocks = np.array_split(np.arange(len(truth)), len(folds))
    assert len(folds) == 5 and sum(row["clauses"] for row in folds) == len(truth)
    for row, held_out in zip(folds, blocks, strict=True):
        rest = np.setdiff1d(np.arange(len(truth)), held_out)
        tuned = row["tuned_threshold"]
        assert f1_score(truth[rest], scores[rest] > tuned) == pytest.approx(
            best_f1(truth[rest], scores[rest])
        )
        y, p = truth[held_out], scores[held_out]
        assert row["f1_at_0.5"] == pytest.approx(f1_score(y, p > 0.5, zero_division=0))
        assert row["f1_tuned"] == pytest.approx(f1_score(y, p > tuned, zero_division=0))
        assert row["tuning_helps"] == (row["f1_tuned"] > row["f1_at_0.5"])


def test_notebook_serves_the_tuned_threshold_only_if_it_helps_on_every_block(notebook_report):
    helps_everywhere = all(row["tuning_helps"] for row in notebook_report["threshold_folds"])
    expected = notebook_report["tuned_threshold"] if helps_everywhere else 0.5
    assert notebook_report["threshold"] == expected


def test_test_report_is_at_the_served_threshold(notebook_report, scored):
    test = scored.predictions["test"]
    served = notebook_report["test"]
    assert served["threshold"] == notebook_report["threshold"]
    assert served["f1"] == pytest.approx(
        f1_score(test.is_unfair, test.prob_unfair > served["threshold"])
    )
    assert np.array(served["confusion_matrix"]).sum() == len(test.is_unfair)
    tuned = notebook_report["test_at_tuned_threshold"]
    assert tuned["threshold"] == notebook_report["tuned_threshold"]
    assert served in (tuned, notebook_report["test_at_default_threshold"])


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


def test_logged_report_round_trips_and_unevaluated_runs_say_so(scored, tracking_store, executed):
    with mlflow.start_run(run_name="never-evaluated") as unevaluated:
        pass
    with pytest.raises(LookupError, match="not been evaluated"):
        logged_report(unevaluated.info.run_id)
    report = build_report(scored, threshold=0.4, tuned_threshold=0.4)
    figure = plt.figure()
    log_evaluation(report, {"evaluation/a_figure.png": figure})
    assert logged_report(scored.run_id) == report
    run = mlflow.get_run(scored.run_id)
    assert run.data.tags["decision_threshold"] == "0.4"
    assert run.data.metrics["Eval_Test_F1_Score"] == pytest.approx(report["test"]["f1"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(scored.run_id, "evaluation")}
    assert {"evaluation/report.json", "evaluation/a_figure.png"} <= artifacts
    assert not plt.fignum_exists(figure.number)  # logged figures are closed
    log_evaluation(executed["report"])  # leave the run as the notebook evaluated it


def test_paired_bootstrap_interval_separates_a_better_model_from_an_equal_one():
    rng = np.random.default_rng(1)
    truth = rng.random(600) < 0.15
    good = truth ^ (rng.random(600) < 0.05)  # wrong on 5% of the clauses
    also_good = truth ^ (rng.random(600) < 0.05)
    poor = truth ^ (rng.random(600) < 0.25)
    better = paired_bootstrap(truth, good, poor)
    expected = f1_score(truth, good) - f1_score(truth, poor)
    assert better["difference"] == pytest.approx(expected)
    assert 0 < better["low"] < better["difference"] < better["high"]
    equal = paired_bootstrap(truth, good, also_good)
    assert equal["low"] < 0 < equal["high"]
    same = paired_bootstrap(truth, good, good)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}


def test_paired_bootstrap_resamples_the_f1_sklearn_computes():
    """One resample of one clause set: the vectorised F1 is sklearn's, on the clauses drawn."""
    rng = np.random.default_rng(2)
    truth, predicted = rng.random(300) < 0.2, rng.random(300) < 0.2
    result = paired_bootstrap(truth, predicted, np.zeros(300), resamples=1, seed=5)
    rows = np.random.default_rng(5).integers(0, 300, (1, 300))[0]
    assert result["low"] == pytest.approx(f1_score(truth[rows], predicted[rows]))
