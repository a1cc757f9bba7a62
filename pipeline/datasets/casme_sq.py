"""CAS(ME)²: its long videos (``--dataset casme-sq``), or its expressions as short clips (``--option unit=clips``).

Frames are ``<root>/rawpic/s15/15_0101disgustingteeth/img1.jpg`` (subject
folder, then ``<subject number>_<4-digit video code><name>``), 30 fps. The
sheet ``CAS(ME)^2code_final.xlsx`` has no header; its first tab lists the
expressions (subject number, clip name such as ``disgust1_1``, onset, apex,
offset, action units, emotion, type ``micro-expression`` or
``macro-expression``, self-report), its second maps subject numbers to the
subject codes of the folders (``naming rule1``) and its third video names to
video codes (``naming rule2``). An offset of 0 means none. This is how the
MEAN spot-then-recognise code reads it (genbing99/MEAN_Spot-then-recognize,
``load_excel.py``: nine unnamed columns, the clip's video name before its
first ``_``, the video code from the third tab, the subject code from the
second; ``load_images.py``: a video folder's code is the 4 digits after the
``_``; ``load_label.py``: "Take apex if offset is 0"). A short clip of
``casme-sq --option unit=clips`` is its interval's frames onset..offset
(onset..apex where the offset is missing, as MEAN does).

References
----------
F. Qu, S.-J. Wang, W.-J. Yan, H. Li, S. Wu, X. Fu, "CAS(ME)²: A database for
spontaneous macro-expression and micro-expression spotting and recognition",
IEEE Transactions on Affective Computing 9(4), 2018.
https://doi.org/10.1109/TAFFC.2017.2654440
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mepipe.featurestore.errors import SheetError

from .base import AdapterResult, Quirk, register_adapter
from .cuts import Folders
from .long_videos import (MACRO, MICRO, AnnotatedInterval, LongVideoTable, assemble, check_options, long_video_result,
                          read_interval)
from .sheets import SheetRow, cell_text, find_sheet, finding, is_blank, parse_frame, read_raw, require_dir

CASME_SQ_FPS = 30.0
CASME_SQ_SHEETS = ("CAS(ME)^2code_final*.xlsx", "CAS(ME)2code_final*.xlsx", "code_final*.xlsx")
FRAMES_DIR = "rawpic"
DATA_COLUMNS = ("subject", "clip", "onset", "apex", "offset", "action_units", "emotion", "kind", "self_report")
"""The first tab's columns, in order (it has no header)."""
KIND_WORDS = {"micro-expression": MICRO, "macro-expression": MACRO}

_SUBJECT_DIR = re.compile(r"^s?(\d+)$", re.IGNORECASE)
_VIDEO_DIR = re.compile(r"^\d+_(\d{4})")


def _tabs(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """The expressions tab, the subject and video naming tabs (by name, else by position) and the first tab's name."""
    tabs = read_raw(path)
    names = list(tabs)
    if len(names) < 3:
        raise SheetError(f"annotation sheet {path}: {len(names)} tab(s); CAS(ME)² needs the expressions, then the "
                         "subject naming and the video naming tabs")
    rule1 = next((n for n in names if "rule1" in str(n).replace(" ", "").lower()), names[1])
    rule2 = next((n for n in names if "rule2" in str(n).replace(" ", "").lower()), names[2])
    return tabs[names[0]], tabs[rule1], tabs[rule2], str(names[0])


def subject_numbers(rule1: pd.DataFrame) -> dict[int, int]:
    """Sheet subject number (third column) -> the number in its folder code (second column, ``s15`` or 15)."""
    out = {}
    for code, number in zip(rule1.iloc[:, 1], rule1.iloc[:, 2]):
        digits = re.search(r"\d+", cell_text(code))
        key, _ = parse_frame(number)
        if digits and key is not None:
            out[key] = int(digits.group())
    return out


def video_codes(rule2: pd.DataFrame) -> dict[str, str]:
    """Video name (second column, lower case) -> 4-digit video code (first column; Excel may drop its zeros)."""
    return {cell_text(name).lower(): cell_text(code).zfill(4) for code, name in zip(rule2.iloc[:, 0], rule2.iloc[:, 1])
            if cell_text(code).isdigit() and cell_text(name)}


def _video_folders(frames_root: Path) -> dict[tuple[int, str], tuple[str, Path]]:
    """(subject number, video code) -> (subject folder name, video folder) for every video on disk."""
    out = {}
    for subject in sorted(p for p in frames_root.iterdir() if p.is_dir() and _SUBJECT_DIR.match(p.name)):
        number = int(_SUBJECT_DIR.match(subject.name).group(1))
        for video in sorted(p for p in subject.iterdir() if p.is_dir() and _VIDEO_DIR.match(p.name)):
            out[(number, _VIDEO_DIR.match(video.name).group(1))] = (subject.name, video)
    return out


def read_casme_sq(root: Path, annotations: Path | None = None, *, fps: float = CASME_SQ_FPS) -> LongVideoTable:
    """The CAS(ME)² long-video table: videos ``s15_0101``, intervals ``s15_disgust1_1``.

    Parameters
    ----------
    root
        Folder holding ``rawpic`` (or the ``s<n>`` folders) and, unless
        ``annotations`` is given, the sheet.
    annotations
        ``CAS(ME)^2code_final.xlsx``; found in ``root`` when None.
    fps
        Frame rate [30].
    """
    root = require_dir(root, "CAS(ME)²")
    frames_root = root / FRAMES_DIR if (root / FRAMES_DIR).is_dir() else root
    path = find_sheet(root, CASME_SQ_SHEETS, annotations)
    data, rule1, rule2, tab = _tabs(path)
    source = path.name + (f" [{tab}]" if tab else "")
    subjects, videos, folders = subject_numbers(rule1), video_codes(rule2), _video_folders(frames_root)
    table = LongVideoTable(sheet=str(path))
    annotated = []
    for i, values in enumerate(data.itertuples(index=False, name=None)):
        cells = dict(zip(DATA_COLUMNS, values))
        if all(is_blank(v) for v in cells.values()):
            continue
        row = SheetRow(row=i + 1, cells=cells)
        number, _ = parse_frame(cells.get("subject"))
        clip = cell_text(cells.get("clip"))
        video_name = clip.split("_")[0].lower()
        if number not in subjects or video_name not in videos:
            what = (f"subject {cell_text(cells.get('subject'))!r} is not in the subject naming tab"
                    if number not in subjects else f"video {video_name!r} is not in the video naming tab")
            table.quirks.append(Quirk(f"row {row.row}", "incomplete_row", f"{what}; row skipped", source, row.row))
            continue
        key = (subjects[number], videos[video_name])
        subject, folder = folders.get(key, (f"s{key[0]}", frames_root / f"s{key[0]}" / f"{key[0]}_{key[1]}"))
        name = f"{subject}_{clip}"
        kind = KIND_WORDS.get(cell_text(cells.get("kind")).lower(), "")
        if not kind:
            message = f"type {cell_text(cells.get('kind'))!r} is neither micro- nor macro-expression; kind left empty"
            table.quirks.append(Quirk(name, "unknown_type", message, source, row.row))
        missing = parse_frame(cells.get("offset"))[0] == 0
        if missing:
            row = SheetRow(row.row, {k: v for k, v in cells.items() if k != "offset"})
        interval, truth = read_interval(row, name, kind, source, cell_text(cells.get("emotion")))
        if missing:
            truth = replace(truth, findings=truth.findings + finding(
                name, "offset_missing", "offset 0 (the sheet's mark for none); offset set to None", source, row.row))
        annotated.append(AnnotatedInterval(f"{subject}_{key[1]}", subject, folder, interval, truth))
    on_disk = {f"{subject}_{code}": (subject, folder) for (_, code), (subject, folder) in folders.items()}
    table.videos, quirks = assemble("casme-sq", fps, annotated, on_disk, Folders(), source)
    table.quirks += quirks
    table.assumptions.append("casme-sq: sheet frame numbers are the numbers in the img<n>.jpg file names; a "
                             "subject's folder code is the number in the subject naming tab's second column")
    return table


@register_adapter("casme-sq")
def load_casme_sq(root: Path, annotations: Path | None = None, *, unit: str = "videos", kind: str = MICRO,
                  fps: float = CASME_SQ_FPS) -> AdapterResult:
    """CAS(ME)²: its long videos (``s15_0101``, with their intervals), or its expressions as short clips.

    Parameters
    ----------
    root, annotations, fps
        As :func:`read_casme_sq`.
    unit
        ``"videos"`` [default]: a long-video store; ``"clips"``: the
        intervals cut as clips (sample id ``s15_disgust1_1``, subject ``s15``).
    kind
        With ``unit="clips"``: ``"micro"`` [default], ``"macro"`` or ``"all"``.
    """
    check_options("casme-sq", unit, kind)
    return long_video_result(read_casme_sq(root, annotations, fps=float(fps)), "casme-sq", unit, kind)
