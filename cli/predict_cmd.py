"""``mepipe predict``: spot and recognise expressions in videos nobody annotated; ``evaluate --predictions`` scores them.

The orchestration lives here because it joins the two sides the layers keep
apart: the pipeline builds features from the videos (a long-video store for
the spotter, then a store of the spotted intervals as clips for the
recognition model), and train spots and classifies from those stores. Both
builds use the stage parameters recorded in the stores the two runs were
trained on, so the features mean what the runs learnt them as; a run whose
features cannot be made from video is refused with the reason.
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import click

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
"""Video files ``predict`` takes (besides frame folders)."""

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

CACHE_DIR = "stores"
"""Under ``--out``: the stores predict builds (reused by a later predict into the same folder)."""


def _video_ids(paths: tuple[Path, ...], fps: float | None) -> dict[str, Path]:
    """Each input's video id (its file or folder name without suffix, numbered when repeated), checked."""
    out: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            if not any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir()):
                raise click.UsageError(f"{path}: a folder without frame images ({', '.join(FRAME_SUFFIXES)})")
            if fps is None:
                raise click.UsageError(f"{path} is a frame folder: pass --fps (its frame rate)")
        elif path.suffix.lower() not in VIDEO_SUFFIXES:
            raise click.UsageError(f"{path}: predict takes video files ({', '.join(VIDEO_SUFFIXES)}) or frame "
                                   "folders, nothing else")
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in (path.stem if path.is_file() else path.name))
        name, n = stem, 1
        while name in out:
            n += 1
            name = f"{stem}-{n}"
        out[name] = path.resolve()
    return out


def _recorded_params(stores: list[dict[str, Any]], stages: list[str], unit: str, what: str) -> dict[str, Any]:
    """The parameters the run's first store recorded for ``stages`` and the shared settings (window, frames)."""
    from mepipe.featurestore import open_store
    from mepipe.pipeline.stages import default_params

    location = stores[0]["location"]
    try:
        record = open_store(location).record
    except (OSError, ValueError) as err:
        raise click.UsageError(f"{what}: its store {location} cannot be opened ({err}); predict builds features "
                               "with the parameters that store recorded") from None
    if record is None:
        raise click.UsageError(f"{what}: its store {location} has no build record")
    defaults = default_params(unit)
    recorded = record.stage_params()
    names = set(stages) | set(record.shared_params)
    return {name: recorded[name] for name in sorted(names) if name in defaults and name in recorded}


def _stages(reads: tuple[str, ...], unit: str, what: str) -> list[str]:
    """The stages that make ``reads`` from video, with everything upstream; a run reading a feature no stage makes
    from video is refused in one line."""
    from mepipe.featurestore.errors import UsageError
    from mepipe.pipeline.stages import stages_for

    try:
        return stages_for(list(reads), unit)
    except UsageError as err:
        raise click.UsageError(f"{what} reads {', '.join(reads)}, which cannot be made from video: {err}") from None


def _build(kind: str, root: Path, store: Path, rows: list[dict[str, Any]], reads: tuple[str, ...],
           config: dict[str, Any], unit: str, workers: int, progress: bool):
    """Write a manifest of ``rows`` under ``root`` and build ``reads`` of it into ``store``; returns the report."""
    from mepipe.pipeline.build import BuildOptions, run_build
    from mepipe.pipeline.stages import params_from_mapping

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    options = {"unit": kind, "allow_outside_root": True, **({"span": "annotated"} if kind == "clips" else {})}
    report = run_build(BuildOptions(dataset="manifest", root=root, store=store, workers=workers,
                                    stages=reads, params=params_from_mapping(config, unit), progress=progress,
                                    adapter_options=options))
    return report


@click.command("predict")
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--spotter", "spot_run", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A final spotting run (mepipe spot --final).")
@click.option("--model", "model_run", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A final recognition run (mepipe train --final).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("predictions"),
              show_default=True,
              help="Folder of predictions.csv, predictions.json, timelines/VIDEO.png and the stores built "
                   "(stores/, reused by a later predict into the same folder).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Frame rate of frame folders (video files carry theirs).")
@click.option("--face", metavar="largest|center|N",
              help="Whose face to follow when a video shows several people, as in mepipe build.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Worker processes of the builds.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the spotter and the model run.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bars.")
def predict(videos, spot_run, model_run, out, fps, face, workers, device, progress):
    """Spot micro- and macro-expressions in VIDEO files or frame folders and classify each interval.

    Tracks the face, builds the features the spotting run reads (a long-video
    store), spots intervals (never in frames without a face), builds each
    interval as a clip (onset, the curve's peak as apex, offset) with the
    features the recognition run reads, and classifies it by that run's
    rule. Writes OUT/predictions.csv and OUT/predictions.json (frames and
    seconds, micro/macro, class and class probabilities; the spans without
    a face) and OUT/timelines/VIDEO.png. `mepipe evaluate --predictions OUT
    --store STORE` scores them against annotated videos.
    """
    from mepipe.featurestore.errors import DataError
    from mepipe.featurestore.features import FACE_FOUND, LANDMARKS
    from mepipe.featurestore.safety import printable
    from mepipe.train.final_model import restore_final_model
    from mepipe.train.predictions import (
        TIMELINE_DIR, no_face_spans, outside_spans, plot_prediction_timeline, write_predictions)
    from mepipe.train.spotters.report import read_spot_report
    from mepipe.train.spotters.run import restore_final
    from mepipe.train.spotters.selection import pass_rows
    from mepipe.train.spotters.videos import VideoTable

    started = time.time()
    ids = _video_ids(videos, fps)
    spot_report = read_spot_report(spot_run)
    fitted = restore_final(spot_run, "cpu" if device == "auto" else device)
    spot_reads = tuple(spot_report["store"]["features"])
    model = restore_final_model(model_run, device)
    spot_what, model_what = f"spotting run {spot_run}", f"recognition run {model_run}"
    face_config = {LANDMARKS.stage: {"face": face}} if face else {}
    spot_config = _recorded_params(spot_report["store"]["stores"], _stages(spot_reads, "video", spot_what),
                                   "video", spot_what)
    model_config = _recorded_params(model.report["store"]["stores"], _stages(model.reads, "clip", model_what),
                                    "clip", model_what)
    for config in (spot_config, model_config):
        for stage, values in face_config.items():
            config[stage] = {**config.get(stage, {}), **values}
    cache = out / CACHE_DIR
    video_rows = [{"path": str(p), "subject": v, "sample": v, "fps": fps or ""} for v, p in ids.items()]
    video_build = _build("videos", cache / "videos", cache / "videos.zarr", video_rows,
                         (*spot_reads, FACE_FOUND.name), spot_config, "video", workers, progress)
    failed = {f.get("sample"): f.get("error") for f in video_build.failures}
    problems = [_video_failure(cache / "videos.zarr", video, str(error)) for video, error in failed.items()]
    table = VideoTable.open([cache / "videos.zarr"])
    found = set(table.ids)
    entries, spotted, curves_of, thresholds_of = [], [], {}, {}
    for video in ids:
        if video not in found or video in failed:
            continue
        numbers = table.frame_numbers(video)
        face_found = table.read(FACE_FOUND.name, video)
        video_fps = float(table.value(video, "fps"))
        entry = {"video": video, "source": str(ids[video]), "fps": video_fps, "first_frame": int(numbers[0]),
                 "n_frames": int(len(numbers)), "no_face": [list(s) for s in no_face_spans(face_found, numbers)]}
        entries.append(entry)
        if not face_found.any():
            problems.append(f"{video}: no face found in any of its {len(numbers)} frames; nothing to spot")
            continue
        curves = fitted.curves(table, video)
        rows, thresholds = [], {}
        for spot_pass in fitted.passes:
            threshold, found_rows = pass_rows(spot_pass, curves[spot_pass.curve], fitted.settings[spot_pass.name],
                                              table, video)
            thresholds[spot_pass.name] = {"curve": spot_pass.curve, "threshold": threshold}
            rows += found_rows
        kept = outside_spans(rows, entry["no_face"])
        spotted += [{**r, "fps": video_fps} for r in sorted(kept, key=lambda r: (r["onset"], r["kind"]))]
        curves_of[video], thresholds_of[video] = curves, thresholds
        entry["thresholds"] = thresholds
        entry["dropped_without_face"] = len(rows) - len(kept)
    if not curves_of:
        raise DataError("; ".join(problems) or "no video could be read")
    for line in problems:
        click.echo(printable(line), err=True)
    predictions = _classify(spotted, ids, cache, model, model_config, workers, progress)
    classes = model.classes
    result = {
        "format_version": 1, "labels": model.report["labels"], "classes": classes,
        "spotter_run": {"path": str(spot_run), "spotter": spot_report["spotter"],
                        "stores": spot_report["store"]["stores"], "settings": fitted.settings},
        "model_run": {"path": str(model_run), "model": model.report["model"],
                      "stores": model.report["store"]["stores"]},
        "parameters": {"spotting": spot_config, "recognition": model_config, "face": face or "largest"},
        "videos": entries, "predictions": predictions,
        "seconds": round(time.time() - started, 3),
    }
    csv_path, json_path = write_predictions(out, result)
    for entry in entries:
        if entry["video"] in curves_of:
            plot_prediction_timeline(entry, curves_of[entry["video"]], thresholds_of[entry["video"]],
                                     [p for p in predictions if p["video"] == entry["video"]], classes,
                                     out / TIMELINE_DIR / f"{entry['video']}.png")
    click.echo(_summary(result))
    click.echo(f"wrote {csv_path}, {json_path}, {out / TIMELINE_DIR}/ in {result['seconds']:.0f} s")


def _video_failure(store: Path, video: str, error: str) -> str:
    """One sentence for a video whose spotting features failed: that it shows no face, when that is why."""
    from mepipe.featurestore import open_store
    from mepipe.featurestore.features import FACE_FOUND

    opened = open_store(store, allow_incomplete=True)
    if opened.has(FACE_FOUND.name, video):
        found = opened.read(FACE_FOUND.name, video)
        if not found.any():
            return f"{video}: no face found in any of its {len(found)} frames; nothing to spot"
    return error if error.startswith(f"{video}:") else f"{video}: {error}"


def _classify(spotted: list[dict[str, Any]], ids: dict[str, Path], cache: Path, model: Any,
              model_config: dict[str, Any], workers: int, progress: bool) -> list[dict[str, Any]]:
    """Build each spotted interval as a clip and classify it; rows in the predictions' format."""
    from mepipe.train.clips import ClipTable

    if not spotted:
        return []
    names = [f"{r['video']}-{r['onset']}-{r['offset']}-{r['kind']}" for r in spotted]
    rows = [{"path": str(ids[r["video"]]), "subject": r["video"], "label": "unknown", "onset": r["onset"],
             "apex": r["apex"], "offset": r["offset"], "fps": r["fps"], "sample": n} for r, n in zip(spotted, names)]
    build = _build("clips", cache / "clips", cache / "clips.zarr", rows, model.reads, model_config, "clip",
                   workers, progress)
    failed = {f.get("sample"): f.get("error") for f in build.failures}
    clips = ClipTable.open([cache / "clips.zarr"])
    usable = [n for n in names if n not in failed and all(clips.has(f, n) for f in model.reads)]
    pred, probabilities = model.classify(clips.subset(usable), usable)
    classes = model.classes
    by_name = {n: (int(p), None if probabilities is None else probabilities[i]) for i, (n, p) in
               enumerate(zip(usable, pred))}
    out = []
    for row, name in zip(spotted, names):
        fps = row["fps"]
        label, probs = by_name.get(name, (None, None))
        out.append({"video": row["video"], "onset": row["onset"], "apex": row["apex"], "offset": row["offset"],
                    "onset_s": round(row["onset"] / fps, 4), "apex_s": round(row["apex"] / fps, 4),
                    "offset_s": round(row["offset"] / fps, 4), "kind": row["kind"],
                    "class": "" if label is None else classes[label], "score": float(row["score"]),
                    "probabilities": None if probs is None else {c: round(float(p), 6) for c, p in zip(classes, probs)},
                    **({"error": failed.get(name, "a feature could not be built")} if label is None else {})})
    return out


def _summary(result: dict[str, Any]) -> str:
    from mepipe.featurestore.safety import printable

    lines = []
    for entry in result["videos"]:
        rows = [p for p in result["predictions"] if p["video"] == entry["video"]]
        no_face = sum(b - a + 1 for a, b in entry["no_face"])
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            key = (row["kind"], row["class"] or "unclassified")
            counts[key] = counts.get(key, 0) + 1
        lines.append(f"{printable(entry['video'])}: {entry['n_frames']} frames at {entry['fps']:g} fps, "
                     f"{len(rows)} intervals" + (f" ({', '.join(f'{n} {k} {c}' for (k, c), n in counts.items())})"
                                                 if rows else "")
                     + (f"; {no_face} frames without a face" if no_face else ""))
    return "\n".join(lines)


def _score_lines(score: dict[str, Any]) -> str:
    from mepipe.train.spotters.report import table_rows
    from mepipe.train.spotting_eval import format_spotting_table

    lines = [format_spotting_table(table_rows(score["table"])), ""]
    for key, what in (("strs", "micro"), ("strs_all", "micro and macro")):
        s = score[key]
        spot = s["spotting"]
        lines.append(f"STRS ({what}) {s['strs']:.4f} = spotting F1 {spot['f1']:.4f} (TP {spot['tp']} FP {spot['fp']} "
                     f"FN {spot['fn']}) x analysis F1 {s['analysis']['f1']:.4f} (UF1 {s['analysis']['uf1']:.4f}, "
                     f"UAR {s['analysis']['recall']:.4f})")
    if score["unlabelled_truth"]:
        lines.append(f"{score['unlabelled_truth']} annotated intervals have no class of the run's labels: spotted, "
                     "not analysed")
    return "\n".join(lines)


def evaluate_predictions(folder: Path, store: str, as_json: bool) -> None:
    """``mepipe evaluate --predictions FOLDER --store STORE``: the folder's predictions against the store's truth."""
    from mepipe.featurestore import open_store
    from mepipe.train.predictions import read_predictions, score_predictions

    result = read_predictions(folder)
    opened = open_store(store)
    if opened.unit != "video":
        raise click.UsageError(f"{store} is a store of clips; scoring predictions needs a long-video store "
                               "(its annotated intervals)")
    record = opened.record
    dataset = record.dataset if record is not None else "store"
    score = score_predictions(result, opened.intervals, dataset, opened.sample_ids)
    (Path(folder) / "score.json").write_text(json.dumps(score, indent=2))
    click.echo(json.dumps(score, indent=2) if as_json else _score_lines(score))


def register(cli_group: click.Group) -> None:
    """Add ``predict`` to the ``mepipe`` group."""
    cli_group.add_command(predict)
