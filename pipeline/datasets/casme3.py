"""CAS(ME)³ part A micro-expressions: clips cut from the recorded videos by the sheet's frame numbers.

The release keeps one folder of frames per recorded video,
``<root>/<Subject>/<Filename>/color/<n>.jpg`` (``depth/`` beside it), and the
sheet ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (tab ``label``: Subject
``spNO.1``, Filename a letter, Onset, Apex, Offset, AU, Objective class,
emotion) gives every micro-expression as frame numbers of that folder, 30 fps.
A Filename repeats within a subject, once per expression in that video, so a
sample is (Subject, Filename, Onset): ``spNO.1_a_355``, and its frames are
Onset..Offset of the video. MEB's ``Casme3A`` (tvaranka/meb,
``meb/datasets/datasets.py``) reads the same columns; it numbers repeated
Filenames ``a``, ``a2``, ``a3`` by row order and patches five rows by index
(an apex, two onsets, three offsets); here such rows are flagged by the
shared checks instead (apex outside onset..offset, onset after offset,
frames not on disk), whatever order the sheet is in.

Quirks handled: subject folders whose case differs from the sheet's
(``spNo.1`` on disk for ``spNO.1``), AU cells with commas (``4,7``, also the
full-width ``，``), clips whose frames are missing from the video folder.

References
----------
J. Li, Z. Dong, S. Lu, S.-J. Wang, W.-J. Yan, Y. Ma, Y. Liu, C. Huang, X. Fu,
"CAS(ME)³: A third generation facial spontaneous micro-expression database
with depth information and high ecological validity", IEEE TPAMI 45(3), 2023.
https://doi.org/10.1109/TPAMI.2022.3174895
"""
from __future__ import annotations

import re
from pathlib import Path

from mepipe.featurestore.errors import ConfigError

from .base import AdapterResult, Quirk, register_adapter
from .cuts import Folders, cut_frames
from .sheets import (
    SheetColumns, SheetRow, cell_text, collect_samples, find_sheet, parse_frame, read_sheet, require_dir, row_sample,
)

CASME3_FPS = 30.0
CASME3_SHEETS = ("cas(me)3_part_A_ME_label_JpgIndex*.xlsx", "CAS(ME)3_part_A_ME_label_JpgIndex*.xlsx",
                 "cas(me)3_part_A_ME_label_JpgIndex*.csv")
STREAMS = ("color", "depth")
"""Frame folders of a video: colour frames (the default) or depth maps."""

_SUBJECT_DIR = re.compile(r"^spno\.\d+$", re.IGNORECASE)


def _frames_root(root: Path) -> Path:
    """``root``, or the shallowest folder below it (3 levels at most) holding ``spNO.<n>`` folders."""
    level = [root]
    for _ in range(4):
        holders = [p for p in level if any(c.is_dir() and _SUBJECT_DIR.match(c.name) for c in p.iterdir())]
        if holders:
            return holders[0]
        level = sorted(c for p in level for c in p.iterdir() if c.is_dir())
    return root


@register_adapter("casme3")
def load_casme3(
    root: Path,
    annotations: Path | None = None,
    *,
    stream: str = "color",
    fps: float = CASME3_FPS,
    dataset: str = "casme3",
) -> AdapterResult:
    """CAS(ME)³ part A micro-expressions: sample id ``"spNO.1_a_355"``, subject ``"spNO.1"``.

    Parameters
    ----------
    root
        Folder holding the ``spNO.<n>`` subject folders (or a folder above
        them, such as ``part_A/data``) and, unless ``annotations`` is given, the sheet.
    annotations
        ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``; found in ``root`` when None.
    stream
        ``"color"`` [default] or ``"depth"``: which frame folder of a video the clips are cut from.
    fps
        Frame rate [30].
    dataset
        The dataset name written into every sample.
    """
    if stream not in STREAMS:
        raise ConfigError(f"CAS(ME)³ stream {stream!r} is unknown; use one of {', '.join(STREAMS)}")
    root = require_dir(root, "CAS(ME)³")
    sheet = read_sheet(find_sheet(root, CASME3_SHEETS, annotations), SheetColumns(), header_key="Subject")
    frames_root = _frames_root(root)
    folders = Folders()
    case_noted: set[str] = set()
    quirks: list[Quirk] = []

    def ids(row: SheetRow) -> tuple[str, str, int | None]:
        onset, _ = parse_frame(row.get("onset"))
        return cell_text(row.get("subject")), cell_text(row.get("clip")), onset

    def sample_id(row: SheetRow) -> str | None:
        subject, video, onset = ids(row)
        return f"{subject}_{video}_{onset}" if subject and video and onset is not None else None

    def build(row: SheetRow, key: str):
        subject, video, _ = ids(row)
        subject_dir, recased = folders.child(frames_root, subject)
        if recased and subject not in case_noted:
            case_noted.add(subject)
            quirks.append(Quirk(subject, "folder_case", f"sheet subject {subject!r} is folder "
                                f"{subject_dir.name!r} on disk; matched without case", sheet.source, row.row))
        folder = subject_dir / video / stream
        return row_sample(row, sheet.source, key, dataset=dataset, subject=subject, clip=video, fps=fps,
                          folder=folder, frames_of=lambda gt: cut_frames(folders.frames(folder), gt.onset,
                                                                         gt.offset, key, sheet.source, row.row))

    result = collect_samples(sheet, sample_id, build)
    result.quirks.extend(quirks)
    result.assumptions.append(
        f"{dataset}: sheet frame numbers are the numbers in the file names of <Subject>/<Filename>/{stream}; "
        "a clip is that video's frames Onset..Offset")
    return result


@register_adapter("demo-casme3")
def load_demo_casme3(root: Path, annotations: Path | None = None, *, fps: float = CASME3_FPS) -> AdapterResult:
    """The synthetic demo in the CAS(ME)³ part A layout (``mepipe.pipeline.demo``), named ``demo-casme3``."""
    return load_casme3(root, annotations, fps=fps, dataset="demo-casme3")
