"""The long-video table: whole recorded videos and the expressions annotated in them.

Spotting corpora (SAMM Long Videos, CAS(ME)²) give a folder of frames per
recorded video and a sheet of intervals in it. A reader of such a corpus
returns a :class:`LongVideoTable`: one :class:`LongVideo` per video found on
disk or named by the sheet (frame files mapped by the number in their names,
fps), each with its :class:`Interval` list (onset, apex, offset as frame
numbers of that video, micro or macro, action units, emotion), plus every
quirk met, as :class:`~.base.Quirk` records, and the format assumptions made.
Intervals carry the sheet's values; one that contradicts itself or the frames
on disk is kept with flags (the vocabulary of :mod:`.sheets`), never dropped.

A long-video adapter returns the table either as whole videos
(:func:`video_samples`, ``unit=videos``, the default: a long-video store with
its intervals) or as short clips cut from its intervals (:func:`clip_samples`,
``unit=clips``: a store of annotated clips, as the short corpora make).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from mepipe.featurestore.errors import ConfigError
from mepipe.featurestore.layout import sample_id_problem
from mepipe.featurestore.schema import INTERVAL_COLUMNS, INTERVAL_INTEGER_COLUMNS

from .action_units import au_codes, parse_action_units
from .base import UNIT_OPTIONS, AdapterResult, Quirk, Sample
from .cuts import Folders, Listing, cut_frames
from .sheets import GroundTruth, SheetRow, cell_text, check_action_units, check_on_disk, read_ground_truth

MICRO, MACRO = "micro", "macro"
KINDS = (MICRO, MACRO)
"""Kinds of annotated interval; ``""`` is an interval whose kind the sheet does not say."""
CLIP_KINDS = (MICRO, MACRO, "all")
"""Which intervals become clips under ``unit=clips`` (``kind=``)."""



@dataclass(frozen=True)
class Interval:
    """One annotated expression of a long video.

    Attributes
    ----------
    name : str
        The interval's id, unique in the table (SAMM: Filename ``006_1_2``;
        CAS(ME)²: ``s15_disgust1_1``).
    onset, apex, offset : int or None
        Frame numbers of the video (None where the sheet has none or it is flagged).
    kind : {"micro", "macro", ""}
    action_units, emotion : str
        As the sheet writes them (``emotion`` may be joined from another sheet).
    row : int or None
        1-based row of the sheet.
    flags : tuple of str
        Quirks found for this interval.
    """

    name: str
    onset: int | None
    apex: int | None
    offset: int | None
    kind: str
    action_units: str = ""
    emotion: str = ""
    row: int | None = None
    flags: tuple[str, ...] = ()

    @property
    def au_codes(self) -> str:
        """The AUs shown, canonical (``"4+10"``; :mod:`.action_units`)."""
        return au_codes(parse_action_units(self.action_units))


@dataclass(frozen=True)
class LongVideo:
    """One recorded video: its frames (a :class:`~.cuts.Listing` of its folder) and its intervals."""

    video: str
    dataset: str
    subject: str
    fps: float
    frames: Listing
    intervals: tuple[Interval, ...] = ()

    @property
    def frame_files(self) -> tuple[str, ...]:
        return self.frames.files

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return self.frames.numbers

    @property
    def error(self) -> str | None:
        """Why the video has no frames (missing folder, no numbered images), or None."""
        return self.frames.error


@dataclass
class LongVideoTable:
    """What a long-video reader returns: videos, quirks met, the sheet and the assumptions made."""

    videos: list[LongVideo] = field(default_factory=list)
    quirks: list[Quirk] = field(default_factory=list)
    sheet: str | None = None
    assumptions: list[str] = field(default_factory=list)

    def intervals(self) -> pd.DataFrame:
        """One row per interval: video, subject, fps, name, onset, apex, offset (nullable integers), kind, AUs,
        emotion, flags."""
        rows = [{"video": v.video, "subject": v.subject, "fps": v.fps, "name": i.name, "onset": i.onset,
                 "apex": i.apex, "offset": i.offset, "kind": i.kind, "action_units": i.action_units,
                 "au_codes": i.au_codes, "emotion": i.emotion, "flags": "; ".join(i.flags)}
                for v in self.videos for i in v.intervals]
        columns = ["video", "subject", "fps", "name", "onset", "apex", "offset", "kind", "action_units",
                   "au_codes", "emotion", "flags"]
        return pd.DataFrame(rows, columns=columns).astype({"onset": "Int64", "apex": "Int64", "offset": "Int64"})


@dataclass(frozen=True)
class AnnotatedInterval:
    """An interval read from a sheet row, with the video it belongs to and the findings so far."""

    video: str
    subject: str
    folder: Path
    interval: Interval
    truth: GroundTruth


def read_interval(row: SheetRow, name: str, kind: str, source: str, emotion: str = "", *,
                  blank_is_quirk: bool = True) -> tuple[Interval, GroundTruth]:
    """The interval of one sheet row (onset, apex, offset checked as :func:`.sheets.read_ground_truth` does, blank
    cells a quirk unless ``blank_is_quirk`` is False)."""
    gt = read_ground_truth(row, name, source, blank_is_quirk=blank_is_quirk)
    gt = replace(gt, findings=gt.findings + check_action_units(row.get("action_units"), name, source, row.row))
    interval = Interval(name, gt.onset, gt.apex, gt.offset, kind, cell_text(row.get("action_units")), emotion,
                        row.row, gt.findings.flags)
    return interval, gt


def assemble(dataset: str, fps: float, annotated: Iterable[AnnotatedInterval], on_disk: dict[str, tuple[str, Path]],
             folders: Folders, source: str) -> tuple[list[LongVideo], list[Quirk]]:
    """Videos from intervals and video folders: each interval checked against its video's frames.

    Parameters
    ----------
    annotated
        Intervals read from the sheet, in sheet order.
    on_disk
        Video id -> (subject, folder) for every video folder found, annotated or not.

    Returns
    -------
    videos
        Sorted by video id; a video named by the sheet but absent on disk keeps
        its intervals and has ``error`` set.
    quirks
        The intervals' findings, then one per annotated video without frames.
    """
    by_video: dict[str, list[AnnotatedInterval]] = {}
    for item in annotated:
        by_video.setdefault(item.video, []).append(item)
    quirks: list[Quirk] = []
    videos = []
    for video in sorted(set(on_disk) | set(by_video)):
        items = by_video.get(video, [])
        subject, folder = on_disk.get(video, (items[0].subject, items[0].folder) if items else ("", Path()))
        listing = folders.frames(folder)
        intervals = []
        for item in items:
            where = check_on_disk(item.truth, listing.numbers, str(folder), item.interval.name, source,
                                  item.interval.row)
            findings = item.truth.findings + where
            quirks.extend(findings.quirks)
            intervals.append(replace(item.interval, flags=findings.flags))
        if items and listing.error is not None:
            quirks.append(Quirk(video, listing.kind, f"{listing.error}; its {len(items)} interval(s) kept", source))
        videos.append(LongVideo(video, dataset, subject, fps, listing, tuple(intervals)))
    return videos, quirks


def check_options(dataset: str, unit: str, kind: str) -> None:
    """Refuse a long-video adapter's ``unit`` or ``kind`` it does not know, before anything is read."""
    if unit not in UNIT_OPTIONS:
        raise ConfigError(f"{dataset}: unit {unit!r} is unknown; use one of {', '.join(UNIT_OPTIONS)}")
    if kind not in CLIP_KINDS:
        raise ConfigError(f"{dataset}: kind {kind!r} is unknown; use one of {', '.join(CLIP_KINDS)}")


def long_video_result(table: LongVideoTable, dataset: str, unit: str, kind: str) -> AdapterResult:
    """A long-video table as an adapter's samples: whole videos (``unit="videos"``) or clips of its intervals
    (``unit="clips"``, those of ``kind``; :func:`check_options` first)."""
    return video_samples(table, dataset) if unit == "videos" else clip_samples(table, dataset, kind)


def interval_table(rows: list[dict]) -> pd.DataFrame:
    """Interval rows as a DataFrame of the store's interval columns (frame numbers nullable integers)."""
    table = pd.DataFrame(rows, columns=[c for c in INTERVAL_COLUMNS if c != "interval"])
    return table.astype({c: "Int64" for c in INTERVAL_INTEGER_COLUMNS})


def video_samples(table: LongVideoTable, dataset: str) -> AdapterResult:
    """Every video of the table as a sample (id = video, ``clip`` = video), with its intervals (``unit="video"``).

    A video without frames (missing folder) is a sample with its error; one
    whose id cannot name a store folder is refused (``bad_sample_id``).
    """
    source = Path(table.sheet).name if table.sheet else ""
    result = AdapterResult(sheet=table.sheet, assumptions=list(table.assumptions), quirks=list(table.quirks),
                           unit=UNIT_OPTIONS["videos"])
    rows = []
    for video in table.videos:
        problem = sample_id_problem(video.video)
        if problem:
            message = f"video id {video.video!r} {problem}, so it cannot name a store folder; video not built"
            result.rejected.append(Quirk(video.video, "bad_sample_id", message, source))
            continue
        result.samples.append(Sample(sample=video.video, dataset=dataset, subject=video.subject, clip=video.video,
                                     fps=float(video.fps), frame_files=video.frame_files,
                                     frame_numbers=video.frame_numbers, error=video.error))
        rows += [{"dataset": dataset, "video": video.video, "name": i.name, "onset": i.onset, "apex": i.apex,
                  "offset": i.offset, "kind": i.kind, "action_units": i.action_units, "au_codes": i.au_codes,
                  "emotion": i.emotion, "flags": "; ".join(i.flags)} for i in video.intervals]
    result.intervals = interval_table(rows)
    return result


def clip_samples(table: LongVideoTable, dataset: str, kind: str) -> AdapterResult:
    """The table's intervals of ``kind`` (``all``: every one) as short clips cut from their videos.

    A clip is its interval's frames onset..offset (onset..apex where the
    offset is missing, as the MEAN code does); sample id = the interval's
    name, subject = its video's.
    """
    source = Path(table.sheet).name if table.sheet else ""
    result = AdapterResult(sheet=table.sheet, assumptions=list(table.assumptions))
    chosen = {i.name for v in table.videos for i in v.intervals if kind == "all" or i.kind == kind}
    # the chosen intervals' quirks and the rows that became no interval; a video's own quirk (a missing
    # folder) is reported by each of its clips
    result.quirks += [q for q in table.quirks if q.sample in chosen or q.sample.startswith("row ")]
    built: set[str] = set()
    for video in table.videos:
        for interval in (i for i in video.intervals if i.name in chosen):
            problem = sample_id_problem(interval.name)
            if problem:
                message = f"sample id {interval.name!r} {problem}, so it cannot name a store folder; row not built"
                result.rejected.append(Quirk(f"row {interval.row}", "bad_sample_id", message, source, interval.row))
                continue
            if interval.name in built:
                message = "sample id repeats an earlier row; row skipped"
                result.quirks.append(Quirk(interval.name, "duplicate_sample", message, source, interval.row))
                continue
            built.add(interval.name)
            last = interval.offset if interval.offset is not None else interval.apex
            frames = cut_frames(video.frames, interval.onset, last, interval.name, source, interval.row)
            result.quirks += frames.findings.quirks
            result.samples.append(Sample(
                sample=interval.name, dataset=dataset, subject=video.subject,
                clip=interval.name.removeprefix(f"{video.subject}_"), fps=float(video.fps), frame_files=frames.files,
                frame_numbers=frames.numbers, onset=interval.onset, apex=interval.apex, offset=interval.offset,
                emotion=interval.emotion, action_units=interval.action_units,
                flags=interval.flags + frames.findings.flags, error=frames.error))
    return result
