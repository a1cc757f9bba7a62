"""One picture per ``mepipe reproduce`` row: our figures beside the figures the paper publishes.

Each metric either side reports gets a pair of bars: ours (the mean over
seeds, the standard deviation as an error bar and each seed as a dot) and
the published one. A metric only one side reports (the paper's own F1,
which is not the MEGC UF1; a UAR the paper leaves out) gets its one bar and
an "n/a" where the other would stand, so nothing is compared that was not
measured the same way.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from .report import pyplot, save_figure

__all__ = ["METRICS", "draw_row", "row_figure", "row_slug"]

METRICS = (("accuracy", "accuracy"), ("f1", "F1 (paper's)"), ("uf1", "UF1"), ("uar", "UAR"),
           ("spotting_auc", "spotting AUC"))
"""The metrics a row may hold, in drawing order, with their axis labels."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_+-]+")


def row_slug(row: dict[str, Any]) -> str:
    """A file name for the row: network, protocol, the corpus or composite part tested (after the corpus trained
    on, for cross-dataset rows) and the store's dataset, with anything but letters, digits, ``_+-`` replaced
    (dataset names come from the stores)."""
    parts = (row["model"], row["protocol"], row.get("train_corpus") and f"{row['train_corpus']}-to",
             row.get("part") or row["corpus"], row.get("dataset"))
    return _UNSAFE.sub("_", "-".join(str(p) for p in parts if p)).strip("_") or "row"


def row_figure(row: dict[str, Any]):
    """The figure of one row that ran (see the module docstring); returns the matplotlib figure."""
    plt = pyplot()
    shown = [(key, label) for key, label in METRICS if key in row["ours"] or key in row["published"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(shown) + 2.0), 4.2))
    x = np.arange(len(shown))
    width = 0.38
    seeds = len(row["seeds"])
    ours = [row["ours"].get(key) for key, _ in shown]
    published = [row["published"].get(key) for key, _ in shown]
    ax.bar(x - width / 2, [np.nan if v is None else v["mean"] for v in ours], width,
           yerr=[0.0 if v is None else v["std"] for v in ours] if seeds > 1 else None, capsize=4, color="tab:blue",
           label=f"ours (mean ± std over {seeds} seeds)" if seeds > 1 else "ours (1 seed)")
    for xi, value in zip(x, ours):
        if value is not None and len(value["values"]) > 1:
            ax.plot(np.full(len(value["values"]), xi - width / 2), value["values"], "k.", markersize=4)
    ax.bar(x + width / 2, [np.nan if v is None else v for v in published], width,
           color="tab:orange", label=f"published ({row['source']})")
    for xi, mine, theirs in zip(x, ours, published):
        tops = (None if mine is None else (mine["mean"], max([mine["mean"] + mine["std"], *mine["values"]])),
                None if theirs is None else (theirs, theirs))
        for offset, top in zip((-width / 2, width / 2), tops):
            if top is None:
                ax.text(xi + offset, 0.02, "n/a", ha="center", va="bottom", fontsize=8, rotation=90)
            else:  # above the error bar and the seeds' dots
                ax.text(xi + offset, top[1] + 0.02, f"{top[0]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [label for _, label in shown])
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.set_xlabel("metric")
    ax.set_ylabel("score (0 to 1; 1 = every test clip right)")
    ax.set_ylim(0, 1.15)
    title = f"{row['model']} · {row['experiment']} · {row['protocol']} ({row['labels']}; {row.get('dataset')})"
    if row.get("quick"):
        title += "\nquick schedule: a check that the protocol runs, not comparable with the paper"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1)
    return fig


def draw_row(row: dict[str, Any], folder: str | Path) -> Path:
    """Write :func:`row_figure` to ``folder/<row_slug>.png``; returns the path."""
    return save_figure(row_figure(row), Path(folder) / f"{row_slug(row)}.png", dpi=110)
