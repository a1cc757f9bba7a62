"""A run folder's report: ``report.json``, ``confusion.png``, ``curves.png``; reading them back.

Layout of a run folder::

    RUN/
      report.json              figures, folds, parameters, store fingerprint, per-clip predictions
      confusion.png            pooled confusion matrix over all test folds
      curves.png               training loss and accuracy per epoch, one line per fold
      checkpoints/fold-<name>.pt   state_dict of each fold's model
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

REPORT_FILE = "report.json"
CONFUSION_FILE = "confusion.png"
CURVES_FILE = "curves.png"
CHECKPOINT_DIR = "checkpoints"

REQUIRED_KEYS = ("model", "labels", "protocol", "accuracy", "macro_f1", "uf1", "uar", "confusion", "classes",
                 "folds", "parameters", "store", "seconds_per_epoch", "device")


def checkpoint_path(run: str | os.PathLike, fold: str) -> Path:
    """Where the checkpoint of fold ``fold`` lives in a run folder."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(fold))
    return Path(run) / CHECKPOINT_DIR / f"fold-{safe}.pt"


def write_report(run: str | os.PathLike, report: dict[str, Any]) -> Path:
    """Write ``report.json`` (atomically) and both figures; returns the JSON path."""
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ValueError(f"report for {run} lacks keys {missing}")
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    path = run / REPORT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=_json_default))
    os.replace(tmp, path)
    plot_run(run, report)
    return path


def read_report(run: str | os.PathLike) -> dict[str, Any]:
    """The ``report.json`` of a run folder."""
    path = Path(run) / REPORT_FILE
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{run} is not a finished run: {path} does not exist") from None
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ValueError(f"{path} lacks keys {missing}; was it written by `mepipe train`?")
    return report


def plot_run(run: str | os.PathLike, report: dict[str, Any]) -> tuple[Path, Path]:
    """(Re)draw ``confusion.png`` and ``curves.png`` of a run."""
    run = Path(run)
    return (plot_confusion(report, run / CONFUSION_FILE), plot_curves(report, run / CURVES_FILE))


def plot_confusion(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Pooled confusion matrix (rows true, columns predicted), counts and row shares."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matrix = np.asarray(report["confusion"], dtype=float)
    classes = report["classes"]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(matrix[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{report['model']} · {report['labels']} · {report['protocol']}\n"
                 f"acc {report['accuracy']:.3f}  UF1 {report['uf1']:.3f}  UAR {report['uar']:.3f}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Training loss and accuracy per epoch, one line per fold."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    folds = report["folds"]
    for fold in folds:
        history = fold.get("history", [])
        epochs = [h["epoch"] for h in history]
        label = str(fold["name"]) if len(folds) <= 12 else None
        loss_ax.plot(epochs, [h["loss"] for h in history], lw=1, alpha=0.8, label=label)
        acc_ax.plot(epochs, [h["accuracy"] for h in history], lw=1, alpha=0.8, label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="training accuracy", title="accuracy", ylim=(-0.02, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if folds and len(folds) <= 12:
        acc_ax.legend(title="fold", fontsize=7, loc="lower right")
    fig.suptitle(f"{report['model']} · {report['labels']} · {report['protocol']} ({len(folds)} folds)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_report(report: dict[str, Any]) -> str:
    """A plain-text summary: overall figures, the confusion matrix, one line per fold."""
    lines = [
        f"model {report['model']}  labels {report['labels']}  protocol {report['protocol']}  "
        f"device {report['device']}",
        f"store {report['store'].get('path')}  fingerprint {report['store'].get('fingerprint', '')[:16]}",
        f"accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  UF1 {report['uf1']:.4f}  "
        f"UAR {report['uar']:.4f}  ({report.get('n_test_clips', '?')} test clips, {len(report['folds'])} folds, "
        f"{report['seconds_per_epoch']:.2f} s/epoch)",
        "confusion (rows true, columns predicted):",
    ]
    width = max(len(c) for c in report["classes"]) + 1
    lines.append(" " * width + "".join(f"{c[:8]:>9}" for c in report["classes"]))
    for name, row in zip(report["classes"], report["confusion"]):
        lines.append(f"{name:<{width}}" + "".join(f"{int(v):>9}" for v in row))
    lines.append("folds:")
    for fold in report["folds"]:
        lines.append(f"  {fold['name']:<14} train {fold['n_train']:>5}  test {fold['n_test']:>4}  "
                     f"acc {fold['accuracy']:.3f}  UF1 {fold['uf1']:.3f}  UAR {fold['uar']:.3f}  "
                     f"{fold['epochs']} epochs, {fold['seconds_per_epoch']:.2f} s/epoch")
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to report.json: {value!r}")
