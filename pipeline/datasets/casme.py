"""CASME, the predecessor of CASME II: same layout and sheet style, 60 fps.

Frames are ``<root>/[<release folder>/]sub01/EP01_5/<name><frame>.jpg``. The
sheet's column names vary between releases (``OnsetFrame``, ``Onset``,
``OnsetF``, ``ApexF1``...), so every alias in :class:`~.sheets.SheetColumns`
is accepted.

References
----------
Yan, W.-J., Wu, Q., Liu, Y.-J., Wang, S.-J., & Fu, X. (2013). CASME database:
A dataset of spontaneous micro-expressions collected from neutralized faces.
IEEE FG 2013. https://doi.org/10.1109/FG.2013.6553799
"""
from __future__ import annotations

from pathlib import Path

from mepipe.featurestore.errors import ConfigError

from .base import AdapterResult, register_adapter
from .sheets import SheetColumns, SheetLayout, find_sheet, read_sheet, require_dir, sheet_samples

CASME_FPS = 60.0
CASME_SHEETS = ("CASME-coding*.xlsx", "CASME_coding*.xlsx", "CASME-coding*.csv", "CASME_coding*.csv")
SUBJECT_WIDTH = 2


def _frames_root(root: Path, frames_dir: str | None) -> Path:
    """The folder holding the ``subXX`` folders: ``root``, ``root/frames_dir``, or the one child that has them."""
    if frames_dir is not None:
        path = root / frames_dir
        if not path.is_dir():
            raise FileNotFoundError(f"CASME frames folder {path} does not exist")
        return path
    if any(p.is_dir() for p in root.glob("sub*")):
        return root
    holders = sorted(p for p in root.iterdir() if p.is_dir() and any(q.is_dir() for q in p.glob("sub*")))
    if len(holders) == 1:
        return holders[0]
    if not holders:
        raise FileNotFoundError(f"no CASME subXX folders in {root} or its subfolders")
    names = ", ".join(p.name for p in holders)
    raise ConfigError(f"several CASME frame folders in {root} ({names}); choose one with frames_dir=NAME")


@register_adapter("casme")
def load_casme(
    root: Path,
    annotations: Path | None = None,
    *,
    frames_dir: str | None = None,
    fps: float = CASME_FPS,
) -> AdapterResult:
    """CASME clips: sample id ``"sub01_EP01_5"``, subject ``"01"``.

    Parameters
    ----------
    root
        Folder holding the ``subXX`` folders (directly or in one subfolder)
        and, unless ``annotations`` is given, the sheet.
    annotations
        The coding sheet (``CASME-coding*.xlsx``); found in ``root`` when None.
    frames_dir
        Subfolder of ``root`` holding the ``subXX`` folders, when several do.
    fps
        Frame rate [60].
    """
    root = require_dir(root, "CASME")
    frames_root = _frames_root(root, frames_dir)
    sheet = read_sheet(find_sheet(root, CASME_SHEETS, annotations), SheetColumns(), header_key="Subject")
    layout = SheetLayout(
        dataset="casme",
        fps=fps,
        subject_width=SUBJECT_WIDTH,
        sample_id=lambda subject, clip: f"sub{subject}_{clip}",
        folder=lambda subject, clip: frames_root / f"sub{subject}" / clip,
    )
    return sheet_samples(sheet, layout)
