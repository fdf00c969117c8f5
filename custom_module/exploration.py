"""Dataset-card statistics for notebook 01: sizes, imbalance, labels, lengths, duplicates.

Each function takes the `DatasetDict` from `data.load_unfair_tos` and returns a small pandas
table or array, so the notebook only displays and plots.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from datasets import DatasetDict
from transformers import PreTrainedTokenizerBase

from data import LABEL_NAMES, SPLITS


def split_summary(dataset: DatasetDict) -> pd.DataFrame:
    """Rows, unfair rows, their share, and multi-label rows per split."""
    rows = {}
    for split in SPLITS:
        counts = np.array([len(labels) for labels in dataset[split]["labels"]])
        rows[split] = {
            "clauses": len(counts),
            "unfair": int((counts > 0).sum()),
            "unfair_share": round(float((counts > 0).mean()), 3),
            "multi_label": int((counts > 1).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def label_counts(dataset: DatasetDict) -> pd.DataFrame:
    """Clauses carrying each unfairness category, per split."""
    table = pd.DataFrame(0, index=list(LABEL_NAMES), columns=list(SPLITS))
    for split in SPLITS:
        for labels in dataset[split]["labels"]:
            for label in labels:
                table.loc[LABEL_NAMES[label], split] += 1
    return table


def label_cooccurrence(dataset: DatasetDict, split: str = "train") -> pd.DataFrame:
    """How often two categories label the same clause (diagonal: clauses with the category)."""
    table = pd.DataFrame(0, index=list(LABEL_NAMES), columns=list(LABEL_NAMES))
    for labels in dataset[split]["labels"]:
        for first, second in itertools.product(labels, repeat=2):
            table.iloc[first, second] += 1
    return table


def token_lengths(
    dataset: DatasetDict, tokenizer: PreTrainedTokenizerBase
) -> dict[str, np.ndarray]:
    """Untruncated token counts (with special tokens) of every clause, per split."""
    return {
        split: np.array([len(ids) for ids in tokenizer(list(dataset[split]["text"]))["input_ids"]])
        for split in SPLITS
    }


def length_summary(lengths: dict[str, np.ndarray], max_length: int) -> pd.DataFrame:
    """Length percentiles per split and how many clauses `max_length` would truncate."""
    rows = {
        split: {
            "mean": round(float(values.mean()), 1),
            "median": int(np.median(values)),
            "p95": int(np.percentile(values, 95)),
            "max": int(values.max()),
            f"over_{max_length}": int((values > max_length).sum()),
        }
        for split, values in lengths.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def cross_split_duplicates(dataset: DatasetDict) -> pd.DataFrame:
    """Extra copies of texts inside each split, and distinct texts shared by two splits."""
    texts = {split: list(dataset[split]["text"]) for split in SPLITS}
    rows = {f"extra copies inside {s}": len(texts[s]) - len(set(texts[s])) for s in SPLITS}
    for first, second in itertools.combinations(SPLITS, 2):
        rows[f"shared by {first} & {second}"] = len(set(texts[first]) & set(texts[second]))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["texts"])


def example_per_category(
    dataset: DatasetDict, split: str = "train", min_words: int = 10
) -> pd.DataFrame:
    """The shortest single-label clause of each category with at least `min_words` words:
    short enough to read, long enough to show what the category means."""
    examples = {}
    for text, labels in zip(dataset[split]["text"], dataset[split]["labels"], strict=True):
        if len(labels) == 1 and len(text.split()) >= min_words:
            name = LABEL_NAMES[labels[0]]
            if name not in examples or len(text) < len(examples[name]):
                examples[name] = text.strip()
    table = pd.DataFrame.from_dict(examples, orient="index", columns=["example"])
    return table.loc[[name for name in LABEL_NAMES if name in examples]]


def plot_label_counts(counts: pd.DataFrame) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(8, 4))
    counts.plot.barh(ax=axis)
    axis.set_title("Clauses per unfairness category and split")
    axis.set_xlabel("clauses")
    axis.set_ylabel("category")
    figure.tight_layout()
    return figure


def plot_token_lengths(lengths: dict[str, np.ndarray], max_length: int) -> plt.Figure:
    """Histogram of clause lengths per split, each bar the share of that split's clauses.

    The x-axis stops at the 99.5th percentile (or a bit past `max_length`): the few longer
    clauses are counted in the title rather than squeezing the rest into a corner.
    """
    longest = max(int(np.percentile(values, 99.5)) for values in lengths.values())
    limit = max(longest, max_length + 16)
    bins = np.arange(0, limit + 8, 8)
    figure, axis = plt.subplots(figsize=(8, 4))
    for split, values in lengths.items():
        shown = values[values <= limit]
        axis.hist(
            shown, bins=bins, weights=np.full(len(shown), 1 / len(values)), alpha=0.5, label=split
        )
    axis.axvline(max_length, color="black", linestyle="--", label=f"max_length={max_length}")
    beyond = sum(int((values > limit).sum()) for values in lengths.values())
    axis.set_title(f"Clause length in tokens ({beyond} clauses longer than {limit} not shown)")
    axis.set_xlabel("tokens (with [CLS] and [SEP]), bins of 8")
    axis.set_ylabel("share of the split's clauses")
    axis.set_xlim(0, limit)
    axis.legend()
    figure.tight_layout()
    return figure


def plot_cooccurrence(table: pd.DataFrame) -> plt.Figure:
    """`label_cooccurrence` as an annotated heatmap (log-scaled colours: counts span 0 to ~200)."""
    figure, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(np.log1p(table.to_numpy()), cmap="Blues")
    axis.set_xticks(range(len(table)), table.columns, rotation=45, ha="right")
    axis.set_yticks(range(len(table)), table.index)
    for row in range(len(table)):
        for column in range(len(table)):
            count = table.iat[row, column]
            colour = "white" if image.norm(np.log1p(count)) > 0.6 else "black"
            axis.text(column, row, count, ha="center", va="center", color=colour, fontsize=8)
    axis.set_title("Training clauses carrying both categories (diagonal: the category's total)")
    figure.tight_layout()
    return figure
