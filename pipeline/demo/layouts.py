"""Where a demo's files go and what its annotations look like, per dataset layout.

Four layouts, each the one its real dataset uses, so the real adapters
read the demos (``mepipe build --dataset demo``, ``demo-casme2``, ``demo-smic``,
``demo-casme3``):

``samm``
    ``<subject>/<subject>_<class code>_<clip>/<subject>_<frame:05d>.jpg``,
    greyscale; sheet ``SAMM_Micro_FACS_Codes_demo.xlsx`` in SAMM's format
    (preamble, header row, subjects written as 6 or "006").
``casme2``
    ``CASME2_RAW_selected/sub<ss>/EP<code:02d>_<clip:02d>/img<frame>.jpg``
    (the raw release: a clip folder holds onset..offset), colour; sheet
    ``CASME2-coding-demo.xlsx`` in the 2019 sheet's format (first row the
    header, two unnamed blank columns, subjects as numbers, ``/`` for a
    missing apex).
``smic``
    ``HS/s<n>/micro/<label>/s<n>_<po|ne|sur>_<clip:02d>/image<frame:06d>.bmp``,
    colour; no sheet (labels are the folders, the clip spans onset..offset,
    there is no apex).
``casme3``
    ``spNO.<n>/<letter>/color/<frame>.jpg``: CAS(ME)³ part A, one folder per
    recorded video holding several expressions (clip ``k`` of every class
    in video ``a``, ``b``, ...; each class's frames in their own block of
    numbers), colour; sheet ``cas(me)3_part_A_ME_label_JpgIndex_demo.xlsx``
    (tab ``label``: Subject, Filename, Onset, Apex, Offset, AU, Objective
    class, emotion), a clip being onset..offset of its video.
"""
from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import openpyxl
from openpyxl.writer.excel import ExcelWriter

SAMM_SHEET = "SAMM_Micro_FACS_Codes_demo.xlsx"
CASME2_SHEET = "CASME2-coding-demo.xlsx"
CASME3_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_demo.xlsx"
ANNOTATIONS = {"samm": SAMM_SHEET, "casme2": CASME2_SHEET, "smic": None, "casme3": CASME3_SHEET}
"""The annotation file each layout writes (None: SMIC has none)."""

TOP_FOLDERS = {"casme2": "CASME2_RAW_selected", "smic": "HS"}
"""The folder holding all frames, for layouts that have one (SAMM's subject folders sit in the root)."""

SMIC_ABBREVIATIONS = {"positive": "po", "negative": "ne", "surprise": "sur"}
"""SMIC's clip-name abbreviation of each label (``s1_ne_01``)."""

DATASET_NAMES = {"samm": "demo", "casme2": "demo-casme2", "smic": "demo-smic", "casme3": "demo-casme3"}
"""The dataset name (adapter name, and ``dataset`` in a store's sample table) of each layout's demo."""

SAMM_COLUMNS = (
    "Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
    "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes",
)
SAMM_PREAMBLE = (
    ("SAMM Dataset - Master FACS Codes (mepipe synthetic demo)", None, None, None,
     "(Synthetic frames made by mepipe from two public-domain portraits. Not SAMM data.)"),
    (),
    ("Ground truth timing, class and head motion of every clip: demo_truth.csv",),
    (),
    ("Symbol Key:",),
    ('"/" = or',),
    (),
)
CASME2_COLUMNS = (
    "Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
    "Action Units", "Estimated Emotion", "Objective Classes",
)
"""The 2019 CASME II sheet's header, blank columns included."""
CASME3_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")
"""The CAS(ME)³ part A sheet's header (tab ``label``)."""

CLIP_FOLDER_LAYOUTS = ("casme2", "smic")
"""Layouts whose clip folders hold onset..offset only (SAMM's hold more frames, CAS(ME)³'s a whole video)."""

VIDEO_BLOCK = 200
"""CAS(ME)³ layout: frame numbers of the k-th class's clips in a video start at ``k * VIDEO_BLOCK`` plus the
drawn first frame, so the clips sharing a video never overlap."""

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DOC_TIME = datetime(2000, 1, 1)


def subject_id(layout: str, number: int) -> str:
    """Subject ``number`` as the layout writes it in folders: ``"001"``, ``"01"`` (folder ``sub01``), ``"s1"``,
    ``"spNO.1"``."""
    return {"samm": f"{number:03d}", "casme2": f"{number:02d}", "smic": f"s{number}", "casme3": f"spNO.{number}"}[
        layout]


def clip_name(layout: str, subject: str, emotion: str, code: int, clip_number: int) -> str:
    """A clip's name: ``001_1_2`` (SAMM), ``EP01_02`` (CASME II), ``s1_ne_02`` (SMIC), the video letter ``b``
    (CAS(ME)³, where every class's clip ``k`` shares video ``k``)."""
    if layout == "samm":
        return f"{subject}_{code}_{clip_number}"
    if layout == "casme2":
        return f"EP{code:02d}_{clip_number:02d}"
    if layout == "casme3":
        return chr(ord("a") + clip_number - 1)
    return f"{subject}_{SMIC_ABBREVIATIONS[emotion]}_{clip_number:02d}"


def clip_key(layout: str, subject: str, clip: str, emotion: str) -> str:
    """A name unique to one clip of a demo: the clip name, ``sub01/EP01_01`` in CASME II, whose clip names
    repeat across subjects, or ``spNO.1/a/happy`` in CAS(ME)³, whose videos hold one clip of each class
    (``erratum_clip``, ``composite_skip`` and :func:`~.synth.true_landmarks` take these)."""
    if layout == "casme2":
        return f"sub{subject}/{clip}"
    if layout == "casme3":
        return f"{subject}/{clip}/{emotion}"
    return clip


def clip_folder(layout: str, root: Path, subject: str, emotion: str, clip: str) -> Path:
    """The folder of one clip's frames (CAS(ME)³: of its video, shared with the other classes' clips)."""
    if layout == "samm":
        return root / subject / clip
    if layout == "casme2":
        return root / TOP_FOLDERS["casme2"] / f"sub{subject}" / clip
    if layout == "casme3":
        return root / subject / clip / "color"
    return root / TOP_FOLDERS["smic"] / subject / "micro" / emotion / clip


def frame_file(layout: str, subject: str, number: int) -> str:
    """A frame's file name; the number in it is the frame number the annotations use."""
    return {"samm": f"{subject}_{number:05d}.jpg", "casme2": f"img{number}.jpg", "smic": f"image{number:06d}.bmp",
            "casme3": f"{number}.jpg"}[layout]


def encode_frame(layout: str, frame: np.ndarray, quality: int) -> bytes:
    """A frame's file bytes: JPEG at ``quality`` (SAMM, CASME II, CAS(ME)³) or uncompressed BMP (SMIC)."""
    if layout == "smic":
        ok, data = cv2.imencode(".bmp", frame)
    else:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"encoding a {layout} demo frame failed")
    return data.tobytes()


def top_level(layout: str, root: Path, subjects: list[str]) -> list[Path]:
    """The folders a demo of ``layout`` with these subjects wrote directly under ``root``."""
    if layout in ("samm", "casme3"):
        return [root / s for s in subjects]
    return [root / TOP_FOLDERS[layout]]


def deterministic_zip(data: bytes) -> bytes:
    """The same zip archive with every member's timestamp fixed, so equal content gives equal bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def write_workbook(path: Path, title: str, rows: list[list]) -> None:
    """An .xlsx with one sheet of ``rows``, byte-identical for equal rows.

    Text cells get the text number format, so ``"006"`` stays text as in
    the real sheets. ``ExcelWriter`` rather than ``book.save()``, which
    stamps the current time into docProps.
    """
    book = openpyxl.Workbook()
    book.properties.created = book.properties.modified = FIXED_DOC_TIME
    book.properties.creator = "mepipe"
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.number_format = "@"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(book, archive).write_data()
    Path(path).write_bytes(deterministic_zip(buffer.getvalue()))
