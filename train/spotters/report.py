"""A spotting run's folder: ``report.json``, ``intervals.csv``, one timeline picture per video; reading them back.

Layout::

    RUN/
      report.json            spotter, parameters, stores with their ids, folds (what each chose, and on whom),
                             the MEGC table (TP, FP, FN, F1 per dataset and kind, and all datasets pooled),
                             chance figures, the MEGC 2020 baseline's published figures, the intervals
      intervals.csv          every spotted interval: dataset, video, onset, apex, offset, kind, score
      timelines/<video>.png  the video's spotting curve(s) with their threshold, the annotated intervals and the
                             spotted ones, coloured by kind, on a time axis in seconds
      run.json, folds/       the run's identity and each finished fold (a killed run resumes from them); the
                             folds' test curves in folds/fold-<name>.curves.npz
      checkpoints/           a trained spotter's weights per fold
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mepipe.featurestore.safety import printable

from ..report import REPORT_FILE, pyplot, read_report, save_figure
from ..spotting_eval import ALL, KINDS, MEGC2020_BASELINE, OVERALL, SpottingCounts, SpottingRow, format_spotting_table

__all__ = ["CURVES_SUFFIX", "INTERVALS_COLUMNS", "INTERVALS_FILE", "REPORT_FILE", "TIMELINE_DIR", "SpotReport",
           "format_spot_report", "is_spot_report", "plot_timeline", "read_spot_report", "table_rows",
           "write_spot_report"]

INTERVALS_FILE = "intervals.csv"
INTERVALS_COLUMNS = ("dataset", "video", "onset", "apex", "offset", "kind", "score")
"""Columns of ``intervals.csv`` (frame numbers of each video)."""
TIMELINE_DIR = "timelines"
CURVES_SUFFIX = ".curves.npz"

KIND_COLOURS = {"micro": "tab:red", "macro": "tab:blue"}
"""Colour of each kind in the timelines."""

REQUIRED_KEYS = ("kind", "spotter", "protocol", "parameters", "store", "folds")


@dataclass
class SpotReport:
    """A run's report and its tested videos' curves (video -> pass -> curve)."""

    report: dict[str, Any]
    curves: Mapping[str, Mapping[str, np.ndarray]]


def write_spot_report(run: str | os.PathLike, result: SpotReport) -> Path:
    """Write ``report.json`` (atomically), ``intervals.csv`` and the timelines; returns the JSON path."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    report = result.report
    with open(run / (INTERVALS_FILE + ".tmp"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(INTERVALS_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(report["predictions"])
    os.replace(run / (INTERVALS_FILE + ".tmp"), run / INTERVALS_FILE)
    for video, curves in result.curves.items():
        plot_timeline(report, video, curves, run / TIMELINE_DIR / f"{_safe(video)}.png")
    path = run / REPORT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, path)
    return path


def is_spot_report(run: str | os.PathLike) -> bool:
    """Whether ``run`` holds a finished spotting run's report."""
    try:
        return json.loads((Path(run) / REPORT_FILE).read_text()).get("kind") == "spotting"
    except (FileNotFoundError, ValueError):
        return False


def read_spot_report(run: str | os.PathLike) -> dict[str, Any]:
    """The ``report.json`` of a spotting run folder."""
    report = read_report(run, REQUIRED_KEYS, "mepipe spot")
    if report["kind"] != "spotting":
        raise ValueError(f"{Path(run) / REPORT_FILE} is not a spotting run's report; was it written by `mepipe spot`?")
    return report


def table_rows(records: list[dict[str, Any]]) -> list[SpottingRow]:
    """The MEGC table of a report (its ``table`` records) as :class:`SpottingRow`."""
    return [SpottingRow(r["dataset"], r["kind"], SpottingCounts(int(r["tp"]), int(r["fp"]), int(r["fn"])))
            for r in records]


def format_spot_report(report: dict[str, Any]) -> str:
    """A plain-text summary: spotter and stores, the MEGC table with the published baseline beside it, chance,
    and one line per fold with what it chose and on whom."""
    run = report["parameters"]["run"]
    lines = [f"spotter {report['spotter']}  protocol {report['protocol']}"
             f"{'  control ' + report['control'] if report.get('control') else ''}  device {report.get('device')}"]
    lines += [f"store {s['location']}  {s.get('dataset')}, {s.get('n_videos')} videos  id {s.get('store_id') or 'none'}"
              for s in report["store"]["stores"]]
    changed = ", ".join(f"{k}={v}" for k, v in run.get("params") or [])
    lines.append(f"fingerprint {report['store'].get('fingerprint', '')[:16]}  parameters: "
                 f"{changed or 'the spotter defaults'}")
    if report["protocol"] == "final":
        lines.append(report["note"])
        fold = report["folds"][0]
        lines.append(_fold_line(fold))
        return "\n".join(lines)
    lines.append("")
    lines.append(format_spotting_table(table_rows(report["table"]), published=MEGC2020_BASELINE))
    chance = {(c["dataset"], c["kind"]): c for c in report.get("chance", [])}
    if chance:
        lines.append("")
        lines.append("chance F1 (the same intervals at random places in their videos, mean of 200 draws): " + ", ".join(
            f"{k} {chance[(ALL, k)]['f1']:.4f}" for k in (*KINDS, OVERALL) if (ALL, k) in chance))
    lines.append("")
    lines.append(f"folds ({len(report['folds'])}, {report.get('n_videos', '?')} test videos, "
                 f"{report.get('seconds', 0):.0f} s):")
    lines += ["  " + _fold_line(f) for f in report["folds"]]
    if report.get("resumed_folds"):
        lines.append(f"resumed: {len(report['resumed_folds'])} folds kept from an interrupted attempt")
    return "\n".join(lines)


def _fold_line(fold: dict[str, Any]) -> str:
    settings = ", ".join(f"{k} {v:g}" for k, v in fold["settings"].items())
    spotter = fold["spotter"]
    chosen = []
    if "chosen_epoch" in spotter:
        chosen.append(f"epoch {spotter['chosen_epoch']} of {spotter['epochs']}")
    people = fold["validation"]["people"]
    where = (f"chosen on {', '.join(people)}" if people else
             "chosen on the training side" if "choice" in spotter else "fixed")
    return (f"{printable(fold['name']):<16} test {len(fold['test'])} videos, fit {fold['n_fit']}; "
            f"{'; '.join(chosen + [settings])} ({where}); {fold.get('seconds', 0):.0f} s")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def plot_timeline(report: dict[str, Any], video: str, curves: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """One video's timeline: each pass's curve and threshold, then the annotated and spotted intervals by kind.

    Time in seconds is the frame number over the video's fps.
    """
    plt = pyplot()
    from matplotlib.patches import Patch

    fold = next(f for f in report["folds"] if video in f["test"])
    meta = fold["videos"][video]
    fps, first = float(meta["fps"]), int(meta["first_frame"])
    truth = [t for t in report.get("truth", []) if t["video"] == video]
    spotted = [p for p in report["predictions"] if p["video"] == video]
    names = list(curves)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(11, 1.9 * len(names) + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": [3] * len(names) + [1.4]})
    for ax, name in zip(axes, names):
        curve = np.asarray(curves[name], dtype=float)
        seconds = (first + np.arange(len(curve))) / fps
        for t in truth:
            ax.axvspan(t["onset"] / fps, (t["offset"] + 1) / fps, color=KIND_COLOURS[t["kind"]], alpha=0.12, lw=0)
        ax.plot(seconds, curve, color="black", lw=0.9, label=f"{name} curve")
        readers = [p for p, c in fold["passes"].items() if c == name]
        for reader in readers:
            threshold = fold["thresholds"][video].get(reader)
            if threshold is not None:
                ax.axhline(threshold, color=KIND_COLOURS.get(reader, "tab:orange"), ls="--", lw=1.0,
                           label=f"{reader} threshold {threshold:.3g}" if len(readers) > 1 else
                           f"threshold {threshold:.3g}")
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=7)
    lanes = axes[-1]
    for row, (label, items) in enumerate((("spotted", spotted), ("annotated", truth))):
        for item in items:
            lanes.broken_barh([(item["onset"] / fps, (item["offset"] - item["onset"] + 1) / fps)], (row + 0.15, 0.7),
                              color=KIND_COLOURS[item["kind"]], alpha=0.85)
    lanes.set_xlim(first / fps, (first + int(meta["n_frames"])) / fps)
    lanes.set_yticks([0.5, 1.5], ["spotted", "annotated"])
    lanes.set_ylim(0, 2)
    lanes.set_xlabel("time (s)")
    lanes.legend(handles=[Patch(color=c, label=k) for k, c in KIND_COLOURS.items()], loc="upper right", fontsize=7,
                 ncol=2)
    fig.suptitle(f"{printable(video)} ({meta['dataset']}, {fps:g} fps) · {report['spotter']} · fold "
                 f"{printable(fold['name'])} · shaded: annotated intervals", fontsize=9)
    return save_figure(fig, path, dpi=100)
