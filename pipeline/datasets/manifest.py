"""Bring-your-own data: videos or frame folders listed in a CSV.

Columns ``path``, ``subject``, ``label`` and optionally ``onset``, ``apex``,
``offset``, ``fps``, ``sample``. ``path`` is a frame folder (frames mapped by
the number in their names) or a video file (frames ``0..n-1``), relative to
the CSV's folder or to ``root``. This is how MEVIEW, MAHNOB-HCI or lab
recordings enter the pipeline.

Long videos (``unit="videos"``): each row is a whole recording (columns
``path``, ``subject``, optionally ``fps``, ``sample``; no label), built into a
long-video store, and the expressions annotated in them, if any, come from a
second CSV (``intervals=FILE``) with columns ``video`` (the row's sample id),
``onset`` and ``offset`` (frame numbers: a video file's frames are numbered
from 0) and optionally ``apex``, ``kind`` (micro or macro), ``name``,
``action_units`` and ``emotion``. Each interval is checked against its
video's frames as a sheet's are; one naming no video of the manifest is
reported and skipped.

A manifest is data, often written by someone else, so its paths are
confined: every path, and every frame file in a listed folder, must resolve
(symlinks followed) inside the dataset root or the manifest's own folder.
A row that leaves them fails alone, unless ``allow_outside_root=True``
(``mepipe build --allow-outside-root``). Default sample ids come from the
path relative to the root, so two machines with the data in different
places name their clips the same.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import pandas as pd

from mepipe.featurestore.errors import ConfigError

from .base import IMAGE_SUFFIXES, UNIT_OPTIONS, AdapterResult, Quirk, Sample, register_adapter
from .long_videos import KINDS, interval_table, read_interval
from .sheets import (
    ClipFrames,
    Findings,
    Sheet,
    SheetRow,
    cell_text,
    check_labels,
    collect_samples,
    check_on_disk,
    clip_frames,
    find_sheet,
    finding,
    read_ground_truth,
    read_sheet,
    single_frame,
)

MANIFEST_SHEETS = ("manifest*.csv",)


@dataclass(frozen=True)
class ManifestColumns:
    """Accepted header names of a manifest (see :class:`~.sheets.SheetColumns`)."""

    path: tuple[str, ...] = ("path",)
    subject: tuple[str, ...] = ("subject",)
    emotion: tuple[str, ...] = ("label", "emotion")
    onset: tuple[str, ...] = ("onset",)
    apex: tuple[str, ...] = ("apex",)
    offset: tuple[str, ...] = ("offset",)
    fps: tuple[str, ...] = ("fps",)
    sample: tuple[str, ...] = ("sample", "sample_id")
    action_units: tuple[str, ...] = ("action_units", "aus")
    objective_class: tuple[str, ...] = ("objective_class",)
    required: tuple[str, ...] = ("path", "subject", "emotion")


@dataclass(frozen=True)
class VideoManifestColumns:
    """Accepted header names of a manifest of long videos: one row per recording, no label or onset."""

    path: tuple[str, ...] = ("path",)
    subject: tuple[str, ...] = ("subject",)
    fps: tuple[str, ...] = ("fps",)
    sample: tuple[str, ...] = ("sample", "sample_id")
    required: tuple[str, ...] = ("path", "subject")


@dataclass(frozen=True)
class IntervalColumns:
    """Accepted header names of the intervals CSV beside a manifest of long videos."""

    video: tuple[str, ...] = ("video", "sample")
    name: tuple[str, ...] = ("name", "interval")
    onset: tuple[str, ...] = ("onset",)
    apex: tuple[str, ...] = ("apex",)
    offset: tuple[str, ...] = ("offset",)
    kind: tuple[str, ...] = ("kind", "type")
    action_units: tuple[str, ...] = ("action_units", "aus")
    emotion: tuple[str, ...] = ("emotion", "label")
    required: tuple[str, ...] = ("video", "onset", "offset")


def video_frames(path: Path) -> tuple[int, float]:
    """Frame count and frame rate of a video file.

    Containers that do not store a frame count report 0; those are counted
    by grabbing every frame (no decoding).
    """
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open {path} as a video")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if count <= 0:
            count = 0
            while cap.grab():
                count += 1
        return count, fps
    finally:
        cap.release()


def _resolve(text: str, bases: tuple[Path, ...]) -> tuple[Path | None, tuple[Path, ...]]:
    """The first existing ``base / text`` (or ``text`` when absolute) and every path tried.

    Paths are normalised lexically (``a/../b`` is ``b``), symlinks are not
    followed here: :func:`_outside` judges where a path really leads.
    """
    given = Path(text.replace("\\", "/"))
    candidates = (given,) if given.is_absolute() else tuple(base / given for base in bases)
    tried = tuple(dict.fromkeys(Path(os.path.normpath(p)) for p in candidates))
    return next((p for p in tried if p.exists()), None), tried


def _outside(path: Path, bases: tuple[Path, ...]) -> bool:
    """Whether ``path``, with every symlink followed, lies outside all of ``bases``."""
    real = path.resolve()
    return not any(real.is_relative_to(base.resolve()) for base in bases)


def _relative_name(path: Path, text: str, bases: tuple[Path, ...]) -> str:
    """The path as written relative to the first base it lies under (lexically), else the text itself."""
    for base in bases:
        base = Path(os.path.normpath(base.absolute()))
        try:
            return Path(os.path.normpath(path.absolute())).relative_to(base).as_posix()
        except ValueError:
            continue
    return text


def _default_sample_id(text: str) -> str:
    """A sample id from a relative path: suffix dropped, separators as ``_`` (unique per path)."""
    path = PurePosixPath(text.replace("\\", "/"))
    parts = (*path.parts[:-1], path.stem) if path.name else path.parts
    return "_".join(p for p in parts if p not in ("/", ".", ".."))


def _leaves_root(path: Path, frames: ClipFrames, ctx: "_Context") -> str | None:
    """Why the clip at ``path`` reaches outside the allowed folders, or None."""
    if ctx.allow_outside_root:
        return None
    allowed = " or ".join(str(b) for b in dict.fromkeys(ctx.bases))
    if _outside(path, ctx.bases):
        return f"{path} resolves to {path.resolve()}, outside {allowed}"
    escaping = next((f for f in frames.files if _outside(Path(f), ctx.bases)), None)
    if escaping is not None:
        return f"frame {escaping} resolves to {Path(escaping).resolve()}, outside {allowed}"
    return None


def _video_clip(path: Path, sample: str, source: str, row: int) -> tuple[ClipFrames, float | None]:
    try:
        count, fps = video_frames(path)
    except ValueError as exc:
        error = str(exc)
        return ClipFrames(error=error, findings=finding(sample, "unreadable_video", error, source, row)), None
    if count == 0:
        error = f"video {path} has no frames"
        return ClipFrames(error=error, findings=finding(sample, "no_frames", error, source, row)), None
    findings = Findings()
    if path.suffix.lower() in IMAGE_SUFFIXES:  # OpenCV opens a still image as a video of one frame
        message = (f"{path} is a still image, not a video: read as a clip of 1 frame; list a folder of frames or "
                   "a video file")
        findings = finding(sample, "still_image", message, source, row)
    elif count == 1:
        findings = single_frame(sample, f"video {path}", source, row)
    return ClipFrames(numbers=tuple(range(count)), findings=findings), (fps if fps > 0 else None)


def _row_fps(row: SheetRow, sample: str, source: str) -> tuple[float | None, Findings]:
    text = cell_text(row.get("fps"))
    if not text:
        return None, Findings()
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value > 0:
        return value, Findings()
    message = f"fps cell {text!r} is not a positive number; ignored"
    return None, finding(sample, "fps_unparsable", message, source, row.row)


@dataclass(frozen=True)
class _Context:
    sheet: Sheet
    bases: tuple[Path, ...]
    dataset: str
    fps: float | None
    allow_outside_root: bool = False
    span: str = "whole"


SPANS = ("whole", "annotated")
"""A clip row's frames: every frame of its video or folder, or only its onset..offset (``span=annotated``)."""


def _annotated_span(frames: ClipFrames, onset: int | None, offset: int | None, sample: str, source: str,
                    row: int) -> ClipFrames:
    """``frames`` cut to onset..offset (inclusive), or an error naming the sample when either is missing."""
    if frames.error is not None:
        return frames
    if onset is None or offset is None:
        error = "span=annotated needs an onset and an offset"
        return ClipFrames(error=error, findings=frames.findings + finding(sample, "no_span", error, source, row))
    keep = [i for i, n in enumerate(frames.numbers) if onset <= n <= offset]
    return ClipFrames(files=tuple(frames.files[i] for i in keep) if frames.files else (),
                      numbers=tuple(frames.numbers[i] for i in keep), findings=frames.findings)


def _manifest_sample(
    row: SheetRow, ctx: _Context, path_text: str, sample_id: str
) -> tuple[Sample, tuple[Quirk, ...]]:
    source = ctx.sheet.source
    gt = read_ground_truth(row, sample_id, source, blank_is_quirk=False)
    row_fps, fps_findings = _row_fps(row, sample_id, source)
    path, tried = _resolve(path_text, ctx.bases)
    video: str | None = None
    video_fps = None
    if path is None:
        error = f"missing path {path_text!r} (looked for {', '.join(str(p) for p in tried)})"
        frames = ClipFrames(error=error, findings=finding(sample_id, "missing_path", error, source, row.row))
    elif path.is_dir():
        frames = clip_frames(path, sample_id, source, row.row)
    else:
        video = str(path)
        frames = ClipFrames()
    leaves = _leaves_root(path, frames, ctx) if path is not None else None
    if leaves is not None:
        error = f"path {path_text!r} leaves the dataset: {leaves}; pass --allow-outside-root to build it anyway"
        frames, video = ClipFrames(error=error, findings=finding(sample_id, "outside_root", error, source, row.row)), None
    elif video is not None:
        frames, video_fps = _video_clip(path, sample_id, source, row.row)
    if ctx.span == "annotated":
        frames = _annotated_span(frames, gt.onset, gt.offset, sample_id, source, row.row)
    fps = next((f for f in (row_fps, video_fps, ctx.fps) if f is not None), None)
    findings = gt.findings + fps_findings + frames.findings + check_labels(row, sample_id, source)
    findings += check_on_disk(gt, frames.numbers, str(path), sample_id, source, row.row)
    error = frames.error
    if fps is None and error is None:
        error = f"no frame rate for {path}: add an fps column or pass fps="
        findings += finding(sample_id, "no_fps", error, source, row.row)
    sample = Sample(
        sample=sample_id,
        dataset=ctx.dataset,
        subject=cell_text(row.get("subject")),
        clip=Path(path_text).stem if video else Path(path_text).name,
        fps=float(fps) if fps is not None else float("nan"),
        frame_files=frames.files,
        frame_numbers=frames.numbers,
        video=video,
        onset=gt.onset,
        apex=gt.apex,
        offset=gt.offset,
        emotion=cell_text(row.get("emotion")),
        objective_class=cell_text(row.get("objective_class")),
        action_units=cell_text(row.get("action_units")),
        flags=findings.flags,
        error=error,
    )
    return sample, findings.quirks


@register_adapter("manifest")
def load_manifest(
    root: Path,
    annotations: Path | None = None,
    *,
    fps: float | None = None,
    dataset: str = "manifest",
    allow_outside_root: bool = False,
    unit: str = "clips",
    intervals: Path | None = None,
    span: str = "whole",
) -> AdapterResult:
    """Samples listed in a manifest CSV: clips, or long videos with their annotated intervals.

    Parameters
    ----------
    root
        The data folder (``manifest*.csv`` is looked for here when
        ``annotations`` is None; a folder holding several is refused, naming
        them), or the CSV file itself.
    annotations
        The manifest CSV.
    fps
        Frame rate for rows with neither an ``fps`` cell nor a video that
        reports one; such rows get an error when this is None.
    dataset
        Dataset name written into every sample ["manifest"].
    allow_outside_root
        Build paths that resolve (symlinks followed) outside ``root`` and the
        manifest's folder; by default such rows fail with ``outside_root``.
    unit
        ``"clips"`` [default] or ``"videos"``: each row a whole long video
        (no label), for a long-video store.
    intervals
        With ``unit="videos"``: the CSV of annotated intervals (looked for
        as given, then in ``root``); none when omitted.
    span
        ``"whole"`` [default]: a clip row is every frame of its video or
        folder, its onset..offset annotated inside; ``"annotated"``: only
        its onset..offset (how ``mepipe predict`` cuts spotted intervals
        from a long video without decoding the rest).

    Returns
    -------
    AdapterResult
        Sample id = the ``sample`` cell, else the path relative to the root
        (or to the manifest's folder) with its suffix dropped and separators
        as ``_``. Videos have ``video`` set, no frame files and
        frame numbers ``0..n-1``. Missing paths give samples with ``error``.
    """
    if unit not in UNIT_OPTIONS:
        raise ConfigError(f"manifest: unit {unit!r} is unknown; use one of {', '.join(UNIT_OPTIONS)}")
    if intervals is not None and unit != "videos":
        raise ConfigError("manifest: intervals= annotates long videos; add unit=videos")
    if span not in SPANS or (span != "whole" and unit == "videos"):
        raise ConfigError(f"manifest: span {span!r} is unknown or not for long videos; use one of {', '.join(SPANS)} "
                          "with unit=clips")
    root = Path(root)
    if root.is_file():
        annotations, root = annotations or root, root.parent
    csv = find_sheet(root, MANIFEST_SHEETS, annotations, several="refuse")
    columns = VideoManifestColumns() if unit == "videos" else ManifestColumns()
    sheet = read_sheet(csv, columns, header_key="path", leading=False)
    ctx = _Context(sheet=sheet, bases=(csv.parent, root), dataset=dataset, fps=fps,
                   allow_outside_root=_flag(allow_outside_root), span=span)
    named_from = (root, csv.parent)

    def sample_id(row: SheetRow) -> str | None:
        path_text, subject = cell_text(row.get("path")), cell_text(row.get("subject"))
        if not path_text or not subject:
            return None
        given = cell_text(row.get("sample"))
        if given:
            return given
        path, tried = _resolve(path_text, ctx.bases)
        return _default_sample_id(_relative_name(path or tried[0], path_text, named_from))

    def build(row: SheetRow, key: str) -> tuple[Sample, tuple[Quirk, ...]]:
        return _manifest_sample(row, ctx, cell_text(row.get("path")), key)

    result = collect_samples(sheet, sample_id, build)
    if unit == "videos":
        result.unit = UNIT_OPTIONS[unit]
        result.intervals, quirks = _intervals(_interval_sheet(intervals, root), result.samples, dataset)
        result.quirks += quirks
    return result


def _interval_sheet(path: Path | str | None, root: Path) -> Path | None:
    """The intervals CSV as given, else under ``root``; None when there is none."""
    if path is None:
        return None
    given = Path(path)
    found = next((p for p in (given, root / given) if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"intervals file {path} not found (looked for {given} and {root / given})")
    return found


def _intervals(path: Path | None, videos: list[Sample], dataset: str) -> tuple[pd.DataFrame, list[Quirk]]:
    """The intervals CSV's rows as the store's intervals table, each checked against its video's frames."""
    if path is None:
        return interval_table([]), []
    sheet = read_sheet(path, IntervalColumns(), header_key="video", leading=False)
    by_id = {v.sample: v for v in videos}
    rows, quirks, counts = [], [], {}
    for row in sheet.rows:
        video = by_id.get(cell_text(row.get("video")))
        if video is None:
            message = f"video {cell_text(row.get('video'))!r} is not a sample of the manifest; row skipped"
            quirks.append(Quirk(f"row {row.row}", "unknown_video", message, sheet.source, row.row))
            continue
        counts[video.sample] = counts.get(video.sample, 0) + 1
        name = cell_text(row.get("name")) or f"{video.sample}_{counts[video.sample]}"
        kind = cell_text(row.get("kind")).lower()
        if kind not in KINDS:
            if kind:
                message = f"kind {cell_text(row.get('kind'))!r} is neither micro nor macro; kind left empty"
                quirks.append(Quirk(name, "unknown_type", message, sheet.source, row.row))
            kind = ""
        interval, truth = read_interval(row, name, kind, sheet.source, cell_text(row.get("emotion")),
                                        blank_is_quirk=False)
        findings = truth.findings + check_on_disk(truth, video.frame_numbers, video.video or video.clip, name,
                                                  sheet.source, row.row)
        quirks += findings.quirks
        rows.append({"dataset": dataset, "video": video.sample, "name": name, "onset": interval.onset,
                     "apex": interval.apex, "offset": interval.offset, "kind": kind,
                     "action_units": interval.action_units, "au_codes": interval.au_codes,
                     "emotion": interval.emotion, "flags": "; ".join(findings.flags)})
    return interval_table(rows), quirks


def _flag(value: bool | str) -> bool:
    """A boolean option that may arrive as text from ``--option KEY=VALUE``."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
