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
from custom_module.config import run_config
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


def multilabel_result(run_id: str) -> dict:
    """LexGLUE's scores for the test split at the run's best epoch, overall and per column, and
    the same predictions read as the binary task (`as_binary`: unfair when any category is)."""
    config = run_config(run_id)
    if config.task != "multilabel":
        raise ValueError(
            f"Run {run_id} was trained for the {config.task!r} task; LexGLUE's protocol needs "
            "one output per category: train with `--task multilabel` (see the README)."
        )
    best_epoch = tagged_best_epoch(run_id)
    datamodule = LexGlueDataModule.from_config(config)
    datamodule.setup()
    probabilities = predict(load_epoch(run_id, best_epoch), datamodule.eval_dataloader("test"))
    test = SplitPredictions(probabilities, datamodule.categories["test"])
    truth, predicted = lexglue_columns(test)
    as_binary = binary_scores(test.is_unfair, test.prob_unfair, DEFAULT_THRESHOLD)
    per_column = f1_score(truth, predicted, average=None, zero_division=0)
    return {
        "run_id": run_id,
        "best_epoch": best_epoch,
        "micro_f1": round(100 * float(f1_score(truth, predicted, average="micro")), 1),
        "macro_f1": round(100 * float(np.mean(per_column)), 1),
        "f1_per_column": {
            name: round(100 * float(f1), 1)
            for name, f1 in zip([*LABEL_NAMES, NO_UNFAIR_LABEL], per_column, strict=True)
        },
        "as_binary": {k: round(as_binary[k], 4) for k in ("precision", "recall", "f1", "pr_auc")},
    }


def comparison_table(result: dict, name: str = "MiniLM + LoRA (this run)") -> pd.DataFrame:
    """The run's μ-F1 and m-F1 among the published ones, best m-F1 first."""
    ours = pd.DataFrame(
        [(name, "this tutorial", result["micro_f1"], result["macro_f1"])],
        columns=PUBLISHED.columns,
    )
    table = pd.concat([PUBLISHED, ours], ignore_index=True)
    return table.sort_values("macro_f1", ascending=False).set_index("model")


def describe(result: dict) -> str:
    """Where the run stands against the baseline and the collapsed entry; true for any run."""
    svm = PUBLISHED.set_index("model").loc["TF-IDF SVM", "macro_f1"]
    collapsed = PUBLISHED.set_index("model").loc["MiniLM", "macro_f1"]
    gap = result["macro_f1"] - svm
    weakest = min(result["f1_per_column"], key=result["f1_per_column"].get)
    return (
        f"m-F1 {result['macro_f1']:.1f} (μ-F1 {result['micro_f1']:.1f}): "
        f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} the TF-IDF SVM's {svm:.1f}, "
        f"{'and' if result['macro_f1'] > collapsed else 'but not'} above the collapsed "
        f"community MiniLM ({collapsed:.1f}). The weakest column is {weakest!r} "
        f"(F1 {result['f1_per_column'][weakest]:.1f})."
    )


def describe_as_binary(result: dict, binary_test: dict) -> str:
    """The multilabel run against a binary run's test scores at 0.5, on the binary question:
    could one model serve both tasks? Only when it matches the binary run's F1 and PR-AUC."""
    ours = result["as_binary"]
    both = ours["f1"] >= binary_test["f1"] and ours["pr_auc"] >= binary_test["pr_auc"]
    return (
        f"Read as fair vs unfair (unfair when any category is above 0.5), the multilabel run "
        f"scores test F1 {ours['f1']:.3f} and PR-AUC {ours['pr_auc']:.3f} at its best epoch, "
        f"against {binary_test['f1']:.3f} and {binary_test['pr_auc']:.3f} for the binary run: "
        + (
            "one model could serve both questions."
            if both
            else "the binary run stays the better model for the fair-vs-unfair question."
        )
    )
