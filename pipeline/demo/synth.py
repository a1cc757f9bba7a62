"""Write a synthetic demo dataset in the SAMM, CASME II, SMIC-HS or CAS(ME)³ layout.

Frames and annotations follow the real dataset's layout (:mod:`.layouts`);
beside them, under ``root``::

    demo_truth.csv    true timing, class and head motion per clip
    demo.json         the DemoParams used, the format version and the face sources

Every output byte is a function of :class:`DemoParams` (and the installed
dlib, OpenCV and libjpeg), so two runs with one seed give identical files.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import pandas as pd

from . import layouts
from .face import Subject, eye_centres, interocular, make_subject
from .motion import (
    ExpressionClass,
    HeadDrift,
    amplitude_profile,
    expression_basis,
    expression_class,
    expression_shade,
    frame_maps,
    moved_landmarks,
)
from .params import FORMAT_VERSION, DemoParams
from .sources import CREDITS

log = logging.getLogger(__name__)

SHEET_NAME = layouts.SAMM_SHEET
TRUTH_NAME = "demo_truth.csv"
META_NAME = "demo.json"


@dataclass(frozen=True)
class ClipTruth:
    """The plan and ground truth of one clip (one row of ``demo_truth.csv``).

    Frame fields ending in ``_frame`` or named onset/apex/offset are source
    frame numbers (as in the file names); ``*_index`` are positions in the clip.
    ``sheet_apex`` is what the sheet says, which differs from ``apex`` only for
    the erratum clip (None where the sheet writes ``/`` or there is no sheet). Head poses are (tx, ty) pixels and degrees
    counter-clockwise about ``pivot`` (see :class:`.motion.HeadDrift`).
    """

    subject: str
    filename: str
    subject_number: int
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
    sheet_apex: int | None
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
    sheet: Path | None
    truth: Path
    meta: Path
    clips: tuple[str, ...]
    n_frames: int
    erratum: str | None


def clip_name(subject: str, cls: ExpressionClass, clip_number: int, layout: str = "samm") -> str:
    """A clip's name in ``layout`` (:func:`.layouts.clip_name`), e.g. ``"001_1_1"``."""
    return layouts.clip_name(layout, subject, cls.name, cls.code, clip_number)


def erratum_apex(apex: int, layout: str) -> int | None:
    """The apex a sheet writes for the erratum clip.

    SAMM and CAS(ME)³: the true one with its leading digit lost (1234 → 234);
    frame numbers start at 1000 or later (CAS(ME)³: at 20 or later), so it
    lies before the onset, like the typo in SAMM's 032_3_1 (4896, 1930, 4970)
    and the CAS(ME)³ apex MEB's ``Casme3A`` replaces. CASME II: None, written
    ``/`` (as for sub04 EP12_01f).
    """
    return int(str(apex)[1:]) if layout in ("samm", "casme3") else None


def clip_plan(params: DemoParams) -> list[tuple[int, ExpressionClass, int]]:
    """Every clip to generate as (subject number, class, clip number), in writing order.

    Each subject gets ``n_clips`` clips of every class in ``classes`` and
    one more (clip number ``n_clips + 1``) of every class in ``extra_clips``.
    """
    plan = []
    for number in range(1, params.n_subjects + 1):
        for name in params.classes:
            plan += [(number, expression_class(name, params.layout), k) for k in range(1, params.n_clips + 1)]
        for name in params.extra_clips:
            plan.append((number, expression_class(name, params.layout), params.n_clips + 1))
    return plan


def plan_names(params: DemoParams) -> dict[str, tuple[int, ExpressionClass, int]]:
    """Clip key (:func:`.layouts.clip_key`) → (subject number, class, clip number) for every clip of ``params``."""
    out = {}
    for number, cls, clip in clip_plan(params):
        subject = layouts.subject_id(params.layout, number)
        name = clip_name(subject, cls, clip, params.layout)
        out[layouts.clip_key(params.layout, subject, name, cls.name)] = (number, cls, clip)
    return out


def plan_clip(
    subject: Subject, cls: ExpressionClass, clip_number: int, params: DemoParams
) -> tuple[ClipTruth, np.random.Generator]:
    """Draw one clip's timing, amplitude and head drift.

    Returns the plan and the clip's generator, positioned after the plan, from
    which the frame noise is drawn. The generator depends only on
    ``(seed, subject, class code, clip)``. In the CASME II and SMIC layouts a
    clip folder holds onset..offset only, so the onset is the first frame and
    the offset the last; in the CAS(ME)³ layout each class's clips take their
    own block of the video's frame numbers (:data:`.layouts.VIDEO_BLOCK`).
    """
    number = subject.number
    rng = np.random.default_rng([params.seed, number, cls.code, clip_number])
    n = params.n_frames
    first = int(rng.integers(params.first_frame_range[0], params.first_frame_range[1] + 1))
    if params.layout == "casme3":
        first += (params.classes + params.extra_clips).index(cls.name) * layouts.VIDEO_BLOCK
    onset = int(rng.integers(params.onset_range[0], params.onset_range[1] + 1))
    first_apex, last_apex = params.apex_bounds()
    apex = int(rng.integers(max(first_apex, onset + params.min_phase), last_apex + 1))
    offset = int(rng.integers(apex + params.min_phase, n - params.offset_margin))
    if params.layout in layouts.CLIP_FOLDER_LAYOUTS:
        onset, offset = 0, n - 1
    amplitude = float(rng.uniform(*params.amplitude_px))
    left, right = eye_centres(subject.frame_landmarks)
    head = HeadDrift.draw(rng, params, (left + right) / 2)
    name = clip_name(subject.subject, cls, clip_number, params.layout)
    erratum = layouts.clip_key(params.layout, subject.subject, name, cls.name) == params.erratum_clip
    truth = ClipTruth(
        subject=subject.subject,
        filename=name,
        subject_number=number,
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
        sheet_apex=erratum_apex(first + apex, params.layout) if erratum else first + apex,
        erratum=erratum,
    )
    return truth, rng


def noise_frames(rng: np.random.Generator, params: DemoParams, n_frames: int | None = None,
                 margin: int | None = None) -> Iterator[np.ndarray]:
    """Yield one (H, W) float32 Gaussian noise image per frame of a clip.

    Drawing 150 k normals per frame would be the slowest step of the demo, so
    each frame is a window of one larger noise tile at an offset drawn
    without replacement: every frame's noise is i.i.d. Gaussian and no two
    frames of a clip share it pixel for pixel. ``n_frames`` and ``margin``
    default to the clip's (``params.n_frames``, ``params.noise_tile_margin``);
    a long video passes its own (``margin**2 >= n_frames``).
    """
    height, width = params.frame_size
    n_frames = params.n_frames if n_frames is None else n_frames
    margin = params.noise_tile_margin if margin is None else margin
    channels = (3,) if params.colour else ()
    tile = rng.standard_normal((height + margin, width + margin, *channels), dtype=np.float32)
    tile *= np.float32(params.noise_sigma)
    for offset in rng.choice(margin * margin, size=n_frames, replace=False):
        y, x = divmod(int(offset), margin)
        yield tile[y : y + height, x : x + width]


def render_clip(
    subject: Subject, basis: np.ndarray, truth: ClipTruth, rng: np.random.Generator, params: DemoParams,
    shade: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield the clip's frames, (H, W) or (H, W, 3) uint8, in frame order.

    ``shade`` (canvas-sized, :func:`.motion.expression_shade`) darkens the
    class's skin folds in proportion to the expression's intensity.
    """
    profile = amplitude_profile(params.n_frames, truth.onset_index, truth.apex_index, truth.offset_index)
    head = truth.head
    box = None
    if shade is not None and shade.any():
        # Only the folds' bounding box changes: darkening it alone keeps the folds' cost per frame small.
        rows, cols = np.nonzero(shade.any(axis=1))[0], np.nonzero(shade.any(axis=0))[0]
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        shade = shade[box][..., None] if subject.image.ndim == 3 else shade[box]
    for index, noise in enumerate(noise_frames(rng, params)):
        head_pose = head.affine(index, params.n_frames)
        maps = frame_maps(subject, basis, truth.amplitude_px * profile[index], head_pose, params)
        face = subject.image
        if box is not None and profile[index] > 0:
            face = face.copy()
            face[box] *= 1 - np.float32(profile[index]) * shade
        frame = cv2.remap(face, maps, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
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

    ``filename`` is the clip's key (:func:`.layouts.clip_key`): its name, or
    ``sub01/EP01_01`` in the CASME II layout.

    Regenerates the clip's subject and plan (no frames), so it is cheap and
    needs only the parameters, e.g. ``true_landmarks(read_params(root), "001_2_1")``.
    They are the source photographs' dlib landmarks carried through every
    warp, so a landmark detector should agree with them to about its own accuracy.
    """
    names = plan_names(params)
    if filename not in names:
        raise ValueError(f"clip {filename!r} is not among the {len(names)} clips of these demo parameters")
    number, cls, clip = names[filename]
    subject = make_subject(number, params, layouts.subject_id(params.layout, number))
    truth, _ = plan_clip(subject, cls, clip, params)
    return clip_landmarks(subject, cls, truth, params)


def write_frames(
    folder: Path, subject: str, first_frame: int, frames: Iterable[np.ndarray], params: DemoParams
) -> int:
    """Write frames named as the layout names them, numbered from ``first_frame``; returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, frame in enumerate(frames, start=1):
        data = layouts.encode_frame(params.layout, frame, params.jpeg_quality)
        (folder / layouts.frame_file(params.layout, subject, first_frame + count - 1)).write_bytes(data)
    return count


def samm_rows(truths: list[ClipTruth]) -> list[list]:
    """Sheet rows in SAMM's style: subjects alternately as text "006" and number 6."""
    rows = []
    for i, t in enumerate(sorted(truths, key=lambda t: (t.subject, t.filename))):
        note = (
            f"Apex written wrongly on purpose: it lies outside onset..offset, as in SAMM "
            f"028_4_1 and 032_3_1; true apex {t.apex} in {TRUTH_NAME}"
            if t.erratum
            else None
        )
        action_units = expression_class(t.emotion).action_units
        rows.append([
            int(t.subject) if i % 2 else t.subject, t.filename, t.objective_class, t.onset,
            t.sheet_apex, t.offset, t.offset - t.onset + 1, "Micro - 1/2", action_units,
            t.emotion, t.objective_class, note,
        ])
    return rows


def casme2_rows(truths: list[ClipTruth]) -> list[list]:
    """Sheet rows in the 2019 CASME II sheet's style: subject numbers, ``/`` for the erratum's apex."""
    rows = []
    for t in sorted(truths, key=lambda t: (t.subject_number, t.filename)):
        action_units = expression_class(t.emotion, "casme2").action_units
        apex = "/" if t.sheet_apex is None else t.sheet_apex
        rows.append([
            t.subject_number, t.filename, None, t.onset, apex, t.offset, None, action_units, t.emotion,
            t.objective_class,
        ])
    return rows


def casme3_rows(truths: list[ClipTruth]) -> list[list]:
    """Sheet rows in the CAS(ME)³ part A sheet's style: one per expression, by subject, video and onset; AU
    cells as the class writes them (commas for some, as CAS(ME)³ does)."""
    rows = []
    for t in sorted(truths, key=lambda t: (t.subject_number, t.filename, t.onset)):
        action_units = expression_class(t.emotion, "casme3").action_units
        rows.append([t.subject, t.filename, t.onset, t.sheet_apex, t.offset, action_units, t.objective_class,
                     t.emotion])
    return rows


def write_annotations(root: Path, truths: list[ClipTruth], layout: str) -> Path | None:
    """Write the layout's annotation sheet (none for SMIC); returns its path."""
    name = layouts.ANNOTATIONS[layout]
    if layout == "samm":
        rows = [*layouts.SAMM_PREAMBLE, layouts.SAMM_COLUMNS, *samm_rows(truths)]
        layouts.write_workbook(root / name, "MICRO_ONLY", rows)
    elif layout == "casme2":
        layouts.write_workbook(root / name, "Sheet1", [layouts.CASME2_COLUMNS, *casme2_rows(truths)])
    elif layout == "casme3":
        layouts.write_workbook(root / name, "label", [layouts.CASME3_COLUMNS, *casme3_rows(truths)])
    return None if name is None else root / name


def write_meta(path: Path, params: DemoParams) -> None:
    """Write ``demo.json``: format version, parameters, face sources and the class motion and fold tables."""
    classes = {
        name: {"objective_class": c.code, "action_units": str(c.action_units),
               "moves": {str(row + 1): list(vec) for row, vec in sorted(c.moves.items())}, "folds": list(c.folds)}
        for name, c in ((n, expression_class(n, params.layout)) for n in params.classes + params.extra_clips)
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "mepipe.pipeline.demo",
        "dataset": layouts.DATASET_NAMES[params.layout],
        "face_sources": CREDITS,
        "layout": params.layout,
        "sheet": layouts.ANNOTATIONS[params.layout],
        "truth": TRUTH_NAME,
        "params": dataclasses.asdict(params),
        "classes_moves_note": "1-based iBUG landmark numbers -> (dx, dy) relative to the most-moving point",
        "classes": classes,
    }
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def check_erratum(params: DemoParams) -> None:
    """Raise unless ``params.erratum_clip`` is None or one of the clips to be generated (SMIC: None)."""
    names = list(plan_names(params))
    if params.erratum_clip is not None and params.layout == "smic":
        raise ValueError(f"erratum_clip {params.erratum_clip!r}: the SMIC layout has no sheet to write it in")
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
        layout = json.loads((root / META_NAME).read_text()).get("layout", "samm")
        if layout not in layouts.ANNOTATIONS:
            raise FileExistsError(f"{root / META_NAME} names layout {layout!r}, unknown here; not overwriting it")
        old = pd.read_csv(root / TRUTH_NAME, dtype={"subject": str})
        for folder in layouts.top_level(layout, root, sorted(set(old["subject"]))):
            shutil.rmtree(folder, ignore_errors=True)
        for name in (layouts.ANNOTATIONS[layout], TRUTH_NAME, META_NAME):
            if name is not None:
                (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def write_demo(root: Path, params: DemoParams = DemoParams(), *, overwrite: bool = False) -> DemoSummary:
    """Generate a demo dataset under ``root`` in ``params.layout``.

    Parameters
    ----------
    root : Path
        Target folder; created, and must be empty unless ``overwrite`` (which
        replaces a previous demo there and nothing else).
    params : DemoParams
        What to generate; the default is the SAMM-layout ``demo``: 6 subjects ×
        3 classes × 2 clips of 24 frames (:data:`.params.PRESETS` has the others).

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
    check_erratum(params)
    prepare_root(root, overwrite)
    truths: list[ClipTruth] = []
    n_written = 0
    subject, basis = None, {}
    for number, cls, clip_number in clip_plan(params):
        if subject is None or subject.number != number:
            if subject is not None:
                log.info("demo subject %s written", subject.subject)
            subject = make_subject(number, params, layouts.subject_id(params.layout, number))
            basis = {}
        if cls.name not in basis:
            basis[cls.name] = expression_basis(subject, cls, params), expression_shade(subject, cls, params)
        truth, rng = plan_clip(subject, cls, clip_number, params)
        field, shade = basis[cls.name]
        frames = render_clip(subject, field, truth, rng, params, shade=shade)
        folder = layouts.clip_folder(params.layout, root, subject.subject, cls.name, truth.filename)
        n_written += write_frames(folder, subject.subject, truth.first_frame, frames, params)
        truths.append(truth)
    sheet = write_annotations(root, truths, params.layout)
    truth_table = pd.DataFrame([dataclasses.asdict(t) for t in truths])
    truth_table.to_csv(root / TRUTH_NAME, index=False, float_format="%.6f")
    write_meta(root / META_NAME, params)
    return DemoSummary(
        root=root,
        sheet=sheet,
        truth=root / TRUTH_NAME,
        meta=root / META_NAME,
        clips=tuple(t.filename for t in truths),
        n_frames=n_written,
        erratum=params.erratum_clip,
    )
