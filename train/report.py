"""A run folder's report: ``report.json``, ``confusion.png``, ``curves.png``; reading them back.

Layout of a run folder::

    RUN/
      report.json              figures (whole and per dataset), folds, parameters, plan, stores with their
                             ids, store fingerprint, warnings, per-clip predictions
      run.json                 the run's identity (parameters, stores, folds): a rerun resumes only if equal
      folds/fold-<name>.json   each finished fold's report entry and predictions (kept when a run resumes)
      confusion.png            pooled confusion matrix over all test folds (AU targets: au_f1.png, each AU's F1)
      curves.png               loss and accuracy per epoch, one colour per fold; validation curves with
                               --val-subjects; stage boundaries of multi-stage models
      checkpoints/fold-<name>.pt   state_dict of each fold's model (multi-stage models also
                                   fold-<name>-stage<k>.pt, the model after each earlier stage)
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mepipe.featurestore.features import INTENSITY
from mepipe.featurestore.safety import printable

REPORT_FILE = "report.json"
CONFUSION_FILE = "confusion.png"
AU_F1_FILE = "au_f1.png"
CURVES_FILE = "curves.png"
SPOTTING_FILE = "spotting.png"
CHECKPOINT_DIR = "checkpoints"

REQUIRED_KEYS = ("model", "labels", "protocol", "accuracy", "macro_f1", "uf1", "uar", "confusion", "classes",
                 "folds", "parameters", "store", "seconds_per_epoch", "device")
AU_REQUIRED_KEYS = ("model", "labels", "protocol", "targets", "f1_macro", "f1_binary", "per_au", "classes",
                    "folds", "parameters", "store", "seconds_per_epoch", "device")
"""The keys of a report of class targets, and of AU targets (``"targets": "au"``)."""


def required_keys(report: dict[str, Any]) -> tuple[str, ...]:
    """The keys a report must have, by its targets."""
    return AU_REQUIRED_KEYS if report.get("targets") == "au" else REQUIRED_KEYS


def checkpoint_path(run: str | os.PathLike, fold: str) -> Path:
    """Where the checkpoint of fold ``fold`` lives in a run folder."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(fold))
    return Path(run) / CHECKPOINT_DIR / f"fold-{safe}.pt"


def write_report(run: str | os.PathLike, report: dict[str, Any]) -> Path:
    """Write ``report.json`` (atomically) and both figures; returns the JSON path."""
    missing = [k for k in required_keys(report) if k not in report]
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


def read_report(run: str | os.PathLike, required: tuple[str, ...] | None = None,
                writer: str = "mepipe train") -> dict[str, Any]:
    """The ``report.json`` of a run folder, which must hold the ``required`` keys (those ``writer`` writes;
    default: a training report's, by its targets)."""
    path = Path(run) / REPORT_FILE
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{run} is not a finished run: {path} does not exist") from None
    missing = [k for k in (required or required_keys(report)) if k not in report]
    if missing:
        raise ValueError(f"{path} lacks keys {missing}; was it written by `{writer}`?")
    return report


def plot_run(run: str | os.PathLike, report: dict[str, Any]) -> tuple[Path, ...]:
    """(Re)draw ``confusion.png`` (AU targets: ``au_f1.png``) and ``curves.png`` of a run, and ``spotting.png`` when it
    predicted intensity."""
    run = Path(run)
    if report.get("test_figure", "") is None:  # a final run (--final) tests nothing
        return (plot_curves(report, run / CURVES_FILE),)
    first = plot_au_f1(report, run / AU_F1_FILE) if report.get("targets") == "au" else \
        plot_confusion(report, run / CONFUSION_FILE)
    paths = (first, plot_curves(report, run / CURVES_FILE))
    if any(INTENSITY.name in p for p in report.get("predictions", [])):
        paths += (plot_spotting(report, run / SPOTTING_FILE),)
    return paths


def plot_spotting(report: dict[str, Any], path: str | os.PathLike, max_clips: int = 12) -> Path:
    """Predicted intensity of held-out clips against the sheet's onset..offset span (Nag's spotting).

    The x axis counts the steps of the sequence each clip was tested on
    (step t: the flow pair t-1 -> t); predictions do not record which
    source frames those are.
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    clips = [p for p in report["predictions"] if INTENSITY.name in p][:max_clips]
    columns = min(4, len(clips))
    rows = -(-len(clips) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.2 * rows), squeeze=False, sharey=True)
    for ax, clip in zip(axes.flat, clips):
        curve = np.array([np.nan if v is None else v for v in clip[INTENSITY.name]], dtype=float)
        span = np.asarray(clip["span"])
        steps = np.arange(1, len(curve) + 1)
        ax.fill_between(steps, 0, span, step="mid", color="tab:green", alpha=0.2, label="onset..offset")
        ax.plot(steps, curve, color="tab:blue", lw=1.2, label="predicted intensity")
        ax.set_title(f"{clip['sample']} (true {_class(report, clip['true'])}, "
                     f"predicted {_class(report, clip['pred'])})", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step t of the tested sequence (pair t-1 \u2192 t)", fontsize=7)
    for ax in list(axes.flat)[len(clips):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("intensity (0..1)", fontsize=7)
    axes.flat[0].legend(fontsize=6, loc="upper left")
    auc = report.get("spotting_auc")
    auc_text = f"ROC AUC {auc:.3f}" if auc is not None else "ROC AUC undefined"
    fig.suptitle(f"{report['model']} spotting on held-out clips; {auc_text}", fontsize=10)
    return save_figure(fig, path, dpi=110)


def _class(report: dict[str, Any], value: Any) -> str:
    """A prediction's class by name (predictions hold indices into the report's classes)."""
    classes = report.get("classes", [])
    return str(classes[value]) if isinstance(value, int) and 0 <= value < len(classes) else str(value)


def plot_confusion(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw :func:`confusion_figure` to ``path``."""
    return save_figure(confusion_figure(report), path, dpi=120)


def confusion_figure(report: dict[str, Any]):
    """Pooled confusion matrix (rows true, columns predicted), counts and row shares, full class names."""
    plt = pyplot()

    matrix = np.asarray(report["confusion"], dtype=float)
    classes = [str(c) for c in report["classes"]]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(classes)
    margin = 0.09 * max(len(c) for c in classes)  # inches for the longest name beside and below the matrix
    fig, ax = plt.subplots(figsize=(size + 1.2 + margin, size + 0.7 * margin))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(matrix[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{report['model']} · {report['labels']} · {report['protocol']}\n"
                 f"acc {report['accuracy']:.3f}  UF1 {report['uf1']:.3f}  UAR {report['uar']:.3f}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    return fig


def plot_au_f1(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw :func:`au_f1_figure` to ``path``."""
    return save_figure(au_f1_figure(report), path, dpi=120)


def au_f1_figure(report: dict[str, Any]):
    """Each AU's binary and macro F1 over every test clip (AU targets), with how many clips show it."""
    plt = pyplot()

    names = list(report["per_au"])
    rows = [report["per_au"][n] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * len(names), 3.6))
    ax.bar(x - 0.2, [r["f1_binary"] for r in rows], 0.4, label="binary F1 (AU shown)", color="tab:blue")
    ax.bar(x + 0.2, [r["f1_macro"] for r in rows], 0.4, label="macro F1 (shown and not, MEB)", color="tab:orange")
    ax.set_xticks(x, [f"{n}\n{r['positives']}/{r['predicted']}" for n, r in zip(names, rows)], fontsize=7)
    ax.set(ylim=(0, 1.08), ylabel="F1", xlabel="AU (clips showing it / predicted to)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"{report['model']} · {report['labels']} · {report['protocol']}\n"
                 f"mean F1: macro {report['f1_macro']:.3f}, binary {report['f1_binary']:.3f} "
                 f"({report.get('n_test_clips', '?')} test clips)", fontsize=9)
    return fig


def plot_curves(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw :func:`curves_figure` to ``path``."""
    return save_figure(curves_figure(report), path, dpi=120)


TRAIN_STYLE = {"ls": "-", "lw": 1.0, "marker": ".", "ms": 4}
VALIDATION_STYLE = {"ls": "--", "lw": 1.2, "marker": ".", "ms": 4}
"""Line styles of the training and validation curves of one fold (the fold keeps its colour)."""


def curves_figure(report: dict[str, Any]):
    """Loss and accuracy per epoch, one colour per fold; validation curves when the run held people out.

    Training figures are on the augmented training batches. With
    ``--val-subjects`` each history entry also carries ``val_accuracy`` and
    ``val_uf1`` (the clip predictions of the held-out people), drawn dashed
    beside the training accuracy and in a third panel; a marker shows the
    epoch each stage kept (AU targets: ``val_f1_macro``, the mean macro F1
    over the AUs, in the third panel). Multi-stage models (``kim2017``, ``lfm``, ``clfm``)
    number epochs on across stages; a dotted line labelled with the stage's
    name marks where each later stage starts.
    """
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    folds = report["folds"]
    au = report.get("targets") == "au"
    score, score_name = ("val_f1_macro", "mean macro F1") if au else ("val_uf1", "UF1")
    validated = any(score in h for fold in folds for h in fold.get("history", []))
    fig, axes = plt.subplots(1, 3 if validated else 2, figsize=(14 if validated else 10, 4.0))
    loss_ax, acc_ax = axes[0], axes[1]
    boundaries: dict[int, str] = {}
    for k, fold in enumerate(folds):
        colour = f"C{k % 10}"
        history = fold.get("history", [])
        epochs = [h["epoch"] for h in history]
        label = str(fold["name"]) if len(folds) <= 12 else None
        loss_ax.plot(epochs, [h["loss"] for h in history], color=colour, alpha=0.8, label=label, **TRAIN_STYLE)
        acc_ax.plot(epochs, [h["accuracy"] for h in history], color=colour, alpha=0.8, label=label, **TRAIN_STYLE)
        if validated:
            scored = [h for h in history if score in h]
            if not au:
                acc_ax.plot([h["epoch"] for h in scored], [h["val_accuracy"] for h in scored], color=colour,
                            alpha=0.8, **VALIDATION_STYLE)
            axes[2].plot([h["epoch"] for h in scored], [h[score] for h in scored], color=colour, alpha=0.8,
                         label=label, **VALIDATION_STYLE)
            for epoch in _chosen_epochs(fold):
                entry = next((h for h in scored if h["epoch"] == epoch), None)
                if entry is not None:
                    axes[2].plot([epoch], [entry[score]], marker="o", ms=5, color=colour, ls="none")
        names = [s.get("name") for s in fold.get("inputs", {}).get("stages", [])]
        for prev, h in zip(history, history[1:]):
            if h.get("stage") != prev.get("stage") and h.get("stage") is not None:
                number = int(h["stage"])
                name = names[number - 1] if number - 1 < len(names) and names[number - 1] else None
                boundaries.setdefault(h["epoch"], f"stage {number}" + (f": {name}" if name else ""))
    for start, text in sorted(boundaries.items()):
        for ax in axes:
            ax.axvline(start - 0.5, color="grey", ls=":", lw=0.9)
            ax.text(start - 0.3, 0.98, f"{text} \u2192", transform=ax.get_xaxis_transform(), ha="left", va="top",
                    fontsize=7, color="dimgrey")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss (training batches)")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.08),
               title="accuracy: training (solid),\nvalidation clips (dashed)" if validated and not au else
               "training accuracy (of each clip's AUs)" if au else "training accuracy")
    if validated:
        people = sorted({len(f.get("validation", {}).get("people", [])) for f in folds})
        count = f"{people[0]} {'person' if people[0] == 1 else 'people'}" if len(people) == 1 else "people"
        axes[2].set(xlabel="epoch", ylabel=f"validation {score_name}", ylim=(-0.02, 1.08),
                    title=f"validation {score_name} ({count} held out per fold)\n\u25cf = the epoch each stage kept")
    last = max((h["epoch"] for fold in folds for h in fold.get("history", [])), default=1)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, last + 0.5)  # whole epochs, and a one-epoch run's points in view
    if folds and len(folds) <= 12:  # a colour per fold; beyond 12 folds the colours repeat and name nothing
        loss_ax.legend(title="fold", fontsize=7, title_fontsize=8, loc="best")
    if validated:  # two line styles to tell apart; a run without validation has one, which needs no key
        acc_ax.legend(handles=[Line2D([], [], color="black", **TRAIN_STYLE, label="training"),
                               Line2D([], [], color="black", **VALIDATION_STYLE, label="validation")],
                      fontsize=7, loc="best")
    fig.suptitle(f"{report['model']} · {report['labels']} · {report['protocol']} ({len(folds)} folds)", fontsize=10)
    return fig


def _chosen_epochs(fold: dict[str, Any]) -> list[int]:
    """Run-wide epoch numbers of the epochs validation kept, one per stage (``validation.chosen_epoch``
    counts within each stage, history numbers on across stages)."""
    chosen = fold.get("validation", {}).get("chosen_epoch", {})
    stages = fold.get("inputs", {}).get("stages", [])
    out, offset = [], 0
    for stage in stages:
        if stage.get("name") in chosen:
            out.append(offset + int(chosen[stage["name"]]))
        offset += int(stage.get("epochs", 0))
    return out


def format_report(report: dict[str, Any]) -> str:
    """A plain-text summary: overall figures, the confusion matrix (AU targets: each AU's F1), one line per fold
    (a final run: what made it)."""
    if report.get("test_figure", "") is None:
        return format_final(report)
    if report.get("targets") == "au":
        return format_au_report(report)
    stores = report["store"].get("stores", [])
    lines = [
        *_header(report),
        f"accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  UF1 {report['uf1']:.4f}  "
        f"UAR {report['uar']:.4f}  ({report.get('n_test_clips', '?')} test clips, {len(report['folds'])} folds, "
        f"{report['seconds_per_epoch']:.2f} s/epoch)",
    ]
    per_dataset = report.get("per_dataset", {})
    if len(per_dataset) > 1:
        lines.append(f"{'dataset':<14}{'clips':>6}{'accuracy':>10}{'UF1':>8}{'UAR':>8}")
        for name, row in per_dataset.items():
            lines.append(f"{name:<14}{row['n_test_clips']:>6}{row['accuracy']:>10.4f}{row['uf1']:>8.4f}"
                         f"{row['uar']:>8.4f}")
        lines.append(f"{'all':<14}{report['n_test_clips']:>6}{report['accuracy']:>10.4f}{report['uf1']:>8.4f}"
                     f"{report['uar']:>8.4f}")
    if report.get("resumed_folds"):
        lines.append(f"resumed: {len(report['resumed_folds'])} folds kept from an interrupted attempt")
    lines.append("confusion (rows true, columns predicted):")
    top = 2 + len(stores)
    if report.get("parameter_count"):
        lines.insert(top, f"parameters {report['parameter_count']:,}")
    for key in sorted((k for k in report if k.startswith("stage") and k[5:].isdigit()), reverse=True):
        s1 = report[key]
        lines.insert(top, f"stage {key[5:]} ({s1.get('measured_on')}): accuracy {s1['accuracy']:.4f}  "
                        f"UF1 {s1['uf1']:.4f}  UAR {s1['uar']:.4f}  ({s1['seconds_per_epoch']:.2f} s/epoch)")
    if "spotting_auc" in report:
        auc, spotting = report["spotting_auc"], report.get("spotting", {})
        text = f"spotting ROC AUC {auc:.4f}" if auc is not None else \
            f"spotting ROC AUC undefined: {spotting.get('auc_note', 'no frame outside onset..offset')}"
        intervals = spotting.get("intervals")
        if intervals:
            f1 = intervals["f1"]
            text += (f"; intervals (IoU >= {intervals['iou']}): F1 {'-' if f1 is None else f'{f1:.4f}'}  "
                     f"TP {intervals['tp']}  FP {intervals['fp']}  FN {intervals['fn']}")
        lines.insert(top, text)
    width = max(len(c) for c in report["classes"]) + 1
    column = max(9, width + 1)  # every class name whole, numbers right-aligned under it
    lines.append(" " * width + "".join(f"{c:>{column}}" for c in report["classes"]))
    for name, row in zip(report["classes"], report["confusion"]):
        lines.append(f"{name:<{width}}" + "".join(f"{int(v):>{column}}" for v in row))
    lines += _fold_lines(report, lambda f: f"acc {f['accuracy']:.3f}  UF1 {f['uf1']:.3f}  UAR {f['uar']:.3f}")
    return "\n".join(printable(line) for line in lines)  # class, dataset and subject names come from sheets


def _header(report: dict[str, Any]) -> list[str]:
    """Model, labels, protocol and device; the stores with their ids; fingerprint and epoch selection."""
    return [
        f"model {report['model']}  labels {report['labels']}"
        + (f" (label version {report['label_version']})" if report.get("label_version") else "")
        + f"  protocol {report['protocol']}  device {report['device']}",
        *(f"store {s['location']}  {s.get('dataset')}, {s.get('n_clips')} clips  id {s.get('store_id') or 'none'}"
          for s in report["store"].get("stores", [])),
        f"fingerprint {report['store'].get('fingerprint', '')[:16]}  epochs: {report.get('epoch_selection', '?')}",
    ]


def format_au_report(report: dict[str, Any]) -> str:
    """The summary of a run of AU targets: mean F1s, each AU's F1 and clips, each dataset's means, the folds."""
    lines = [
        *_header(report),
        f"AU F1 (mean over {len(report['per_au'])} AUs): macro {report['f1_macro']:.4f}  binary "
        f"{report['f1_binary']:.4f}  ({report.get('n_test_clips', '?')} test clips, {len(report['folds'])} folds, "
        f"{report['seconds_per_epoch']:.2f} s/epoch)",
    ]
    if report.get("parameter_count"):
        lines.append(f"parameters {report['parameter_count']:,}")
    for key in sorted(k for k in report if k.startswith("stage") and k[5:].isdigit()):
        earlier = report[key]
        lines.append(f"stage {key[5:]} ({earlier.get('measured_on')}): AU F1 macro {earlier['f1_macro']:.4f}  "
                     f"binary {earlier['f1_binary']:.4f}  ({earlier['seconds_per_epoch']:.2f} s/epoch)")
    if report.get("resumed_folds"):
        lines.append(f"resumed: {len(report['resumed_folds'])} folds kept from an interrupted attempt")
    lines.append(f"{'AU':<6}{'clips':>7}{'predicted':>11}{'F1 binary':>11}{'F1 macro':>10}")
    for name, row in report["per_au"].items():
        lines.append(f"{name:<6}{row['positives']:>7}{row['predicted']:>11}{row['f1_binary']:>11.4f}"
                     f"{row['f1_macro']:>10.4f}")
    per_dataset = report.get("per_dataset", {})
    if len(per_dataset) > 1:
        lines.append(f"{'dataset':<14}{'clips':>6}{'F1 macro':>10}{'F1 binary':>11}")
        for name, row in per_dataset.items():
            lines.append(f"{name:<14}{row['n_test_clips']:>6}{row['f1_macro']:>10.4f}{row['f1_binary']:>11.4f}")
        mean = report.get("dataset_mean", {})
        if mean:
            lines.append(f"{'mean':<14}{'':>6}{mean['f1_macro']:>10.4f}{mean['f1_binary']:>11.4f}")
    lines += _fold_lines(report, lambda f: f"F1 macro {f['f1_macro']:.3f}  binary {f['f1_binary']:.3f}")
    return "\n".join(printable(line) for line in lines)


def _fold_lines(report: dict[str, Any], figures) -> list[str]:
    """``folds:`` and a line per fold: its name and sides, the figures ``figures(fold)`` writes, epochs, time."""
    return ["folds:"] + [f"  {fold['name']:<16} train {fold['n_train']:>5}  test {fold['n_test']:>4}  "
                         f"{figures(fold)}  {fold['epochs']} epochs, {fold['seconds_per_epoch']:.2f} s/epoch"
                         for fold in report["folds"]]


def format_final(report: dict[str, Any]) -> str:
    """A final run (``--final``) in lines: what made the model, and that it has no test figure."""
    fold = report["folds"][0]
    chosen = fold.get("validation", {}).get("chosen_epoch")
    return "\n".join([
        f"model {report['model']}  labels {report['labels']}  final  device {report['device']}",
        *(f"store {s['location']}  {s.get('dataset')}, {s.get('n_clips')} clips  id {s.get('store_id') or 'none'}"
          for s in report["store"].get("stores", [])),
        f"trained on {fold['n_train']} clips ({report['store']['n_clips']} usable), classes "
        f"{', '.join(report['classes'])}; epochs: {report['epoch_selection']}"
        + (f" (chosen: {', '.join(f'{k} {v}' for k, v in chosen.items())})" if chosen else ""),
        f"{fold['epochs']} epochs, {report['seconds_per_epoch']:.2f} s/epoch; checkpoint {fold['checkpoint']}",
        "no test figure: a final model is trained on everyone (score it with mepipe predict + mepipe evaluate "
        "--predictions on annotated video)",
    ])


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to report.json: {value!r}")
