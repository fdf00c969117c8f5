"""The multilabel task end to end: training, LexGLUE's protocol, and a pyfunc naming categories."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from custom_module import lexglue
from custom_module.evaluation import evaluate_run, log_evaluation
from custom_module.serving import INPUT_EXAMPLE, PYFUNC_FILE, export_artifacts, signature
from custom_module.train import train
from data import LABEL_NAMES


@pytest.fixture(scope="module")
def report(tracking_store):
    run_id = train(preset_name="smoke", task="multilabel", experiment_name="tests-multilabel")
    report = evaluate_run(run_id)
    log_evaluation(report)
    return report


def test_lexglue_protocol_scores_nine_columns_at_one_half(report):
    test = report.predictions["test"]
    assert test.probabilities.shape == (len(test.categories), len(LABEL_NAMES))
    truth = np.column_stack([test.categories, test.categories.sum(axis=1) == 0])
    predicted = test.probabilities > 0.5
    predicted = np.column_stack([predicted, predicted.sum(axis=1) == 0])
    assert report.lexglue["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert report.lexglue["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0)
    )
    logged = mlflow.get_run(report.run_id).data.metrics
    assert logged["Eval_Test_LexGLUE_Micro_F1"] == pytest.approx(report.lexglue["micro_f1"])


def test_pyfunc_names_the_categories_above_the_threshold(report, tmp_path):
    # Saved rather than logged and registered: notebook 04's path is tested in test_serving.py.
    artifacts = export_artifacts(report.run_id, tmp_path / "artifacts")
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
        above = [name for name in LABEL_NAMES if row[f"prob_{name}"] > report.threshold]
        assert row["categories"] == "; ".join(above)
        assert row["prob_unfair"] == pytest.approx(max(row[category_columns]))
        assert row["label"] == ("unfair" if above else "fair")


def test_notebook_03s_lexglue_section_scores_the_best_epoch_like_the_report(report):
    result = lexglue.multilabel_result(report.run_id)
    assert result["best_epoch"] == report.best_epoch
    assert result["micro_f1"] == pytest.approx(100 * report.lexglue["micro_f1"], abs=0.05)
    assert result["macro_f1"] == pytest.approx(100 * report.lexglue["macro_f1"], abs=0.05)
    assert list(result["f1_per_column"]) == [*LABEL_NAMES, lexglue.NO_UNFAIR_LABEL]
    # Read as the binary task, the same predictions give the report's scores at 0.5.
    for name in ("f1", "pr_auc"):
        expected = report.test_at_default_threshold[name]
        assert result["as_binary"][name] == pytest.approx(expected, abs=1e-4)
    table = lexglue.comparison_table(result)
    assert len(table) == len(lexglue.PUBLISHED) + 1
    assert table["macro_f1"].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("macro_f1", "words"),
    [
        (80.0, ["5.0 points above", "and above the collapsed"]),
        (10.0, ["65.0 points below", "but not above the collapsed"]),
    ],
)
def test_describe_says_where_the_run_stands(macro_f1, words):
    columns = dict.fromkeys(LABEL_NAMES, 50.0) | {"Arbitration": 20.0}
    sentence = lexglue.describe({"micro_f1": 95.0, "macro_f1": macro_f1, "f1_per_column": columns})
    assert all(word in sentence for word in words), sentence
    assert "'Arbitration' (F1 20.0)" in sentence


@pytest.mark.parametrize(
    ("as_binary", "words"),
    [
        ({"f1": 0.79, "pr_auc": 0.87}, "the binary run stays the better model"),
        ({"f1": 0.79, "pr_auc": 0.90}, "the binary run stays the better model"),
        ({"f1": 0.82, "pr_auc": 0.90}, "one model could serve both questions"),
    ],
)
def test_describe_as_binary_says_which_model_answers_fair_vs_unfair(as_binary, words):
    sentence = lexglue.describe_as_binary({"as_binary": as_binary}, {"f1": 0.8, "pr_auc": 0.88})
    assert words in sentence, sentence
    assert f"F1 {as_binary['f1']:.3f}" in sentence and "against 0.800 and 0.880" in sentence


def test_a_binary_run_is_refused_with_what_to_train_instead(smoke_run_id):
    with pytest.raises(ValueError, match="--task multilabel"):
        lexglue.multilabel_result(smoke_run_id)
