"""SAMM Long Videos (``--dataset samm-lv``) and the synthetic demo written in its layout (``--dataset demo-lv``).

Frames are ``<root>/SAMM_longvideos/<subject>_<n>/`` JPEGs whose names end in
the frame number; the sheet ``SAMM_LongVideos_V2_Release.xlsx`` has nine
rows of preamble and its header on row 10 (Subject, Filename, Inducement
Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes), found by
content here. A Filename ``<subject>_<n>_<k>`` is interval ``k`` of video
``<subject>_<n>``; Type is ``Micro - 1/2`` or ``Macro``; frame numbers are
those of the file names; 200 fps. Emotions are not in this sheet: given the
SAMM micro-expression sheet, each interval takes the Estimated Emotion of
the row with its Filename. This follows the MEAN spot-then-recognise loader
(genbing99/MEAN_Spot-then-recognize, ``load_excel.py``), which skips the
first ten rows, splits Filename the same way and merges the SAMM sheet on
Filename and Type; its ``load_label.py`` ignores intervals with onset 0 (very
long ones), which here are kept (and flagged when frame 0 is not on disk).

References
----------
C. H. Yap, C. Kendrick, M. H. Yap, "SAMM Long Videos: A spontaneous facial
micro- and macro-expressions dataset", IEEE FG 2020.
https://doi.org/10.1109/FG47880.2020.00029
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .base import AdapterResult, Quirk, register_adapter
from .cuts import Folders
from .long_videos import (MACRO, MICRO, AnnotatedInterval, LongVideoTable, assemble, check_options, long_video_result,
                          read_interval)
from .samm import SAMM_SHEETS, SUBJECT_WIDTH
from .sheets import SheetColumns, cell_text, find_sheet, normalise_subject, read_sheet, require_dir

SAMM_LV_FPS = 200.0
SAMM_LV_SHEETS = ("SAMM_LongVideos*.xlsx", "SAMM_LongVideos*.csv")
FRAMES_DIR = "SAMM_longvideos"

_VIDEO_DIR = re.compile(r"^\d{3}_\d+$")


@dataclass(frozen=True)
class SammLongColumns:
    """The long-video sheet's headers (Type instead of SAMM's Micro; no emotion)."""

    subject: tuple[str, ...] = ("Subject",)
    clip: tuple[str, ...] = ("Filename",)
    onset: tuple[str, ...] = ("Onset", "Onset Frame")
    apex: tuple[str, ...] = ("Apex", "Apex Frame")
    offset: tuple[str, ...] = ("Offset", "Offset Frame")
    kind: tuple[str, ...] = ("Type",)
    action_units: tuple[str, ...] = ("Action Units",)
    required: tuple[str, ...] = ("subject", "clip", "onset", "offset", "kind")


def kind_of(cell: object) -> str:
    """``micro`` for ``Micro - 1/2``, ``macro`` for ``Macro``, ``""`` for anything else."""
    text = cell_text(cell).lower()
    return MICRO if text.startswith(MICRO) else MACRO if text.startswith(MACRO) else ""


def samm_emotions(path: Path) -> dict[str, str]:
    """Filename -> Estimated Emotion of the SAMM micro-expression sheet."""
    sheet = read_sheet(path, SheetColumns(), header_key="Subject")
    return {cell_text(r.get("clip")): cell_text(r.get("emotion")) for r in sheet.rows if cell_text(r.get("clip"))}


def read_samm_lv(root: Path, annotations: Path | None = None, *, samm_sheet: Path | None = None,
                 fps: float = SAMM_LV_FPS, dataset: str = "samm-lv") -> LongVideoTable:
    """The SAMM Long Videos table: videos ``006_1``, intervals named by Filename (``006_1_2``).

    Parameters
    ----------
    root
        Folder holding ``SAMM_longvideos`` (or the video folders) and, unless
        ``annotations`` is given, the sheet.
    annotations
        ``SAMM_LongVideos_V2_Release.xlsx``; found in ``root`` when None.
    samm_sheet
        ``SAMM_Micro_FACS_Codes_v2.xlsx``: when given, micro intervals take their emotion from it.
    fps
        Frame rate [200].
    dataset
        The dataset name its videos get (``demo-lv`` for the demo in this layout).
    """
    root = require_dir(root, "SAMM Long Videos")
    frames_root = root / FRAMES_DIR if (root / FRAMES_DIR).is_dir() else root
    sheet = read_sheet(find_sheet(root, SAMM_LV_SHEETS, annotations), SammLongColumns(), header_key="Subject")
    emotions = samm_emotions(samm_sheet) if samm_sheet is not None else {}
    table = LongVideoTable(sheet=str(sheet.path))
    annotated = []
    for row in sheet.rows:
        name = cell_text(row.get("clip"))
        parts = name.rsplit("_", 1)
        if len(parts) != 2 or not _VIDEO_DIR.match(parts[0]):
            message = f"Filename {name!r} is not <subject>_<video>_<n>; row skipped"
            table.quirks.append(Quirk(name or f"row {row.row}", "incomplete_row", message, sheet.source, row.row))
            continue
        kind = kind_of(row.get("kind"))
        if not kind:
            message = f"Type {cell_text(row.get('kind'))!r} is neither Micro nor Macro; kind left empty"
            table.quirks.append(Quirk(name, "unknown_type", message, sheet.source, row.row))
        if samm_sheet is not None and kind == MICRO and name not in emotions:
            message = f"no row {name!r} in {Path(samm_sheet).name}; emotion left empty"
            table.quirks.append(Quirk(name, "no_emotion_label", message, sheet.source, row.row))
        interval, truth = read_interval(row, name, kind, sheet.source, emotions.get(name, "") if kind == MICRO else "")
        subject = normalise_subject(row.get("subject"), SUBJECT_WIDTH)
        annotated.append(AnnotatedInterval(parts[0], subject, frames_root / parts[0], interval, truth))
    on_disk = {p.name: (p.name.split("_")[0], p) for p in frames_root.iterdir()
               if p.is_dir() and _VIDEO_DIR.match(p.name)}
    videos, quirks = assemble(dataset, fps, annotated, on_disk, Folders(), sheet.source)
    table.videos, table.quirks = videos, table.quirks + quirks
    table.assumptions.append(f"{dataset}: sheet frame numbers are the numbers at the end of the frame file names")
    return table


@register_adapter("samm-lv")
def load_samm_lv(root: Path, annotations: Path | None = None, *, unit: str = "videos", kind: str = MICRO,
                 samm_sheet: Path | None = None, fps: float = SAMM_LV_FPS) -> AdapterResult:
    """SAMM Long Videos: its videos (``006_1``, with their intervals), or its intervals as short clips.

    Parameters
    ----------
    root, annotations, fps
        As :func:`read_samm_lv`.
    unit
        ``"videos"`` [default]: a long-video store; ``"clips"``: the
        intervals cut as clips (sample id = Filename ``006_1_2``).
    kind
        With ``unit="clips"``: ``"micro"`` [default], ``"macro"`` or ``"all"``.
    samm_sheet
        The SAMM micro-expression sheet, for the micro intervals' emotions;
        found in ``root`` (``SAMM_Micro_FACS_Codes*.xlsx``) when not given.
    """
    return _samm_layout(root, annotations, "samm-lv", unit, kind, samm_sheet, fps)


@register_adapter("demo-lv")
def load_demo_lv(root: Path, annotations: Path | None = None, *, unit: str = "videos", kind: str = MICRO,
                 samm_sheet: Path | None = None, fps: float = SAMM_LV_FPS) -> AdapterResult:
    """The synthetic long-video demo, written in the SAMM Long Videos layout: read as ``samm-lv`` is."""
    return _samm_layout(root, annotations, "demo-lv", unit, kind, samm_sheet, fps)


def _samm_layout(root: Path, annotations: Path | None, dataset: str, unit: str, kind: str, samm_sheet: Path | None,
                 fps: float) -> AdapterResult:
    check_options(dataset, unit, kind)
    root = require_dir(root, dataset)
    if samm_sheet is None:
        found = sorted(p for pattern in SAMM_SHEETS for p in root.glob(pattern))
        samm_sheet = found[0] if found else None
    table = read_samm_lv(root, annotations, samm_sheet=Path(samm_sheet) if samm_sheet else None, fps=float(fps),
                         dataset=dataset)
    return long_video_result(table, dataset, unit, kind)
