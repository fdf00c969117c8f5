"""Evaluate a training run: every epoch on validation and test, then the report on the run.

`evaluate_run(run_id)` loads each logged epoch's checkpoint, predicts the validation and test
splits, scores every epoch at threshold 0.5 and keeps the predictions of the best epoch that
training tagged (`best_epoch`). Notebook 03 chooses the decision threshold from those
validation predictions in its own cells; `build_report` then scores the test split at that
threshold, and `log_evaluation` puts the report, its metrics and plots on the run, and the
threshold as the tag `decision_threshold`, where notebook 04 reads it (`logged_report`).

The command line executes notebook 03, so it chooses the threshold as a reader does:
`python -m custom_module.evaluation [--run-id RUN]`.

An "unfair" prediction is P(unfair) above the threshold. In the `multilabel` task P(unfair) is
the highest category probability, and LexGLUE's own protocol is reported too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytorch_lightning as pl
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from torch.utils.data import DataLoader

from custom_module.checkpoints import load_epoch, logged_epochs, tagged_best_epoch
from custom_module.config import TrainConfig, run_config
from custom_module.module import TransformerModule
from custom_module.notebooks import NotebookFailed, run_notebook
from custom_module.results import read_results
from custom_module.tracking import get_run
from data import LABEL_NAMES, LengthSortedBatchSampler, LexGlueDataModule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EVAL_SPLITS = ("validation", "test")
DEFAULT_THRESHOLD = 0.5
THRESHOLD_TAG = "decision_threshold"
REPORT_ARTIFACT = "evaluation/report.json"
EVALUATION_NOTEBOOK = "03_checkpoint_evaluation.ipynb"


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
class ScoredRun:
    """Every logged epoch of a run scored at threshold 0.5, and the best epoch's predictions."""

    run_id: str
    task: str
    best_epoch: int  # the `best_epoch` tag: the epoch with the best validation F1
    epochs: pd.DataFrame  # index epoch: validation F1 and PR-AUC, test F1, at 0.5
    predictions: dict[str, SplitPredictions] = field(default_factory=dict, repr=False)


def predict(module: TransformerModule, dataloader: DataLoader) -> np.ndarray:
    """Probabilities, (clauses, num_labels), in the order of the dataloader's rows (file order,
    also for the data module's length-sorted evaluation batches)."""
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    outputs = np.concatenate([batch.numpy() for batch in trainer.predict(module, dataloader)])
    if isinstance(dataloader.batch_sampler, LengthSortedBatchSampler):
        return dataloader.batch_sampler.restore_order(outputs)
    return outputs


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
        "threshold": float(threshold),
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "pr_auc": float(average_precision_score(truth, prob_unfair)),
        "confusion_matrix": confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
    }


def recall_per_category(predictions: SplitPredictions, threshold: float) -> dict[str, float]:
    """For each category, the share of its clauses flagged unfair: which kinds the model misses."""
    flagged = predictions.prob_unfair > threshold
    recall = {}
    for index, name in enumerate(LABEL_NAMES):
        members = predictions.categories[:, index] == 1
        if members.any():
            recall[name] = round(float(flagged[members].mean()), 4)
    return recall


def lexglue_columns(predictions: SplitPredictions) -> tuple[np.ndarray, np.ndarray]:
    """Truth and predictions as LexGLUE scores them: sigmoid > 0.5 per category, plus an
    implicit ninth "no unfair label" column that is on when no category is."""
    truth = predictions.categories.astype(int)
    predicted = (predictions.probabilities > DEFAULT_THRESHOLD).astype(int)
    truth = np.column_stack([truth, truth.sum(axis=1) == 0])
    predicted = np.column_stack([predicted, predicted.sum(axis=1) == 0])
    return truth, predicted


def lexglue_scores(predictions: SplitPredictions) -> dict[str, float]:
    """LexGLUE's UNFAIR-ToS protocol: micro- and macro-F1 over the nine `lexglue_columns`
    (the paper reports 95.2 / 79.2 for RoBERTa-base)."""
    truth, predicted = lexglue_columns(predictions)
    return {
        "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def evaluate_run(run_id: str) -> ScoredRun:
    """Score every logged epoch of `run_id` on validation and test at 0.5, and keep the
    predictions of the best epoch (the `best_epoch` tag), which the threshold is chosen on."""
    config = run_config(run_id)
    datamodule = LexGlueDataModule.from_config(config)
    datamodule.setup()
    best = tagged_best_epoch(run_id)
    rows, kept = [], {}
    for epoch in logged_epochs(run_id):
        predictions = predict_splits(load_epoch(run_id, epoch), datamodule)
        rows.append(epoch_row(epoch, predictions))
        if epoch == best:
            kept = predictions
    return ScoredRun(
        run_id=run_id,
        task=config.task,
        best_epoch=best,
        epochs=pd.DataFrame(rows).set_index("epoch"),
        predictions=kept,
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


def build_report(
    scored: ScoredRun,
    threshold: float,
    tuned_threshold: float,
    threshold_folds: pd.DataFrame | None = None,
) -> dict:
    """The best epoch's evaluation at the served `threshold`, as `log_evaluation` stores it.

    Notebook 03 decides `threshold` (the tuned one, or 0.5) from the validation predictions;
    `tuned_threshold` is the best-F1 one on all of validation, and `threshold_folds` the
    per-block evidence for the decision. The test split is scored at the served threshold, at
    0.5 and at the tuned one, so the report shows what the decision cost or gained. The keys are
    what notebook 04, `serving` (best epoch, threshold, validation F1) and the tests read back.
    """
    validation, test = scored.predictions["validation"], scored.predictions["test"]
    folds = [] if threshold_folds is None else threshold_folds.reset_index().to_dict("records")
    return {
        "run_id": scored.run_id,
        "task": scored.task,
        "best_epoch": scored.best_epoch,
        "threshold": float(threshold),
        "tuned_threshold": float(tuned_threshold),
        "threshold_folds": folds,
        "epochs": scored.epochs.reset_index().to_dict("records"),
        # At the served threshold: how `serving.should_promote` compares champions.
        "validation": binary_scores(validation.is_unfair, validation.prob_unfair, threshold),
        "test": binary_scores(test.is_unfair, test.prob_unfair, threshold),
        "test_at_default_threshold": binary_scores(
            test.is_unfair, test.prob_unfair, DEFAULT_THRESHOLD
        ),
        "test_at_tuned_threshold": binary_scores(test.is_unfair, test.prob_unfair, tuned_threshold),
        "recall_per_category": recall_per_category(test, threshold),
        "lexglue": lexglue_scores(test) if scored.task == "multilabel" else None,
    }


def log_evaluation(report: dict, figures: dict[str, Figure] | None = None) -> None:
    """Put `report` (from `build_report`) on its run: the test metrics, the served threshold as
    the tag `decision_threshold`, the report as JSON, and `figures` under their artifact paths."""
    client = mlflow.MlflowClient()
    run_id = report["run_id"]
    metrics = {
        "Eval_Test_Precision": report["test"]["precision"],
        "Eval_Test_Recall": report["test"]["recall"],
        "Eval_Test_F1_Score": report["test"]["f1"],
        "Eval_Test_PR_AUC": report["test"]["pr_auc"],
    }
    if report["lexglue"]:
        metrics["Eval_Test_LexGLUE_Micro_F1"] = report["lexglue"]["micro_f1"]
        metrics["Eval_Test_LexGLUE_Macro_F1"] = report["lexglue"]["macro_f1"]
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    client.set_tag(run_id, THRESHOLD_TAG, str(report["threshold"]))
    # The threshold is stored once, as the tag; `logged_report` puts it back.
    stored = {key: value for key, value in report.items() if key != "threshold"}
    client.log_dict(run_id, stored, REPORT_ARTIFACT)
    for path, figure in (figures or {}).items():
        client.log_figure(run_id, figure, path)
        plt.close(figure)


def logged_report(run_id: str) -> dict:
    """The report `log_evaluation` stored on the run; LookupError if it was never evaluated."""
    run = get_run(run_id)
    if THRESHOLD_TAG not in run.data.tags:
        raise LookupError(
            f"Run {run_id} has not been evaluated yet: run notebook 03 or "
            f"`python -m custom_module.evaluation --run-id {run_id}` first."
        )
    report = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{REPORT_ARTIFACT}")
    return {**report, "threshold": float(run.data.tags[THRESHOLD_TAG])}


def evaluate(output: Path | None = None, log_output: bool = False, **parameters) -> dict:
    """Execute notebook 03 with `parameters` (its `parameters` cell's names, e.g. `run_id`) and
    return the report it logged. `output` keeps the executed notebook; by default it is
    discarded."""
    with tempfile.TemporaryDirectory() as scratch:
        path = output or Path(scratch) / EVALUATION_NOTEBOOK
        run_notebook(EVALUATION_NOTEBOOK, path, parameters, log_output)
        run_id = read_results(path)["run_id"]
    return logged_report(run_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", help="run to evaluate; default: latest finished run")
    parser.add_argument("--experiment-name", default=TrainConfig.experiment_name)
    parser.add_argument("--output", type=Path, help="keep the executed notebook 03 here")
    args = parser.parse_args(argv)
    try:
        report = evaluate(
            args.output, log_output=True, run_id=args.run_id, experiment_name=args.experiment_name
        )
    except NotebookFailed as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    test = report["test"]
    print(f"run_id: {report['run_id']}, best epoch {report['best_epoch']}")
    print(f"served threshold {report['threshold']}: test F1 {test['f1']:.4f}")


if __name__ == "__main__":
    main()
