"""Notebook 01's two longer plots; the statistics they draw are computed in the notebook's cells.

Both return the figure, so a notebook shows it and a script can save or log it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_token_lengths(clauses: pd.DataFrame, max_length: int) -> plt.Figure:
    """Histogram of clause lengths per split, each bar the share of that split's clauses.

    `clauses` has one row per clause, with its `split` and its length in `tokens`. The x-axis
    stops at the 99.5th percentile (or a bit past `max_length`): the few longer clauses are
    counted in the title rather than squeezing the rest into a corner.
    """
    by_split = clauses.groupby("split", sort=False)["tokens"]
    limit = max(int(by_split.quantile(0.995).max()), max_length + 16)
    bins = np.arange(0, limit + 8, 8)
    figure, axis = plt.subplots(figsize=(8, 4))
    for split, tokens in by_split:
        shown = tokens[tokens <= limit]
        weights = np.full(len(shown), 1 / len(tokens))
        axis.hist(shown, bins=bins, weights=weights, alpha=0.5, label=split)
    axis.axvline(max_length, color="black", linestyle="--", label=f"max_length={max_length}")
    beyond = int((clauses["tokens"] > limit).sum())
    axis.set_title(f"Clause length in tokens ({beyond} clauses longer than {limit} not shown)")
    axis.set_xlabel("tokens (with the special tokens), bins of 8")
    axis.set_ylabel("share of the split's clauses")
    axis.set_xlim(0, limit)
    axis.legend()
    figure.tight_layout()
    return figure


def plot_cooccurrence(table: pd.DataFrame) -> plt.Figure:
    """A square category-by-category count table as an annotated heatmap (log-scaled colours:
    the diagonal's totals are far larger than the pairs off it)."""
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
    axis.set_xlabel("category")
    axis.set_ylabel("category")
    figure.tight_layout()
    return figure
