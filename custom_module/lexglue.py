"""LexGLUE's UNFAIR-ToS protocol on a multilabel run, beside the published scores (notebook 03).

LexGLUE scores the 8 unfairness categories as a multilabel task: sigmoid > 0.5 per category, and
an implicit ninth column, "no unfair label", on when no category is (`evaluation.lexglue_columns`).
μ-F1 pools every decision, so the many fair clauses dominate it; m-F1 averages the nine columns'
F1, so each rare category weighs as much as the common ones. A model that never flags a rare
category keeps a high μ-F1 and collapses on m-F1 (the community MiniLM entry below).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from custom_module.checkpoints import load_epoch, tagged_best_epoch
from custom_module.config import TrainConfig, run_config
from custom_module.evaluation import (
    DEFAULT_THRESHOLD,
    SplitPredictions,
    binary_scores,
    lexglue_columns,
    predict,
)
from data import LABEL_NAMES, LexGlueDataModule

# Test-split μ-F1 / m-F1 in percent: the LexGLUE paper (Chalkidis et al., ACL 2022),
# and two fine-tuned models published by the community on the Hugging Face hub.
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
NO_UNFAIR_LABEL = "no unfair label"


def multilabel_config(run_id: str) -> TrainConfig:
    """The run's config; ValueError, saying what to train instead, unless it is multilabel."""
    config = run_config(run_id)
    if config.task != "multilabel":
        raise ValueError(
            f"Run {run_id} was trained for the {config.task!r} task; LexGLUE's protocol needs "
            "one output per category: train with `--task multilabel` (see the README)."
        )
    return config


def best_epoch_on_test(run_id: str, config: TrainConfig) -> SplitPredictions:
    """The run's best epoch on the test clauses `config` describes (a sample, or all)."""
    datamodule = LexGlueDataModule.from_config(config)
    datamodule.setup()
    module = load_epoch(run_id, tagged_best_epoch(run_id))
    return SplitPredictions(
        predict(module, datamodule.eval_dataloader("test")), datamodule.categories["test"]
    )


def multilabel_result(run_id: str) -> dict:
    """LexGLUE's scores for the test split at the multilabel run's best epoch, overall and per
    column (the ninth is `NO_UNFAIR_LABEL`), in percent as the paper reports them."""
    config = multilabel_config(run_id)
    test = best_epoch_on_test(run_id, config)
    truth, predicted = lexglue_columns(test)
    per_column = f1_score(truth, predicted, average=None, zero_division=0)
    return {
        "run_id": run_id,
        "best_epoch": tagged_best_epoch(run_id),
        "micro_f1": round(100 * float(f1_score(truth, predicted, average="micro")), 1),
        "macro_f1": round(100 * float(np.mean(per_column)), 1),
        "f1_per_column": {
            name: round(100 * float(f1), 1)
            for name, f1 in zip([*LABEL_NAMES, NO_UNFAIR_LABEL], per_column, strict=True)
        },
    }


def as_binary_scores(run_id: str, clauses_of: TrainConfig) -> dict:
    """The multilabel run read as fair vs unfair (unfair when any category is above 0.5), on
    the test clauses of the run `clauses_of` configured: the same sample, for a sampled run.

    Only on the same clauses can its F1 be set beside a binary run's: a balanced sample has
    half unfair clauses where the full test split has about one in nine, and F1 rises with that
    share. The multilabel run's own model and tokenizer are used; only the sample is borrowed
    (which clauses a sample holds depends on the seed and on which are unfair, not on the task).
    """
    config = multilabel_config(run_id).replace(
        data_path=clauses_of.data_path,
        sample_size=clauses_of.sample_size,
        seed=clauses_of.seed,
    )
    test = best_epoch_on_test(run_id, config)
    return binary_scores(test.is_unfair, test.prob_unfair, DEFAULT_THRESHOLD)


def comparison_table(result: dict, name: str = "MiniLM + LoRA (this run)") -> pd.DataFrame:
    """The run's μ-F1 and m-F1 among the published ones, best m-F1 first."""
    ours = pd.DataFrame(
        [(name, "this tutorial", result["micro_f1"], result["macro_f1"])],
        columns=PUBLISHED.columns,
    )
    table = pd.concat([PUBLISHED, ours], ignore_index=True)
    return table.sort_values("macro_f1", ascending=False).set_index("model")
