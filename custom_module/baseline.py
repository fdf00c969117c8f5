"""TF-IDF + linear SVM baseline for binary UNFAIR-ToS, next to a LoRA run's `Test_*` metrics
(notebook 02): the LoRA model is only worth its cost if it beats this by a clear margin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.entities import Run
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from custom_module.config import TrainConfig
from custom_module.data import balanced_sample, load_unfair_tos, to_targets
from custom_module.tracking import run_config

BASELINE = "TF-IDF + LinearSVC"
LORA = "LoRA run"
SCORES = ("precision", "recall", "f1", "pr_auc")


def split_texts_and_targets(
    dataset, split: str, sample_size: int | None, seed: int
) -> tuple[list[str], np.ndarray]:
    """A split's clauses and unfair-or-not targets; with `sample_size`, `LexGlueDataModule`'s
    balanced sample, so that a sampled LoRA run meets the baseline on equal terms."""
    texts = list(dataset[split]["text"])
    targets = to_targets(list(dataset[split]["labels"]), "binary")
    if sample_size is not None:
        keep = balanced_sample(targets, sample_size, seed)
        texts, targets = [texts[i] for i in keep], targets[keep]
    return texts, targets.ravel()


def baseline_test_metrics(
    data_path: str | None = None, sample_size: int | None = None, seed: int = TrainConfig.seed
) -> dict[str, float]:
    """Fit TF-IDF (word 1-2 grams) + LinearSVC on train; precision, recall, F1 on test, and
    PR-AUC from the SVM's decision function (its ranking of the clauses)."""
    dataset = load_unfair_tos(data_path)
    train_texts, train_y = split_texts_and_targets(dataset, "train", sample_size, seed)
    test_texts, test_y = split_texts_and_targets(dataset, "test", sample_size, seed)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LinearSVC(C=1.0, class_weight="balanced"),
    )
    model.fit(train_texts, train_y)
    predicted = model.predict(test_texts)
    return {
        "precision": precision_score(test_y, predicted),
        "recall": recall_score(test_y, predicted),
        "f1": f1_score(test_y, predicted),
        "pr_auc": average_precision_score(test_y, model.decision_function(test_texts)),
    }


def comparison_table(run: Run, data_path: str | None = None) -> pd.DataFrame:
    """Test scores of the baseline and of a LoRA run (its best epoch, at 0.5), and the difference;
    a run trained on a sample meets a baseline trained and tested on the same sample."""
    config = run_config(run.info.run_id)
    metrics = run.data.metrics
    lora = {
        "precision": metrics["Test_Precision"],
        "recall": metrics["Test_Recall"],
        "f1": metrics["Test_F1_Score"],
        "pr_auc": metrics["Test_PR_AUC"],
    }
    baseline = baseline_test_metrics(data_path, config.sample_size, config.seed)
    table = pd.DataFrame({BASELINE: baseline, LORA: lora}).loc[list(SCORES)]
    table["LoRA - baseline"] = table[LORA] - table[BASELINE]
    return table.round(3)
