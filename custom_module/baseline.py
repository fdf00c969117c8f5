"""TF-IDF + linear SVM baseline for binary UNFAIR-ToS, side by side with a LoRA run.

`python -m custom_module.baseline [--run-id RUN]` fits the baseline on the training split,
scores the test split, and prints its F1 next to the run's `Test_F1_Score` (by default the
latest finished run of the tutorial's experiment). The LoRA model is only worth its cost if it
beats this by a clear margin.
"""

from __future__ import annotations

import argparse

import pandas as pd
from mlflow.entities import Run
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from custom_module.config import TrainConfig
from custom_module.tracking import configure_tracking, get_run, latest_finished_run
from data import load_unfair_tos, to_targets


def baseline_test_metrics(data_path: str | None = None) -> dict[str, float]:
    """Fit TF-IDF (word 1-2 grams) + LinearSVC on train; precision, recall, F1 on test."""
    dataset = load_unfair_tos(data_path)
    train_y = to_targets(list(dataset["train"]["labels"]), "binary").ravel()
    test_y = to_targets(list(dataset["test"]["labels"]), "binary").ravel()
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LinearSVC(C=1.0, class_weight="balanced"),
    )
    model.fit(list(dataset["train"]["text"]), train_y)
    predicted = model.predict(list(dataset["test"]["text"]))
    return {
        "precision": precision_score(test_y, predicted),
        "recall": recall_score(test_y, predicted),
        "f1": f1_score(test_y, predicted),
    }


def comparison_table(run: Run, data_path: str | None = None) -> pd.DataFrame:
    """Test precision, recall and F1 of the baseline and of a LoRA run, side by side."""
    lora = {name: run.data.metrics.get(f"Test_{name.title()}") for name in ("precision", "recall")}
    lora["f1"] = run.data.metrics.get("Test_F1_Score")
    table = pd.DataFrame(
        {"TF-IDF + LinearSVC": baseline_test_metrics(data_path), "LoRA run": lora}
    ).round(3)
    table.loc["f1", "LoRA - baseline"] = (
        table.loc["f1", "LoRA run"] - table.loc["f1", "TF-IDF + LinearSVC"]
    )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    parser.add_argument("--run-id", help="LoRA run to compare; default: latest finished run")
    parser.add_argument("--experiment-name", default=TrainConfig.experiment_name)
    args = parser.parse_args(argv)
    configure_tracking()
    run = get_run(args.run_id) if args.run_id else latest_finished_run(args.experiment_name)
    print(f"run {run.info.run_id} against the baseline, test split:")
    print(comparison_table(run, args.data_path).to_string(na_rep=""))


if __name__ == "__main__":
    main()
