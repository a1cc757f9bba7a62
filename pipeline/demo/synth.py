"""Write the synthetic demo dataset in the SAMM layout (SPEC §1, "demo").

Layout under ``root``::

    <subject>/<subject>_<class code>_<clip>/<subject>_<frame number:05d>.jpg
    SAMM_Micro_FACS_Codes_demo.xlsx   the sheet, in the real SAMM format
    demo_truth.csv                    true timing, class and head motion per clip
    demo.json                         the DemoParams used and the format version

Every output byte is a function of :class:`DemoParams` (and the installed
dlib, OpenCV and libjpeg), so two runs with one seed give identical files.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import openpyxl
import pandas as pd
from openpyxl.writer.excel import ExcelWriter

from .face import Subject, eye_centres, interocular, make_subject
from .motion import (
    ExpressionClass,
    HeadDrift,
    amplitude_profile,
    expression_basis,
    expression_class,
    frame_maps,
    moved_landmarks,
)
from .params import FORMAT_VERSION, DemoParams

log = logging.getLogger(__name__)

SHEET_NAME = "SAMM_Micro_FACS_Codes_demo.xlsx"
TRUTH_NAME = "demo_truth.csv"
META_NAME = "demo.json"
SHEET_COLUMNS = (
    "Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
    "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes",
)
SHEET_PREAMBLE = (
    ("SAMM Dataset - Master FACS Codes (mepipe synthetic demo)", None, None, None,
     "(Synthetic frames made by mepipe from skimage.data.astronaut, public domain. Not SAMM data.)"),
    (),
    ("Ground truth timing, class and head motion of every clip: demo_truth.csv",),
    (),
    ("Symbol Key:",),
    ('"/" = or',),
    (),
)
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DOC_TIME = datetime(2000, 1, 1)


@dataclass(frozen=True)
class ClipTruth:
    """The plan and ground truth of one clip (one row of ``demo_truth.csv``).

    Frame fields ending in ``_frame`` or named onset/apex/offset are source
    frame numbers (as in the file names); ``*_index`` are positions in the clip.
    ``sheet_apex`` is what the sheet says, which differs from ``apex`` only for
    the erratum clip. Head poses are (tx, ty) pixels and degrees
    counter-clockwise about ``pivot`` (see :class:`.motion.HeadDrift`).
    """

    subject: str
    filename: str
    emotion: str
    objective_class: int
    action_units: str
    clip_number: int
    first_frame: int
    last_frame: int
    onset: int
    apex: int
    offset: int
    onset_index: int
    apex_index: int
    offset_index: int
    amplitude_px: float
    head_tx_start: float
    head_ty_start: float
    head_rot_start_deg: float
    head_tx_end: float
    head_ty_end: float
    head_rot_end_deg: float
    pivot_x: float
    pivot_y: float
    interocular_px: float
    sheet_apex: int
    erratum: bool

    @property
    def head(self) -> HeadDrift:
        """The clip's head drift."""
        return HeadDrift(
            (self.head_tx_start, self.head_ty_start, self.head_rot_start_deg),
            (self.head_tx_end, self.head_ty_end, self.head_rot_end_deg),
            (self.pivot_x, self.pivot_y),
        )


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`write_demo` wrote."""

    root: Path
    sheet: Path
    truth: Path
    meta: Path
    clips: tuple[str, ...]
    n_frames: int
    erratum: str | None


def clip_name(subject: str, cls: ExpressionClass, clip_number: int) -> str:
    """SAMM-style clip folder name ``<subject>_<class code>_<clip>``, e.g. ``"001_1_1"``."""
    return f"{subject}_{cls.code}_{clip_number}"


def erratum_apex(apex: int) -> int:
    """A wrongly written apex: the true one with its leading digit lost (1234 → 234).

    Frame numbers start at 1000 or later, so the result always lies before
    the onset, like the typo in SAMM's 032_3_1 (4896, 1930, 4970).
    """
    return int(str(apex)[1:])


def plan_clip(
    subject: Subject, cls: ExpressionClass, clip_number: int, params: DemoParams
) -> tuple[ClipTruth, np.random.Generator]:
    """Draw one clip's timing, amplitude and head drift.

    Returns the plan and the clip's generator, positioned after the plan, from
    which the frame noise is drawn. The generator depends only on
    ``(seed, subject, class code, clip)``.
    """
    number = int(subject.subject)
    rng = np.random.default_rng([params.seed, number, cls.code, clip_number])
    n = params.n_frames
    first = int(rng.integers(params.first_frame_range[0], params.first_frame_range[1] + 1))
    onset = int(rng.integers(params.onset_range[0], params.onset_range[1] + 1))
    first_apex, last_apex = params.apex_bounds()
    apex = int(rng.integers(max(first_apex, onset + params.min_phase), last_apex + 1))
    offset = int(rng.integers(apex + params.min_phase, n - params.offset_margin))
    amplitude = float(rng.uniform(*params.amplitude_px))
    left, right = eye_centres(subject.frame_landmarks)
    head = HeadDrift.draw(rng, params, (left + right) / 2)
    name = clip_name(subject.subject, cls, clip_number)
    erratum = name == params.erratum_clip
    truth = ClipTruth(
        subject=subject.subject,
        filename=name,
        emotion=cls.name,
        objective_class=cls.code,
        action_units=str(cls.action_units),
        clip_number=clip_number,
        first_frame=first,
        last_frame=first + n - 1,
        onset=first + onset,
        apex=first + apex,
        offset=first + offset,
        onset_index=onset,
        apex_index=apex,
        offset_index=offset,
        amplitude_px=amplitude,
        head_tx_start=head.start[0],
        head_ty_start=head.start[1],
        head_rot_start_deg=head.start[2],
        head_tx_end=head.end[0],
        head_ty_end=head.end[1],
        head_rot_end_deg=head.end[2],
        pivot_x=head.pivot[0],
        pivot_y=head.pivot[1],
        interocular_px=interocular(subject.landmarks),
        sheet_apex=erratum_apex(first + apex) if erratum else first + apex,
        erratum=erratum,
    )
    return truth, rng


def noise_frames(rng: np.random.Generator, params: DemoParams) -> Iterator[np.ndarray]:
    """Yield one (H, W) float32 Gaussian noise image per frame of a clip.

    Drawing 150 k normals per frame would be the slowest step of the demo, so
    each frame is a window of one larger noise tile at an offset drawn
    without replacement: every frame's noise is i.i.d. Gaussian and no two
    frames of a clip share it pixel for pixel.
    """
    height, width = params.frame_size
    margin = params.noise_tile_margin
    tile = rng.standard_normal((height + margin, width + margin), dtype=np.float32)
    tile *= np.float32(params.noise_sigma)
    for offset in rng.choice(margin * margin, size=params.n_frames, replace=False):
        y, x = divmod(int(offset), margin)
        yield tile[y : y + height, x : x + width]


def render_clip(
    subject: Subject, basis: np.ndarray, truth: ClipTruth, rng: np.random.Generator, params: DemoParams
) -> Iterator[np.ndarray]:
    """Yield the clip's frames, (H, W) uint8, in frame order."""
    profile = amplitude_profile(params.n_frames, truth.onset_index, truth.apex_index, truth.offset_index)
    head = truth.head
    for index, noise in enumerate(noise_frames(rng, params)):
        head_pose = head.affine(index, params.n_frames)
        maps = frame_maps(subject, basis, truth.amplitude_px * profile[index], head_pose, params)
        frame = cv2.remap(subject.image, maps, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frame += noise
        np.rint(frame, out=frame)
        yield np.clip(frame, 0, 255, out=frame).astype(np.uint8)


def clip_landmarks(subject: Subject, cls: ExpressionClass, truth: ClipTruth, params: DemoParams) -> np.ndarray:
    """True landmarks of every frame of a clip, (n_frames, 68, 2) float64 frame pixels."""
    profile = amplitude_profile(params.n_frames, truth.onset_index, truth.apex_index, truth.offset_index)
    head = truth.head
    return np.stack(
        [
            moved_landmarks(subject, cls, truth.amplitude_px * profile[k], head.affine(k, params.n_frames))
            for k in range(params.n_frames)
        ]
    )


def read_params(root: Path) -> DemoParams:
    """The :class:`DemoParams` a demo under ``root`` was written with (from ``demo.json``)."""
    meta = json.loads((Path(root) / META_NAME).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{root / META_NAME} has demo format {meta.get('format_version')}, this mepipe writes "
            f"{FORMAT_VERSION}; regenerate the demo"
        )
    return DemoParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()})


def true_landmarks(params: DemoParams, filename: str) -> np.ndarray:
    """True landmarks of every frame of clip ``filename``, (n_frames, 68, 2) float64 frame pixels.

    Regenerates the clip's subject and plan (no frames), so it is cheap and
    needs only the parameters, e.g. ``true_landmarks(read_params(root), "001_2_1")``.
    They are the astronaut's dlib landmarks carried through every warp, so a
    landmark detector should agree with them to about its own accuracy.
    """
    subject_id, code, clip = filename.split("_")
    cls = next((c for c in map(expression_class, params.classes) if c.code == int(code)), None)
    if cls is None:
        raise ValueError(f"clip {filename!r}: class code {code} is not among {params.classes}")
    subject = make_subject(int(subject_id), params)
    truth, _ = plan_clip(subject, cls, int(clip), params)
    return clip_landmarks(subject, cls, truth, params)


def write_frames(folder: Path, subject: str, first_frame: int, frames: Iterable[np.ndarray], quality: int) -> int:
    """Write frames as ``<subject>_<number:05d>.jpg`` numbered from ``first_frame``; returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, frame in enumerate(frames, start=1):
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {folder} frame {first_frame + count - 1}")
        (folder / f"{subject}_{first_frame + count - 1:05d}.jpg").write_bytes(data.tobytes())
    return count


def sheet_rows(truths: list[ClipTruth]) -> list[list]:
    """Sheet rows in SAMM's style: subjects alternately as text "006" and number 6."""
    rows = []
    for i, t in enumerate(sorted(truths, key=lambda t: (t.subject, t.filename))):
        action_units = expression_class(t.emotion).action_units
        note = (
            f"Apex written wrongly on purpose: it lies outside onset..offset, as in SAMM "
            f"028_4_1 and 032_3_1; true apex {t.apex} in {TRUTH_NAME}"
            if t.erratum
            else None
        )
        rows.append([
            int(t.subject) if i % 2 else t.subject, t.filename, t.objective_class, t.onset,
            t.sheet_apex, t.offset, t.offset - t.onset + 1, "Micro - 1/2", action_units,
            t.emotion, t.objective_class, note,
        ])
    return rows


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


def write_sheet(path: Path, truths: list[ClipTruth]) -> None:
    """Write the annotation sheet: preamble, header row, one row per clip."""
    book = openpyxl.Workbook()
    book.properties.created = book.properties.modified = FIXED_DOC_TIME
    book.properties.creator = "mepipe"
    sheet = book.active
    sheet.title = "MICRO_ONLY"
    for row in SHEET_PREAMBLE:
        sheet.append(list(row))
    sheet.append(list(SHEET_COLUMNS))
    for row in sheet_rows(truths):
        sheet.append(row)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.number_format = "@"
    # ExcelWriter rather than book.save(), which stamps the current time into docProps.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(book, archive).write_data()
    path.write_bytes(deterministic_zip(buffer.getvalue()))


def write_meta(path: Path, params: DemoParams) -> None:
    """Write ``demo.json``: format version, parameters and the class motion tables."""
    classes = {
        name: {"objective_class": c.code, "action_units": str(c.action_units),
               "moves": {str(row + 1): list(vec) for row, vec in sorted(c.moves.items())}}
        for name, c in ((n, expression_class(n)) for n in params.classes)
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "mepipe.pipeline.demo",
        "source_image": "skimage.data.astronaut (public domain)",
        "layout": "<subject>/<subject>_<class code>_<clip>/<subject>_<frame number:05d>.jpg",
        "sheet": SHEET_NAME,
        "truth": TRUTH_NAME,
        "params": dataclasses.asdict(params),
        "classes_moves_note": "1-based iBUG landmark numbers -> (dx, dy) relative to the most-moving point",
        "classes": classes,
    }
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def check_erratum(params: DemoParams, classes: list[ExpressionClass]) -> None:
    """Raise unless ``params.erratum_clip`` is None or one of the clips to be generated."""
    names = [
        clip_name(f"{number:03d}", cls, clip)
        for number in range(1, params.n_subjects + 1)
        for cls in classes
        for clip in range(1, params.n_clips + 1)
    ]
    if params.erratum_clip is not None and params.erratum_clip not in names:
        raise ValueError(
            f"erratum_clip {params.erratum_clip!r} is not among the clips to generate "
            f"({names[0]} ... {names[-1]}); name one of them or pass erratum_clip=None"
        )


def prepare_root(root: Path, overwrite: bool) -> None:
    """Create ``root``; refuse a non-empty one unless it holds a previous demo and ``overwrite``."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; choose an empty folder or pass overwrite=True")
        if not (root / META_NAME).is_file() or not (root / TRUTH_NAME).is_file():
            raise FileExistsError(f"{root} holds no previous demo ({META_NAME}, {TRUTH_NAME}); not overwriting it")
        old = pd.read_csv(root / TRUTH_NAME, dtype={"subject": str})
        for subject in sorted(set(old["subject"])):
            shutil.rmtree(root / subject, ignore_errors=True)
        for name in (SHEET_NAME, TRUTH_NAME, META_NAME):
            (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def write_demo(root: Path, params: DemoParams = DemoParams(), *, overwrite: bool = False) -> DemoSummary:
    """Generate the demo dataset under ``root``.

    Parameters
    ----------
    root : Path
        Target folder; created, and must be empty unless ``overwrite`` (which
        replaces a previous demo there and nothing else).
    params : DemoParams
        What to generate; the default is 6 subjects × 3 classes × 2 clips of 24
        frames.

    Returns
    -------
    DemoSummary
        Paths written, clip names and the erratum clip.

    Examples
    --------
    >>> from mepipe.pipeline.demo import DemoParams, write_demo  # doctest: +SKIP
    >>> write_demo(Path("data/demo"), DemoParams(n_subjects=2))  # doctest: +SKIP
    """
    root = Path(root)
    classes = [expression_class(name) for name in params.classes]
    check_erratum(params, classes)
    prepare_root(root, overwrite)
    truths: list[ClipTruth] = []
    n_written = 0
    for number in range(1, params.n_subjects + 1):
        subject = make_subject(number, params)
        for cls in classes:
            basis = expression_basis(subject, cls, params)
            for clip_number in range(1, params.n_clips + 1):
                truth, rng = plan_clip(subject, cls, clip_number, params)
                frames = render_clip(subject, basis, truth, rng, params)
                folder = root / subject.subject / truth.filename
                n_written += write_frames(folder, subject.subject, truth.first_frame, frames, params.jpeg_quality)
                truths.append(truth)
        log.info("demo subject %s written", subject.subject)
    write_sheet(root / SHEET_NAME, truths)
    truth_table = pd.DataFrame([dataclasses.asdict(t) for t in truths])
    truth_table.to_csv(root / TRUTH_NAME, index=False, float_format="%.6f")
    write_meta(root / META_NAME, params)
    return DemoSummary(
        root=root,
        sheet=root / SHEET_NAME,
        truth=root / TRUTH_NAME,
        meta=root / META_NAME,
        clips=tuple(t.filename for t in truths),
        n_frames=n_written,
        erratum=params.erratum_clip,
    )
