"""TF-IDF + linear SVM baseline for binary UNFAIR-ToS, next to a LoRA run's `Test_*` metrics
(notebook 02): the LoRA model is only worth its cost if it beats this by a clear margin."""

import numpy as np
import pandas as pd
from mlflow.entities import Run
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from custom_module.config import TrainConfig
from custom_module.data import load_unfair_tos, sample_rows, to_targets
from custom_module.evaluation import TEST_METRICS, binary_scores
from custom_module.tracking import run_config

BASELINE = "TF-IDF + LinearSVC"
LORA = "LoRA run"


def split_texts_and_targets(
    dataset, split: str, config: TrainConfig
) -> tuple[list[str], np.ndarray]:
    """A split's clauses and unfair-or-not targets, the rows a LoRA run with `config` uses
    (`data.sample_rows`), so that the two models meet on equal terms."""
    texts = list(dataset[split]["text"])
    targets = to_targets(list(dataset[split]["labels"]), "binary")
    keep = sample_rows(split, targets, config)
    return [texts[i] for i in keep], targets[keep].ravel()


def baseline_test_metrics(config: TrainConfig | None = None) -> dict:
    """Fit TF-IDF (word 1-2 grams) + LinearSVC on the training rows of `config` (its data, sample
    and seed); `binary_scores` on its test rows, with the SVM's decision function (its ranking of
    the clauses, unfair above 0) in place of a probability; every clause without `config`."""
    config = config or TrainConfig()
    dataset = load_unfair_tos(config.data_path)
    train_texts, train_y = split_texts_and_targets(dataset, "train", config)
    test_texts, test_y = split_texts_and_targets(dataset, "test", config)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LinearSVC(C=1.0, class_weight="balanced"),
    )
    model.fit(train_texts, train_y)
    return binary_scores(test_y, model.decision_function(test_texts), threshold=0.0)


def comparison_table(run: Run, data_path: str | None = None) -> pd.DataFrame:
    """Test scores of the baseline and of a LoRA run (its best epoch, at 0.5), and the difference;
    a run trained on a sample meets a baseline trained on the same sample, on the same test rows."""
    config = run_config(run.info.run_id)
    lora = {key: run.data.metrics[f"Test_{name}"] for key, name in TEST_METRICS.items()}
    baseline = baseline_test_metrics(config.replace(data_path=data_path or config.data_path))
    table = pd.DataFrame({BASELINE: {key: baseline[key] for key in lora}, LORA: lora})
    table["LoRA - baseline"] = table[LORA] - table[BASELINE]
    return table.round(3)
