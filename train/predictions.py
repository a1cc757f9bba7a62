"""What ``mepipe predict`` writes, and its scoring against annotated long videos.

A prediction folder holds ``predictions.csv`` (one row per spotted and
classified interval), ``predictions.json`` (the same rows, every video with
its frame rate, frame numbers and the spans without a face, the runs that
made them, the classes) and ``timelines/VIDEO.png``.

Frame numbers are the video's (a video file's frames 0..n-1, a frame
folder's file-name numbers), seconds are frame number / fps. A span of
frames without a face is reported, never spotted in: an interval touching
one is dropped (:func:`outside_spans`).

:func:`score_predictions` scores a folder against a long-video store's
annotations: the MEGC spotting table (:func:`~.spotting_eval.spotting_table`)
and STRS with the analysis F1 of the true-positive intervals
(:func:`~.strs.strs`, MEGC 2023-2024), the truth's emotions mapped to the
recognition run's classes by its label scheme.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mepipe.featurestore.errors import UsageError
from mepipe.featurestore.safety import printable

from .labels import get_scheme
from .metrics import runs_of
from .report import pyplot, save_figure
from .spotting_eval import interval_table, spotting_table
from .strs import strs

__all__ = ["CSV_FILE", "JSON_FILE", "TIMELINE_DIR", "no_face_spans", "outside_spans", "plot_prediction_timeline",
           "read_predictions", "score_predictions", "write_predictions"]

CSV_FILE = "predictions.csv"
JSON_FILE = "predictions.json"
TIMELINE_DIR = "timelines"
FIXED_COLUMNS = ("video", "onset", "apex", "offset", "onset_s", "apex_s", "offset_s", "kind", "class", "score")
"""The CSV's first columns; one ``p_CLASS`` column per class follows."""

UNLABELLED = "(no class)"
"""The analysed class of an annotated interval whose emotion the run's label scheme does not map (not analysed)."""


def no_face_spans(face_found: Sequence[bool], frame_numbers: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) frame numbers of each maximal run of frames without a face."""
    numbers = np.asarray(frame_numbers, dtype=np.int64)
    return [(int(numbers[a]), int(numbers[b])) for a, b in runs_of(~np.asarray(face_found, dtype=bool))]


def outside_spans(rows: Sequence[Mapping[str, Any]], spans: Sequence[tuple[int, int]]) -> list[Mapping[str, Any]]:
    """The rows whose onset..offset (inclusive) shares no frame with any span."""
    return [r for r in rows if not any(r["onset"] <= b and a <= r["offset"] for a, b in spans)]


def write_predictions(out: str | os.PathLike, result: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``predictions.json`` (``result`` as given) and ``predictions.csv`` (its ``predictions``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / JSON_FILE, out / CSV_FILE
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, json_path)
    classes = list(result["classes"])
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FIXED_COLUMNS, *(f"p_{c}" for c in classes)])
        for row in result["predictions"]:
            probabilities = row.get("probabilities") or {}
            writer.writerow([row[c] for c in FIXED_COLUMNS] + [probabilities.get(c, "") for c in classes])
    return csv_path, json_path


def read_predictions(folder: str | os.PathLike) -> dict[str, Any]:
    """``predictions.json`` of a folder ``mepipe predict`` wrote."""
    path = Path(folder) / JSON_FILE
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{folder}: no {JSON_FILE}; pass the --out folder of `mepipe predict`") from None
    if not {"predictions", "videos", "classes"} <= set(result):
        raise UsageError(f"{path} is not a predictions file of `mepipe predict`")
    return result


def plot_prediction_timeline(video: Mapping[str, Any], curves: Mapping[str, np.ndarray],
                             thresholds: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                             classes: Sequence[str], path: str | os.PathLike) -> Path:
    """One video's timeline: each spotting curve with its thresholds, then the intervals coloured by class.

    ``thresholds`` maps each pass to ``{"curve": name, "threshold": value}``;
    frames without a face are shaded grey. Time in seconds is frame number / fps.
    """
    plt = pyplot()
    from matplotlib.patches import Patch

    fps, first = float(video["fps"]), int(video["first_frame"])
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(classes)}
    names = list(curves)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(11, 1.9 * len(names) + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": [3] * len(names) + [1.2]})
    for ax in axes:
        for a, b in video["no_face"]:
            ax.axvspan(a / fps, (b + 1) / fps, color="0.6", alpha=0.35, lw=0)
    for ax, name in zip(axes, names):
        curve = np.asarray(curves[name], dtype=float)
        ax.plot((first + np.arange(len(curve))) / fps, curve, color="black", lw=0.9, label=f"{name} curve")
        for spot_pass, entry in thresholds.items():
            if entry["curve"] == name and entry["threshold"] is not None:
                ax.axhline(entry["threshold"], ls="--", lw=1.0, color="tab:red" if spot_pass == "micro" else "tab:blue",
                           label=f"{spot_pass} threshold {entry['threshold']:.3g}")
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=7)
    lanes = axes[-1]
    for row in rows:
        lane = 0 if row["kind"] == "micro" else 1
        lanes.broken_barh([(row["onset"] / fps, (row["offset"] - row["onset"] + 1) / fps)], (lane + 0.15, 0.7),
                          color=colours.get(row["class"], "0.3"))
    lanes.set_xlim(first / fps, (first + int(video["n_frames"])) / fps)
    lanes.set_yticks([0.5, 1.5], ["micro", "macro"])
    lanes.set_ylim(0, 2)
    lanes.set_xlabel("time (s)")
    handles = [Patch(color=colours[c], label=c) for c in classes] + [Patch(color="0.6", alpha=0.35, label="no face")]
    lanes.legend(handles=handles, loc="upper right", fontsize=7, ncol=len(handles))
    fig.suptitle(f"{printable(video['video'])} ({fps:g} fps, {video['n_frames']} frames): {len(rows)} intervals",
                 fontsize=9)
    return save_figure(fig, path, dpi=100)


def _truth_classes(truth: pd.DataFrame, scheme_name: str) -> pd.DataFrame:
    """The truth rows with ``emotion`` replaced by the scheme's class (empty when the scheme has none for it)."""
    scheme = get_scheme(scheme_name)
    column = scheme.column if scheme.column in truth.columns else "emotion"
    raw = truth[column].fillna("").astype(str)
    classes = [scheme.class_of(d, r) for d, r in zip(truth["dataset"].astype(str), raw)]
    return truth.assign(emotion=[c if c is not None else "" for c in classes])


def score_predictions(result: Mapping[str, Any], store_truth: pd.DataFrame, dataset: str,
                      store_videos: Sequence[str]) -> dict[str, Any]:
    """Spotting table and STRS of a predictions file against a long-video store's annotated intervals.

    Every predicted video must be a video of the store (by id); only those
    videos' annotations count. Truth intervals whose emotion the run's label
    scheme has no class for are spotted (they count in the spotting figures)
    but not analysed.

    The analysed classes are those the scored truth holds (as the STRS code
    takes them), so a class of the run that no annotated interval has does
    not count as a class scored zero.

    Returns
    -------
    dict
        ``videos`` scored, ``table`` (MEGC rows), ``strs`` (micro, as the
        MEGC STR tracks score; and ``strs_all`` over both kinds).
    """
    videos = [v["video"] for v in result["videos"]]
    unknown = sorted(set(videos) - set(map(str, store_videos)))
    if unknown:
        raise UsageError(f"videos {', '.join(map(printable, unknown[:5]))} of the predictions are not in the store "
                         f"(its videos: {', '.join(map(printable, list(store_videos)[:5]))}, …)")
    truth = store_truth[store_truth["video"].astype(str).isin(videos)].copy()
    truth["dataset"] = dataset
    predicted = pd.DataFrame.from_records(
        [{**{k: r[k] for k in ("video", "onset", "apex", "offset", "kind")}, "dataset": dataset,
          "emotion": r["class"]} for r in result["predictions"]],
        columns=["video", "onset", "apex", "offset", "kind", "dataset", "emotion"])
    listed = [(dataset, v) for v in videos]
    table = spotting_table(interval_table(predicted, "predictions"), interval_table(truth, "truth"), videos=listed)
    labelled = _truth_classes(truth, result["labels"])
    scored = labelled.assign(emotion=labelled["emotion"].replace("", UNLABELLED))
    scores = {}
    for key, kind in (("strs", "micro"), ("strs_all", None)):
        kept = scored if kind is None else scored[scored["kind"] == kind]
        classes = sorted(set(kept["emotion"]) - {UNLABELLED})  # the classes the truth holds, as the STRS code takes
        scores[key] = strs(predicted, scored, kind=kind, classes=classes).as_record()
    return {"videos": videos, "dataset": dataset, "table": [row.as_record() for row in table],
            **scores,
            "unlabelled_truth": int((labelled["emotion"] == "").sum())}
