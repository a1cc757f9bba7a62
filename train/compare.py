"""Several finished runs side by side: figures, the parameters in which they differ, stores; per-class recall.

>>> table = compare_runs(["runs/a", "runs/b"])          # doctest: +SKIP
>>> print(format_comparison(table))                     # doctest: +SKIP
>>> plot_recall(table, "runs/compare-recall.png")       # doctest: +SKIP

Parameters are compared flattened (``run.epochs``, ``stage.network.lr``,
``recipe.doi``…); only those whose values differ are listed, so two runs
that differ in one setting show one line.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .params import EXECUTION_FIELDS
from .report import pyplot, read_report, save_figure

__all__ = ["FIGURES", "compare_runs", "format_comparison", "plot_recall", "recall_figure"]

FIGURES = ("accuracy", "macro_f1", "uf1", "uar", "n_test_clips", "seconds")
"""Report figures compared (each run's pooled figures over all its test folds)."""


def compare_runs(runs: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Read the runs' reports and put them side by side.

    Parameters
    ----------
    runs : sequence of path
        Finished run folders (each with ``report.json``).

    Returns
    -------
    dict
        ``runs`` (one entry per run: ``name``, ``path``, ``model``, ``labels``,
        ``protocol``, ``figures``, ``per_dataset``, ``classes``, ``recall``
        per class (None for a class with no test clip), ``stores`` with their
        ids, ``epoch_selection``), ``differences`` (flattened parameter ->
        one value per run, only where they differ) and ``same`` (how many
        parameters all runs share).

    Raises
    ------
    FileNotFoundError, ValueError
        A folder is not a finished run (naming it).
    """
    reports = [read_report(run) for run in runs]
    names = _names([Path(run) for run in runs])
    entries = []
    for name, run, report in zip(names, runs, reports):
        confusion = np.asarray(report["confusion"], dtype=np.int64)
        has_clips = confusion.sum(axis=1) > 0
        recall = metrics.per_class_recall(confusion) if confusion.size else np.zeros(0)
        entries.append({
            "name": name, "path": str(run), "model": report["model"], "labels": report["labels"],
            "protocol": report["protocol"], "classes": list(report["classes"]),
            "figures": {k: report.get(k) for k in FIGURES},
            "spotting_auc": report.get("spotting_auc"),
            "per_dataset": {d: {k: v[k] for k in ("accuracy", "uf1", "uar", "n_test_clips")}
                            for d, v in report.get("per_dataset", {}).items()},
            "recall": [float(r) if has else None for r, has in zip(recall, has_clips)],
            "stores": [{"location": s.get("location"), "dataset": s.get("dataset"), "store_id": s.get("store_id")}
                       for s in report["store"].get("stores", [])],
            "fingerprint": report["store"].get("fingerprint"),
            "epoch_selection": report.get("epoch_selection"),
            "mepipe": report.get("mepipe"),
        })
    flat = [_flatten(_parameters(report)) for report in reports]
    keys = sorted(set().union(*flat))
    missing = object()
    differences = {k: [f.get(k, missing) for f in flat] for k in keys}
    differences = {k: [None if v is missing else v for v in values] for k, values in differences.items()
                   if any(_canonical(v) != _canonical(values[0]) for v in values)}
    return {"runs": entries, "differences": differences, "same": len(keys) - len(differences)}


def _parameters(report: Mapping[str, Any]) -> dict[str, Any]:
    """What defines a run, for comparison: its run parameters (less how it executed), the recipe, the stages."""
    parameters = report["parameters"]
    run = {k: v for k, v in parameters["run"].items() if k not in EXECUTION_FIELDS}
    stages = {s["name"]: s["train"] for s in parameters.get("stages", [])}
    recipe = {k: v for k, v in parameters.get("recipe", {}).items() if k not in ("stages",)}
    return {"run": run, "stage": stages, "recipe": recipe}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _names(paths: list[Path]) -> list[str]:
    """Short, distinct names: each folder's name, with its parents where two would read the same."""
    depth = 1
    while True:
        names = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(names)) == len(names) or depth > 8:
            return names
        depth += 1


def _text(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def format_comparison(table: Mapping[str, Any]) -> str:
    """The comparison as text columns: figures, per-dataset figures, per-class recall, differing parameters, stores."""
    runs = table["runs"]
    rows: list[tuple[str, list[str]]] = [("run", [r["name"] for r in runs]),
                                         ("model", [r["model"] for r in runs]),
                                         ("labels", [r["labels"] for r in runs]),
                                         ("protocol", [r["protocol"] for r in runs])]
    rows += [(k, [_text(r["figures"].get(k), 1 if k == "seconds" else 4) for r in runs]) for k in FIGURES]
    if any(r["spotting_auc"] is not None for r in runs):
        rows.append(("spotting_auc", [_text(r["spotting_auc"]) for r in runs]))
    rows.append(("epoch selection", [r["epoch_selection"] or "—" for r in runs]))
    datasets = sorted({d for r in runs for d in r["per_dataset"]})
    if len(datasets) > 1 or any(len(r["per_dataset"]) > 1 for r in runs):
        for d in datasets:
            for k in ("uf1", "uar"):
                rows.append((f"{d} {k}", [_text(r["per_dataset"].get(d, {}).get(k)) for r in runs]))
    for cls in _classes(runs):
        rows.append((f"recall {cls}", [_text(_recall(r, cls), 3) for r in runs]))
    lines = _columns(rows)
    lines.append("")
    if table["differences"]:
        lines.append(f"parameters that differ ({len(table['differences'])}; {table['same']} the same):")
        lines += _columns([(k, [_text(v) for v in values]) for k, values in table["differences"].items()])
    else:
        lines.append(f"parameters: all {table['same']} the same")
    lines.append("")
    lines.append("stores:")
    for r in runs:
        for s in r["stores"]:
            lines.append(f"  {r['name']}: {s['location']}  {s['dataset']}  id {s['store_id'] or 'none'}")
    return "\n".join(lines)


def _columns(rows: list[tuple[str, list[str]]]) -> list[str]:
    label = max(len(k) for k, _ in rows) + 2
    widths = [max(len(values[i]) for _, values in rows) + 2 for i in range(len(rows[0][1]))]
    return [f"{k:<{label}}" + "".join(f"{v:<{w}}" for v, w in zip(values, widths)).rstrip() for k, values in rows]


def _classes(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every class of the runs, in first-seen order."""
    out: list[str] = []
    for r in runs:
        out += [c for c in r["classes"] if c not in out]
    return out


def _recall(run: Mapping[str, Any], cls: str) -> float | None:
    return run["recall"][run["classes"].index(cls)] if cls in run["classes"] else None


def plot_recall(table: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`recall_figure` to ``path`` (PNG)."""
    return save_figure(recall_figure(table), path, dpi=120)


def recall_figure(table: Mapping[str, Any]):
    """Per-class recall of each run as grouped bars: one group per class, one bar (and legend entry) per run.

    A class a run has no test clip of (or does not have) gets no bar and an "n/a" mark. Returns the
    matplotlib figure.
    """
    plt = pyplot()
    runs = table["runs"]
    classes = _classes(runs)
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(classes) * max(1.0, len(runs) / 2) + 2.5), 4.4))
    x = np.arange(len(classes))
    for i, run in enumerate(runs):
        offsets = x - 0.4 + width * (i + 0.5)
        values = [_recall(run, c) for c in classes]
        label = f"{run['name']} ({run['model']}, UAR {run['figures']['uar']:.3f})"
        bars = ax.bar(offsets, [np.nan if v is None else v for v in values], width, label=label)
        for offset, value in zip(offsets, values):
            if value is None:
                ax.text(offset, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.bar_label(bars, labels=[f"{v:.2f}" if v is not None else "" for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, classes, rotation=30 if max(map(len, classes), default=0) > 10 else 0,
                  ha="right" if max(map(len, classes), default=0) > 10 else "center")
    ax.set_xlabel("class (true label)")
    ax.set_ylabel("recall: share of the class's\ntest clips predicted as it")  # two lines: one is taller than the axes
    ax.set_ylim(0, 1.12)
    ax.set_title("Per-class recall, pooled over each run's test folds", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1 if len(runs) > 3 else len(runs),
              title="run", title_fontsize=8)
    return fig
