"""4DME micro-expressions: the grey-level texture frames of each clip.

Frames are ``<root>/gray_micro/<sub_ID>/<fold_name>/`` (``gray_micro_crop``
for the cropped release), numbered in their file names; the sheet
``4DME_Labelling_Micro_release v1.xlsx`` has sub_ID, fold_name, Emotion,
Onset, Apex, Offset, AUs and one column per AU and per emotion, 60 fps
(the 4D and texture recordings). MEB's ``Fourd`` (tvaranka/meb,
``meb/datasets/datasets.py``) reads the same columns and paths; it drops AUs
marked ``(k)`` from a clip's AUs, as :mod:`.action_units` does, and swaps
the AU columns of rows 144 and 145 by index, an erratum this adapter cannot
place without the sheet (the AU strings, read here, are not touched by it).
Emotions can be combinations such as ``Surprise+Positive``; they are kept
as written (label schemes decide).

References
----------
X. Li, S. Cheng, Y. Li, M. Behzad, J. Shen, S. Zafeiriou, M. Pantic,
G. Zhao, "4DME: A spontaneous 4D micro-expression dataset with
multimodalities", IEEE Transactions on Affective Computing 14(4), 2023.
https://doi.org/10.1109/TAFFC.2022.3182342
"""
from __future__ import annotations

from pathlib import Path

from .base import AdapterResult, register_adapter
from .sheets import SheetColumns, SheetLayout, find_sheet, read_sheet, require_dir, sheet_samples

FOURDME_FPS = 60.0
FOURDME_SHEETS = ("4DME_Labelling_Micro_release*.xlsx", "4DME_Labelling_Micro*.csv")
FRAMES_DIR = "gray_micro"
COLUMNS = SheetColumns(subject=("sub_ID", "Subject"), clip=("fold_name", "Filename"),
                       action_units=("AUs", "Action Units"), emotion=("Emotion", "Estimated Emotion"))
"""The 4DME sheet's headers (its per-AU columns ``AU1``, ``AU2``... are not read: the AU string is the source)."""


def sample_name(subject: str, fold: str) -> str:
    """``fold`` when it already starts with ``<subject>_``, else ``<subject>_<fold>``."""
    return fold if fold.startswith(f"{subject}_") else f"{subject}_{fold}"


@register_adapter("4dme")
def load_4dme(
    root: Path,
    annotations: Path | None = None,
    *,
    frames_dir: str = FRAMES_DIR,
    fps: float = FOURDME_FPS,
) -> AdapterResult:
    """4DME clips: sample id ``<sub_ID>_<fold_name>``, subject as the sheet writes sub_ID.

    Parameters
    ----------
    root
        Folder holding ``frames_dir`` (or the subject folders themselves) and,
        unless ``annotations`` is given, the sheet.
    annotations
        ``4DME_Labelling_Micro_release v1.xlsx``; found in ``root`` when None.
    frames_dir
        Folder of ``root`` with the subject folders [``gray_micro``; ``gray_micro_crop`` for the cropped frames].
    fps
        Frame rate [60].
    """
    root = require_dir(root, "4DME")
    frames_root = root / frames_dir if (root / frames_dir).is_dir() else root
    sheet = read_sheet(find_sheet(root, FOURDME_SHEETS, annotations), COLUMNS, header_key="sub_ID")
    layout = SheetLayout(dataset="4dme", fps=fps, subject_width=None, sample_id=sample_name,
                         folder=lambda subject, fold: frames_root / subject / fold)
    result = sheet_samples(sheet, layout)
    result.assumptions += [
        "4dme: sheet frame numbers are the numbers in the frame file names of <sub_ID>/<fold_name>",
        "4dme: AUs marked (k) are not counted as shown (MEB's Fourd drops them); the AU cell is kept as written",
    ]
    return result
