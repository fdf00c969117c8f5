"""TF-IDF + linear SVM baseline for binary UNFAIR-ToS, side by side with a LoRA run.

`python -m custom_module.baseline [--run-id RUN]` fits the baseline on the training split,
scores the test split, and prints it next to the run's `Test_*` metrics (by default the
latest finished run of the tutorial's experiment). The LoRA model is only worth its cost if it
beats this by a clear margin.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from mlflow.entities import Run
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from custom_module.config import TrainConfig, run_config
from custom_module.tracking import find_run
from data import balanced_sample, load_unfair_tos, to_targets

BASELINE = "TF-IDF + LinearSVC"
LORA = "LoRA run"
SCORES = ("precision", "recall", "f1", "pr_auc")


def split_texts_and_targets(
    dataset, split: str, sample_size: int | None, seed: int
) -> tuple[list[str], np.ndarray]:
    """A split's clauses and unfair-or-not targets; with `sample_size`, the same balanced
    sample `LexGlueDataModule` draws, so that a sampled LoRA run meets the baseline on equal
    terms."""
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
    """Test precision, recall, F1 and PR-AUC of the baseline and of a LoRA run, side by side,
    with the difference; the run's scores are at threshold 0.5, its best epoch. A run trained
    on a sample (`sample_size`) meets a baseline trained and tested on the same sample."""
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    parser.add_argument("--run-id", help="LoRA run to compare; default: latest finished run")
    parser.add_argument("--experiment-name", default=TrainConfig.experiment_name)
    args = parser.parse_args(argv)
    run = find_run(args.run_id, args.experiment_name)
    table = comparison_table(run, args.data_path)
    print(f"run {run.info.run_id} against the baseline, test split:")
    print(table.to_string())


if __name__ == "__main__":
    main()
