"""Evaluate a training run: score every logged epoch, then report the best one at the threshold
notebook 03 chooses, stored as the tag `decision_threshold` for notebook 04 (`logged_report`)."""

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytorch_lightning as pl
from matplotlib.figure import Figure
from sklearn import metrics
from torch.utils.data import DataLoader

from custom_module.checkpoints import load_epoch, logged_epochs, tagged_best_epoch
from custom_module.config import TrainConfig
from custom_module.module import TransformerModule
from custom_module.tracking import THRESHOLD_TAG, get_run, run_config
from data import LABEL_NAMES, LexGlueDataModule, sample_rows

EVAL_SPLITS = ("validation", "test")
DEFAULT_THRESHOLD = 0.5
REPORT_ARTIFACT = "evaluation/report.json"
NO_UNFAIR_LABEL = "no unfair label"
# `binary_scores`' keys -> the names the module logs them under (`Test_F1_Score`), and notebook 03.
TEST_METRICS = {"precision": "Precision", "recall": "Recall", "f1": "F1_Score", "pr_auc": "PR_AUC"}
# Test μ-F1 / m-F1 (%): the LexGLUE paper (Chalkidis et al., ACL 2022) and two hub models. MiniLM
# never flags the rare categories: μ-F1, dominated by fair clauses, hides that; m-F1 does not.
PUBLISHED = pd.DataFrame(
    [
        ("TF-IDF SVM", "LexGLUE paper", 94.7, 75.0),
        ("BERT", "LexGLUE paper", 95.6, 81.3),
        ("RoBERTa-base", "LexGLUE paper", 95.2, 79.2),
        ("Legal-BERT", "LexGLUE paper", 96.0, 83.0),
        ("DistilBERT", "community", 97.1, 79.4),
        ("MiniLM", "community", 93.9, 13.2),
    ],
    columns=["model", "source", "micro_f1", "macro_f1"],
)


@dataclass
class SplitPredictions:
    """A split's probabilities next to its ground truth, row for row."""

    probabilities: np.ndarray  # (clauses, num_labels)
    categories: np.ndarray  # (clauses, 8) multi-hot ground truth

    @property
    def prob_unfair(self) -> np.ndarray:  # multilabel: the highest category probability
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
    """Probabilities, (clauses, num_labels), in file order, also for length-sorted batches."""
    trainer = pl.Trainer(
        devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    outputs = np.concatenate([batch.numpy() for batch in trainer.predict(module, dataloader)])
    restore_order = getattr(dataloader.batch_sampler, "restore_order", None)  # length-sorted
    return outputs if restore_order is None else restore_order(outputs)


def predict_split(
    module: TransformerModule, datamodule: LexGlueDataModule, split: str
) -> SplitPredictions:
    """`module`'s probabilities on a split, beside the split's categories (both in file order)."""
    return SplitPredictions(
        predict(module, datamodule.eval_dataloader(split)), datamodule.categories[split]
    )


def binary_scores(truth: np.ndarray, prob_unfair: np.ndarray, threshold: float) -> dict:
    """Precision, recall and F1 of the unfair class at `threshold`, PR-AUC, confusion matrix."""
    predicted = (prob_unfair > threshold).astype(int)
    return {
        "threshold": float(threshold),
        "precision": float(metrics.precision_score(truth, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(truth, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(truth, predicted, zero_division=0)),
        "pr_auc": float(metrics.average_precision_score(truth, prob_unfair)),
        "confusion_matrix": metrics.confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
    }


def paired_bootstrap(
    truth: np.ndarray, flags: np.ndarray, other: np.ndarray, resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """F1 of `flags` minus F1 of `other` (0/1 per clause), and its paired 95% bootstrap interval:
    one that excludes 0 is a difference this split can tell from luck."""
    truth, flags, other = (np.asarray(a).astype(bool) for a in (truth, flags, other))
    every = np.arange(len(truth))[None]  # the split itself, beside its resamples
    rows = np.random.default_rng(seed).integers(0, len(truth), (resamples, len(truth)))

    def f1(answers: np.ndarray, rows: np.ndarray) -> np.ndarray:  # 2 TP / (2 TP + FP + FN)
        hits = (answers & truth)[rows].sum(axis=1)
        return 2 * hits / np.maximum(answers[rows].sum(axis=1) + truth[rows].sum(axis=1), 1)

    low, high = np.percentile(f1(flags, rows) - f1(other, rows), [2.5, 97.5])
    point = (f1(flags, every) - f1(other, every))[0]
    return {"difference": float(point), "low": float(low), "high": float(high)}


def recall_per_category(predictions: SplitPredictions, threshold: float) -> dict[str, float]:
    """For each category, the share of its clauses flagged unfair: which kinds the model misses."""
    flagged = predictions.prob_unfair > threshold
    members = {name: predictions.categories[:, i] == 1 for i, name in enumerate(LABEL_NAMES)}
    return {name: round(float(flagged[m].mean()), 4) for name, m in members.items() if m.any()}


def lexglue_scores(predictions: SplitPredictions) -> dict:
    """LexGLUE's protocol at 0.5: μ-F1, m-F1, each column's F1 (8 categories, "no unfair label")."""
    truth = predictions.categories.astype(int)
    predicted = (predictions.probabilities > DEFAULT_THRESHOLD).astype(int)
    truth, predicted = (np.column_stack([m, m.sum(axis=1) == 0]) for m in (truth, predicted))
    per_column = metrics.f1_score(truth, predicted, average=None, zero_division=0)
    return {
        "micro_f1": float(metrics.f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(np.mean(per_column)),
        "f1_per_column": dict(
            zip([*LABEL_NAMES, NO_UNFAIR_LABEL], per_column.astype(float).tolist(), strict=True)
        ),
    }


def multilabel_test_predictions(run_id: str) -> SplitPredictions:
    """A multilabel run's best epoch on the whole test split, as LexGLUE scores; else ValueError."""
    run = get_run(run_id)
    config = run_config(run)
    if config.task != "multilabel":
        raise ValueError(
            f"Run {run_id} was trained for the {config.task!r} task; LexGLUE's protocol needs "
            "one output per category: train with `--num-classes 8` (docs/lexglue.md)."
        )
    datamodule = LexGlueDataModule(config.replace(test_sample_size=None))
    module = load_epoch(run, tagged_best_epoch(run))
    return predict_split(module, datamodule, "test")


def lexglue_result(test: SplitPredictions) -> dict:
    """`lexglue_scores` in percent, rounded as the paper reports them."""
    scores = lexglue_scores(test)
    return {
        "micro_f1": round(100 * scores["micro_f1"], 1),
        "macro_f1": round(100 * scores["macro_f1"], 1),
        "f1_per_column": {k: round(100 * v, 1) for k, v in scores["f1_per_column"].items()},
    }


def lexglue_table(result: dict, name: str = "MiniLM + LoRA (this run)") -> pd.DataFrame:
    """The run's μ-F1 and m-F1 (`lexglue_result`) among the published ones, best m-F1 first."""
    ours = pd.DataFrame(
        [(name, "this tutorial", result["micro_f1"], result["macro_f1"])], columns=PUBLISHED.columns
    )
    table = pd.concat([PUBLISHED, ours], ignore_index=True)
    return table.sort_values("macro_f1", ascending=False).set_index("model")


def same_clauses(test: SplitPredictions, config: TrainConfig) -> SplitPredictions:
    """The rows of whole-test-split predictions that a run with `config` was tested on."""
    keep = sample_rows("test", test.categories, config)
    return SplitPredictions(test.probabilities[keep], test.categories[keep])


def evaluate_run(run_id: str) -> ScoredRun:
    """Each logged epoch scored at 0.5, and the best epoch's predictions, to tune the threshold."""
    run = get_run(run_id)  # looked up once, and its checkpoints listed once
    config, epochs = run_config(run), logged_epochs(run)
    datamodule, best = LexGlueDataModule(config), tagged_best_epoch(run)
    rows, kept = [], {}
    for epoch in epochs:
        module = load_epoch(run, epoch, epochs)
        predictions = {split: predict_split(module, datamodule, split) for split in EVAL_SPLITS}
        val, tst = (
            binary_scores(p.is_unfair, p.prob_unfair, DEFAULT_THRESHOLD)
            for p in (predictions["validation"], predictions["test"])
        )
        row = {"val_f1": val["f1"], "val_pr_auc": val["pr_auc"], "test_f1": tst["f1"]}
        rows.append({"epoch": epoch} | {name: round(value, 4) for name, value in row.items()})
        if epoch == best:
            kept = predictions
    return ScoredRun(run_id, config.task, best, pd.DataFrame(rows).set_index("epoch"), kept)


def build_report(
    scored: ScoredRun,
    threshold: float,
    tuned_threshold: float,
    threshold_folds: pd.DataFrame | None = None,
) -> dict:
    """The best epoch at the served `threshold` (notebook 03's choice: tuned or 0.5), test also at
    both; `threshold_folds`: the evidence, per block. Notebook 04 and `serving` read these keys."""
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
    client, run_id = mlflow.MlflowClient(), report["run_id"]
    logged = {f"Eval_Test_{name}": report["test"][key] for key, name in TEST_METRICS.items()}
    if report["lexglue"]:
        logged["Eval_Test_LexGLUE_Micro_F1"] = report["lexglue"]["micro_f1"]
        logged["Eval_Test_LexGLUE_Macro_F1"] = report["lexglue"]["macro_f1"]
    for name, value in logged.items():
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
            f"Run {run_id} has not been evaluated yet: run notebook 03 on it first "
            f"(`python -m custom_module.run_notebooks --notebook 03 -p run_id {run_id}`)."
        )
    report = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{REPORT_ARTIFACT}")
    return {**report, "threshold": float(run.data.tags[THRESHOLD_TAG])}
