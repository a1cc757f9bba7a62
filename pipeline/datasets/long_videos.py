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
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from .action_units import au_codes, parse_action_units
from .base import Quirk
from .cuts import Folders, Listing
from .sheets import GroundTruth, SheetRow, cell_text, check_action_units, check_on_disk, read_ground_truth

MICRO, MACRO = "micro", "macro"
KINDS = (MICRO, MACRO)
"""Kinds of annotated interval; ``""`` is an interval whose kind the sheet does not say."""


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


def read_interval(row: SheetRow, name: str, kind: str, source: str, emotion: str = "") -> tuple[Interval, GroundTruth]:
    """The interval of one sheet row (onset, apex, offset checked as :func:`.sheets.read_ground_truth` does)."""
    gt = read_ground_truth(row, name, source)
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
