"""SAMM and the synthetic demo dataset written in its layout.

Frames are ``<root>/<subject 3 digits>/<Filename>/<subject>_<frame 5 digits>.jpg``
(greyscale, 200 fps); the sheet ``SAMM_Micro_FACS_Codes*.xlsx`` has a free-text
preamble above a header row starting with ``Subject``. A clip folder may hold
frames beyond onset..offset, so frames are mapped by the number in their name.

References
----------
Davison, A. K., Lansley, C., Costen, N., Tan, K., & Yap, M. H. (2018). SAMM: A
spontaneous micro-facial movement dataset. IEEE Transactions on Affective
Computing, 9(1), 116-129. https://doi.org/10.1109/TAFFC.2016.2573832
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from .base import AdapterResult, register_adapter
from .sheets import SheetColumns, SheetLayout, find_sheet, read_sheet, require_dir, sheet_samples

SAMM_FPS = 200.0
SAMM_SHEETS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM_Micro_FACS_Codes*.csv")
DEMO_SHEETS = ("SAMM_Micro_FACS_Codes_demo.xlsx",)
SUBJECT_WIDTH = 3

_SUBJECT_DIR = re.compile(r"^\d{3}$")


def _frames_root(root: Path) -> Path:
    """``root`` itself, or ``root/SAMM`` when the subject folders live there."""
    nested = root / "SAMM"
    has_subjects = any(p.is_dir() and _SUBJECT_DIR.match(p.name) for p in root.iterdir())
    return nested if nested.is_dir() and not has_subjects else root


def load_samm_layout(
    root: Path, annotations: Path | None, *, dataset: str, fps: float, patterns: Sequence[str]
) -> AdapterResult:
    """Samples of any dataset stored in the SAMM layout with a SAMM-format sheet.

    Parameters
    ----------
    root
        Folder holding the subject folders (or a ``SAMM`` folder with them)
        and, unless ``annotations`` is given, the sheet.
    annotations
        The sheet; found in ``root`` by ``patterns`` when None.
    dataset
        The dataset name written into every sample.
    fps
        Frame rate of the recordings.
    patterns
        Glob patterns for the sheet in ``root``.
    """
    root = require_dir(root, dataset)
    sheet = read_sheet(find_sheet(root, patterns, annotations), SheetColumns(), header_key="Subject")
    frames_root = _frames_root(root)
    layout = SheetLayout(
        dataset=dataset,
        fps=fps,
        subject_width=SUBJECT_WIDTH,
        sample_id=lambda subject, clip: clip,
        folder=lambda subject, clip: frames_root / subject / clip,
    )
    return sheet_samples(sheet, layout)


@register_adapter("samm")
def load_samm(root: Path, annotations: Path | None = None, *, fps: float = SAMM_FPS) -> AdapterResult:
    """SAMM clips: sample id = Filename (``"006_1_2"``), subject = 3 digits.

    Parameters
    ----------
    root
        The SAMM folder (subject folders ``006``, ``007``, ... or ``SAMM/006``).
    annotations
        ``SAMM_Micro_FACS_Codes_v2.xlsx``; found in ``root`` when None.
    fps
        Frame rate [200].

    Returns
    -------
    AdapterResult
        Raw labels: ``emotion`` = Estimated Emotion, ``objective_class`` =
        Objective Classes, ``action_units`` = Action Units, all as text.
    """
    return load_samm_layout(root, annotations, dataset="samm", fps=fps, patterns=SAMM_SHEETS)


@register_adapter("demo")
def load_demo(root: Path, annotations: Path | None = None, *, fps: float = SAMM_FPS) -> AdapterResult:
    """The synthetic demo dataset: SAMM layout, sheet ``SAMM_Micro_FACS_Codes_demo.xlsx``.

    It lets every command run on a machine without licensed data; only the
    dataset name (``"demo"``) and the sheet name differ from SAMM.
    """
    return load_samm_layout(root, annotations, dataset="demo", fps=fps, patterns=DEMO_SHEETS)
