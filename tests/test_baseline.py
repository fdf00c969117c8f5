"""The TF-IDF baseline meets a sampled LoRA run on the same clauses."""

from __future__ import annotations

import pytest
from taught import BASELINE_F1

from custom_module import baseline
from custom_module.config import TrainConfig
from data import LexGlueDataModule, load_unfair_tos


def test_a_sampled_baseline_trains_and_tests_on_the_data_modules_sample():
    dataset = load_unfair_tos(None)
    config = TrainConfig(debug_mode_sample=64, test_sample_size=100, seed=7)
    datamodule = LexGlueDataModule(config)
    datamodule.setup()
    for split in ("train", "test"):
        texts, targets = baseline.split_texts_and_targets(dataset, split, config)
        assert texts == datamodule.texts[split]
        assert targets.tolist() == datamodule.split(split).targets.ravel().tolist()


def test_without_a_sample_the_baseline_sees_every_clause():
    dataset = load_unfair_tos(None)
    texts, targets = baseline.split_texts_and_targets(dataset, "test", TrainConfig(seed=7))
    assert len(texts) == len(targets) == 1607


def test_on_every_clause_the_baseline_scores_what_the_readme_reports():
    scores = baseline.baseline_test_metrics()  # deterministic: the README's 0.775 and 0.868
    assert scores["f1"] == pytest.approx(BASELINE_F1, abs=0.0005)
    assert scores["pr_auc"] == pytest.approx(0.868, abs=0.0005)
