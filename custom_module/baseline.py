"""TF-IDF + linear SVM baseline for binary UNFAIR-ToS, next to a LoRA run's `Test_*` metrics
(notebook 02): the LoRA model is only worth its cost if it beats this by a clear margin."""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from custom_module.config import TrainConfig
from custom_module.evaluation import binary_scores
from data import load_unfair_tos, sample_rows, to_targets


def split_texts_and_targets(
    dataset, split: str, config: TrainConfig
) -> tuple[list[str], np.ndarray]:
    """A split's clauses and unfair-or-not targets, the rows a LoRA run with `config` uses
    (`data.sample_rows`), so that the two models meet on equal terms."""
    texts = list(dataset[split]["text"])
    targets = to_targets(list(dataset[split]["labels"]), "binary")
    keep = sample_rows(split, targets, config)
    return [texts[i] for i in keep], targets[keep].ravel()


def baseline_test_predictions(config: TrainConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit on the training rows of `config` (all without it); (unfair or not, the SVM's decision
    function: its ranking, unfair above 0) for its test rows, in the LoRA run's order."""
    config = config or TrainConfig()
    dataset = load_unfair_tos(config.data_path)
    train_texts, train_y = split_texts_and_targets(dataset, "train", config)
    test_texts, test_y = split_texts_and_targets(dataset, "test", config)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LinearSVC(C=1.0, class_weight="balanced"),
    )
    model.fit(train_texts, train_y)
    return test_y, model.decision_function(test_texts)


def baseline_test_metrics(config: TrainConfig | None = None) -> dict:
    """`binary_scores` of `baseline_test_predictions`, the decision function as the probability."""
    return binary_scores(*baseline_test_predictions(config), threshold=0.0)
