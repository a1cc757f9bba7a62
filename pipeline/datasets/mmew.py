"""MMEW micro-expressions, stored in one folder per emotion.

Frames are ``<root>/Micro_Expression/<emotion>/<Filename>/<n>.jpg``; the
sheet ``MMEW_Micro_Exp.xlsx`` has Subject, Filename (``S01-01-001``-style,
unique over the dataset), OnsetFrame, ApexFrame, OffsetFrame, Action Units,
Estimated Emotion and remarks, 90 fps. MEB's ``MMEW`` (tvaranka/meb,
``meb/datasets/datasets.py``) builds the path from the sheet's emotion after
renaming ``others`` to ``repression``, and replaces the apex and offset of
16 rows by index "based on optical flow"; here the clip's folder is found
under whichever emotion folder holds it (a folder named otherwise than the
sheet's emotion is reported), and contradictory apexes and offsets are
flagged by the shared checks instead of replaced.

References
----------
X. Ben, Y. Ren, J. Zhang, S.-J. Wang, K. Kpalma, W. Meng, Y.-J. Liu,
"Video-based facial micro-expression analysis: A survey of datasets,
features and algorithms", IEEE TPAMI 44(9), 2022 (introduces MMEW).
https://doi.org/10.1109/TPAMI.2021.3067464
"""
from __future__ import annotations

from pathlib import Path

from .base import AdapterResult, Quirk, register_adapter
from .sheets import (
    SheetColumns, SheetRow, cell_text, collect_samples, find_sheet, normalise_subject, read_sheet, require_dir,
    row_sample,
)

MMEW_FPS = 90.0
MMEW_SHEETS = ("MMEW_Micro_Exp*.xlsx", "MMEW_Micro_Exp*.csv")
FRAMES_DIR = "Micro_Expression"
SUBJECT_WIDTH = 2


def clip_folders(frames_root: Path) -> dict[str, Path]:
    """Clip name -> its folder, for every ``<emotion>/<clip>`` folder under ``frames_root``."""
    return {clip.name: clip for emotion in sorted(p for p in frames_root.iterdir() if p.is_dir())
            for clip in sorted(p for p in emotion.iterdir() if p.is_dir())}


@register_adapter("mmew")
def load_mmew(root: Path, annotations: Path | None = None, *, fps: float = MMEW_FPS) -> AdapterResult:
    """MMEW micro-expression clips: sample id = Filename, subject ``"01"`` for ``S01``.

    Parameters
    ----------
    root
        Folder holding ``Micro_Expression`` (or the emotion folders
        themselves) and, unless ``annotations`` is given, the sheet.
    annotations
        ``MMEW_Micro_Exp.xlsx``; found in ``root`` when None.
    fps
        Frame rate [90].
    """
    root = require_dir(root, "MMEW")
    frames_root = root / FRAMES_DIR if (root / FRAMES_DIR).is_dir() else root
    sheet = read_sheet(find_sheet(root, MMEW_SHEETS, annotations), SheetColumns(), header_key="Subject")
    folders = clip_folders(frames_root)
    moved: list[Quirk] = []

    def build(row: SheetRow, key: str):
        emotion = cell_text(row.get("emotion"))
        folder = folders.get(key, frames_root / emotion / key)
        if folder.parent.name.lower() != emotion.lower():
            moved.append(Quirk(key, "folder_emotion", f"sheet emotion {emotion!r} but frames in folder "
                               f"{folder.parent.name!r}; clip read from there", sheet.source, row.row))
        return row_sample(row, sheet.source, key, dataset="mmew", fps=fps, folder=folder, clip=key,
                          subject=normalise_subject(row.get("subject"), SUBJECT_WIDTH))

    result = collect_samples(sheet, lambda row: cell_text(row.get("clip")) or None, build)
    result.quirks.extend(moved)
    result.assumptions.append("mmew: a clip's folder is <any emotion folder>/<Filename>, since Filename is unique; "
                              "frame numbers are the numbers in the file names")
    return result
