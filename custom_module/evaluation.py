"""Evaluate a training run: every epoch, the best one, a tuned threshold, the test report.

`evaluate_run(run_id)` loads each logged epoch's checkpoint, predicts the validation and test
splits, picks the best epoch on validation F1 (the `best_epoch` tag), tunes the decision
threshold on that epoch's validation predictions, and reports the test split at that
threshold. `log_evaluation` puts the report, its metrics and plots on the run, where notebook 04
finds the threshold. Also a command line: `python -m custom_module.evaluation [--run-id RUN]`.

An "unfair" prediction is P(unfair) above the threshold. In the `multilabel` task P(unfair) is
the highest category probability, and LexGLUE's own protocol is reported too.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytorch_lightning as pl
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
)

from custom_module.checkpoints import best_epoch, load_epoch, logged_epochs
from custom_module.module import TransformerModule
from custom_module.tracking import configure_tracking, get_run, latest_finished_run
from custom_module.train import build_datamodule, run_config
from data import LABEL_NAMES, LexGlueDataModule

EVAL_SPLITS = ("validation", "test")
DEFAULT_THRESHOLD = 0.5
THRESHOLD_TAG = "decision_threshold"
REPORT_ARTIFACT = "evaluation/report.json"


@dataclass
class SplitPredictions:
    """A split's probabilities next to its ground truth, row for row."""

    probabilities: np.ndarray  # (clauses, num_labels)
    categories: np.ndarray  # (clauses, 8) multi-hot ground truth

    @property
    def prob_unfair(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def is_unfair(self) -> np.ndarray:
        return self.categories.max(axis=1).astype(int)


@dataclass
class EvaluationReport:
    run_id: str
    task: str
    best_epoch: int
    threshold: float
    epochs: list[dict]  # per epoch: validation and test F1 at 0.5, validation PR-AUC
    test: dict  # precision, recall, F1, PR-AUC, confusion matrix at `threshold`
    test_at_default_threshold: dict
    recall_per_category: dict[str, float]
    lexglue: dict | None = None  # multilabel task only: micro/macro F1, LexGLUE's protocol
    predictions: dict[str, SplitPredictions] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        report = asdict(self)
        report.pop("predictions")
        return report


def predict(module: TransformerModule, dataloader) -> np.ndarray:
    """Probabilities, (clauses, num_labels), in the dataloader's order."""
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return np.concatenate([batch.numpy() for batch in trainer.predict(module, dataloader)])


def predict_splits(
    module: TransformerModule, datamodule: LexGlueDataModule
) -> dict[str, SplitPredictions]:
    return {
        split: SplitPredictions(
            predict(module, datamodule.eval_dataloader(split)), datamodule.categories[split]
        )
        for split in EVAL_SPLITS
    }


def classify_clauses(
    module: TransformerModule,
    datamodule: LexGlueDataModule,
    texts: list[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """P(unfair) and the fair/unfair decision at `threshold` for raw clause texts."""
    prob_unfair = predict(module, datamodule.texts_dataloader(texts)).max(axis=1)
    return pd.DataFrame(
        {
            "text": texts,
            "prob_unfair": prob_unfair.round(4),
            "label": np.where(prob_unfair > threshold, "unfair", "fair"),
        }
    )


def binary_scores(truth: np.ndarray, prob_unfair: np.ndarray, threshold: float) -> dict:
    """Precision, recall and F1 of the unfair class at `threshold`, PR-AUC, confusion matrix."""
    predicted = (prob_unfair > threshold).astype(int)
    return {
        "threshold": threshold,
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "pr_auc": float(average_precision_score(truth, prob_unfair)),
        "confusion_matrix": confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
    }


def tune_threshold(truth: np.ndarray, prob_unfair: np.ndarray) -> float:
    """The threshold with the best F1 on these (validation) predictions.

    Candidates are midpoints between neighbouring distinct probabilities, so the chosen
    threshold does not sit exactly on a validation score and is stable under rounding.
    """
    precision, recall, thresholds = precision_recall_curve(truth, prob_unfair)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    scores = np.unique(prob_unfair)
    below = scores[scores < thresholds[best]]
    return float((below[-1] + thresholds[best]) / 2) if len(below) else float(thresholds[best] / 2)


def recall_per_category(predictions: SplitPredictions, threshold: float) -> dict[str, float]:
    """For each category, the share of its clauses flagged unfair: which kinds the model misses."""
    flagged = predictions.prob_unfair > threshold
    recall = {}
    for index, name in enumerate(LABEL_NAMES):
        members = predictions.categories[:, index] == 1
        if members.any():
            recall[name] = round(float(flagged[members].mean()), 4)
    return recall


def lexglue_scores(predictions: SplitPredictions) -> dict[str, float]:
    """LexGLUE's UNFAIR-ToS protocol: sigmoid > 0.5 per category, plus an implicit ninth
    "no unfair label" column that is on when no category is; micro- and macro-F1 over all nine
    (the paper reports 95.2 / 79.2 for RoBERTa-base)."""
    truth = predictions.categories.astype(int)
    predicted = (predictions.probabilities > DEFAULT_THRESHOLD).astype(int)
    truth = np.column_stack([truth, truth.sum(axis=1) == 0])
    predicted = np.column_stack([predicted, predicted.sum(axis=1) == 0])
    return {
        "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def evaluate_run(run_id: str) -> EvaluationReport:
    """Evaluate every logged epoch of `run_id` and report the best one at a tuned threshold."""
    config = run_config(run_id)
    datamodule = build_datamodule(config)
    datamodule.setup()
    per_epoch = {
        epoch: predict_splits(load_epoch(run_id, epoch), datamodule)
        for epoch in logged_epochs(run_id)
    }
    epochs = [epoch_row(epoch, predictions) for epoch, predictions in per_epoch.items()]
    chosen = best_epoch(run_id)
    predictions = per_epoch[chosen]
    validation, test = predictions["validation"], predictions["test"]
    threshold = tune_threshold(validation.is_unfair, validation.prob_unfair)
    return EvaluationReport(
        run_id=run_id,
        task=config.task,
        best_epoch=chosen,
        threshold=round(threshold, 6),
        epochs=epochs,
        test=binary_scores(test.is_unfair, test.prob_unfair, threshold),
        test_at_default_threshold=binary_scores(
            test.is_unfair, test.prob_unfair, DEFAULT_THRESHOLD
        ),
        recall_per_category=recall_per_category(test, threshold),
        lexglue=lexglue_scores(test) if config.task == "multilabel" else None,
        predictions=predictions,
    )


def epoch_row(epoch: int, predictions: dict[str, SplitPredictions]) -> dict:
    validation, test = predictions["validation"], predictions["test"]
    val = binary_scores(validation.is_unfair, validation.prob_unfair, DEFAULT_THRESHOLD)
    tst = binary_scores(test.is_unfair, test.prob_unfair, DEFAULT_THRESHOLD)
    return {
        "epoch": epoch,
        "val_f1": round(val["f1"], 4),
        "val_pr_auc": round(val["pr_auc"], 4),
        "test_f1": round(tst["f1"], 4),
    }


def epochs_table(report: EvaluationReport) -> pd.DataFrame:
    """One row per epoch; threshold 0.5. The test column is for reading, never for choosing."""
    return pd.DataFrame(report.epochs).set_index("epoch")


def summary_at_thresholds(report: EvaluationReport) -> pd.DataFrame:
    """Test precision / recall / F1 / PR-AUC at 0.5 and at the tuned threshold, side by side."""
    names = ["threshold", "precision", "recall", "f1", "pr_auc"]
    return pd.DataFrame(
        {
            "threshold 0.5": [report.test_at_default_threshold[n] for n in names],
            "tuned on validation": [report.test[n] for n in names],
        },
        index=names,
    ).round(4)


def plot_pr_curve(report: EvaluationReport) -> plt.Figure:
    """The test precision-recall curve, with the tuned and the default threshold marked."""
    test = report.predictions["test"]
    figure, axis = plt.subplots(figsize=(5, 4))
    PrecisionRecallDisplay.from_predictions(
        test.is_unfair, test.prob_unfair, ax=axis, name=f"epoch {report.best_epoch}"
    )
    for label, scores, marker in (
        ("threshold 0.5", report.test_at_default_threshold, "s"),
        (f"tuned {report.threshold:.3f}", report.test, "o"),
    ):
        axis.plot(scores["recall"], scores["precision"], marker, label=label)
    axis.set_title("Test precision-recall, unfair class")
    axis.legend(loc="lower left")
    figure.tight_layout()
    return figure


def plot_confusion_matrix(report: EvaluationReport) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay(
        np.array(report.test["confusion_matrix"]), display_labels=["fair", "unfair"]
    ).plot(ax=axis, colorbar=False)
    axis.set_title(f"Test, threshold {report.threshold:.3f}")
    figure.tight_layout()
    return figure


def log_evaluation(report: EvaluationReport) -> None:
    """Put the report on its run: metrics, the tuned threshold as a tag, JSON and plots."""
    client = mlflow.MlflowClient()
    metrics = {
        "Eval_Threshold": report.threshold,
        "Eval_Test_Precision": report.test["precision"],
        "Eval_Test_Recall": report.test["recall"],
        "Eval_Test_F1_Score": report.test["f1"],
        "Eval_Test_PR_AUC": report.test["pr_auc"],
    }
    if report.lexglue:
        metrics["Eval_Test_LexGLUE_Micro_F1"] = report.lexglue["micro_f1"]
        metrics["Eval_Test_LexGLUE_Macro_F1"] = report.lexglue["macro_f1"]
    for name, value in metrics.items():
        client.log_metric(report.run_id, name, value)
    client.set_tag(report.run_id, THRESHOLD_TAG, str(report.threshold))
    client.log_dict(report.run_id, report.to_dict(), REPORT_ARTIFACT)
    client.log_figure(report.run_id, plot_pr_curve(report), "evaluation/pr_curve.png")
    client.log_figure(report.run_id, plot_confusion_matrix(report), "evaluation/confusion.png")
    plt.close("all")


def logged_report(run_id: str) -> dict:
    """The report `log_evaluation` stored on the run; LookupError if it was never evaluated."""
    run = get_run(run_id)
    if THRESHOLD_TAG not in run.data.tags:
        raise LookupError(
            f"Run {run_id} has not been evaluated yet: run notebook 03 or "
            f"`python -m custom_module.evaluation --run-id {run_id}` first."
        )
    return mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{REPORT_ARTIFACT}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", help="run to evaluate; default: latest finished run")
    parser.add_argument("--experiment-name", default="lexglue-unfair-tos-lora")
    args = parser.parse_args(argv)
    configure_tracking()
    run = get_run(args.run_id) if args.run_id else latest_finished_run(args.experiment_name)
    report = evaluate_run(run.info.run_id)
    log_evaluation(report)
    print(epochs_table(report).to_string())
    print(summary_at_thresholds(report).to_string())


if __name__ == "__main__":
    main()
