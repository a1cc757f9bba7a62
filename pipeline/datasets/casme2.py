"""CASME II, raw or cropped release.

Raw frames are ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` and cropped
ones ``Cropped/sub01/EP02_01f/reg_img46.jpg``; in both the number in the file
name is the frame number the sheet ``CASME2-coding-*.xlsx`` refers to. Colour,
200 fps. The sheet writes ``/`` where a clip has no apex.

References
----------
Yan, W.-J., Li, X., Wang, S.-J., Zhao, G., Liu, Y.-J., Chen, Y.-H., & Fu, X.
(2014). CASME II: An improved spontaneous micro-expression database and the
baseline evaluation. PLoS ONE, 9(1), e86041.
https://doi.org/10.1371/journal.pone.0086041
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from mepipe.featurestore.errors import ConfigError

from .base import AdapterResult, register_adapter
from .sheets import SheetColumns, SheetLayout, find_sheet, read_sheet, require_dir, sheet_samples

log = logging.getLogger(__name__)

CASME2_FPS = 200.0
CASME2_SHEETS = ("CASME2-coding-*.xlsx", "CASME2-coding-*.csv")
RELEASE_DIRS = {"raw": "CASME2_RAW_selected", "cropped": "Cropped"}
CROPPED_PREFIX = "reg_"
SUBJECT_WIDTH = 2

Release = Literal["raw", "cropped"]


def _subject_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("sub*") if p.is_dir())


def _looks_cropped(frames_root: Path) -> bool:
    """Whether a folder of ``subXX`` folders holds cropped frames, judged by its first clip (``reg_img*``)."""
    for subject in _subject_dirs(frames_root):
        for clip in sorted(p for p in subject.iterdir() if p.is_dir()):
            return any(f.name.startswith(CROPPED_PREFIX) for f in clip.iterdir())
    return False


def detect_release(root: Path, release: Release | None = None) -> tuple[Release, Path]:
    """Which release is under ``root`` and the folder holding its ``subXX`` folders.

    ``root`` may be the folder containing ``CASME2_RAW_selected`` and/or
    ``Cropped`` (raw wins when both are there and ``release`` is None), or one
    of those folders itself.
    """
    if release is not None and release not in RELEASE_DIRS:
        raise ConfigError(f"CASME II release {release!r} is unknown; use one of {', '.join(RELEASE_DIRS)}")
    candidates = [release] if release else list(RELEASE_DIRS)
    for name in candidates:
        if (root / RELEASE_DIRS[name]).is_dir():
            if release is None and name == "raw" and (root / RELEASE_DIRS["cropped"]).is_dir():
                log.info("%s holds both CASME II releases; using raw (pass release='cropped' for the other)", root)
            return name, root / RELEASE_DIRS[name]
    if _subject_dirs(root):
        found: Release = "cropped" if _looks_cropped(root) else "raw"
        if release is not None and release != found:
            raise ConfigError(f"{root} holds the {found} CASME II release, not the {release} one asked for")
        return found, root
    wanted = " or ".join(RELEASE_DIRS[n] for n in candidates)
    raise FileNotFoundError(f"no CASME II frames under {root}: expected {wanted}/subXX/... or subXX folders")


@register_adapter("casme2")
def load_casme2(
    root: Path,
    annotations: Path | None = None,
    *,
    release: Release | None = None,
    fps: float = CASME2_FPS,
    dataset: str = "casme2",
) -> AdapterResult:
    """CASME II clips: sample id ``"sub01_EP02_01f"``, subject ``"01"``.

    Parameters
    ----------
    root
        Folder holding ``CASME2_RAW_selected`` and/or ``Cropped`` (or one of
        them) and, unless ``annotations`` is given, the sheet.
    annotations
        ``CASME2-coding-*.xlsx``; found in ``root`` when None.
    release
        ``"raw"`` or ``"cropped"``; detected from ``root`` when None.
    fps
        Frame rate [200].
    dataset
        The dataset name written into every sample.
    """
    root = require_dir(root, "CASME II")
    _, frames_root = detect_release(root, release)
    sheet = read_sheet(find_sheet(root, CASME2_SHEETS, annotations), SheetColumns(), header_key="Subject")
    layout = SheetLayout(
        dataset=dataset,
        fps=fps,
        subject_width=SUBJECT_WIDTH,
        sample_id=lambda subject, clip: f"sub{subject}_{clip}",
        folder=lambda subject, clip: frames_root / f"sub{subject}" / clip,
    )
    return sheet_samples(sheet, layout)


@register_adapter("demo-casme2")
def load_demo_casme2(root: Path, annotations: Path | None = None, *, fps: float = CASME2_FPS) -> AdapterResult:
    """The synthetic demo in the CASME II raw layout (``mepipe.pipeline.demo``): read as CASME II, named ``demo-casme2``."""
    return load_casme2(root, annotations, release="raw", fps=fps, dataset="demo-casme2")
