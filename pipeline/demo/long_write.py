"""Write the long-video demo ``demo-lv`` in the SAMM Long Videos layout, with its ground truth.

Under ``root``::

    SAMM_longvideos/<subject>_<n>/<subject>_<n>_<frame:04d>.jpg   greyscale frames, numbered from 1
    SAMM_LongVideos_demo.xlsx            the intervals sheet in SAMM Long Videos' format
    SAMM_Micro_FACS_Codes_demo-lv.xlsx   the micro-expressions' emotions, in SAMM's format
    demo_lv_truth.json                   every event of every video, annotated or not
    demo.json                            the LongDemoParams used and the format version

The intervals sheet has nine rows of preamble and its header on row 10
(Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type,
Action Units, Notes); Filename ``<subject>_<n>_<k>``, Type ``Micro - 1/2``
or ``Macro``; subjects written as 6 or "006" by turns, as in the SAMM
sheets. As in SAMM Long Videos, emotions are not in it: the micro-expressions
are rows of a SAMM-format sheet with the same Filename, which
:func:`~..datasets.samm_lv.read_samm_lv` joins (``samm_sheet=``). Blinks,
head turns and nods are in the truth file only. Every output byte is a
function of :class:`.long_params.LongDemoParams`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets.samm_lv import FRAMES_DIR
from . import layouts
from .face import eye_centres
from .long_params import FORMAT_VERSION, QUIRK_KINDS, LongDemoParams
from .long_plan import BLINK, MACRO, MICRO, Event, VideoPlan, plan_video
from .long_render import Performer, render_video, video_landmarks
from .sources import CREDITS
from .synth import META_NAME

log = logging.getLogger(__name__)

LV_SHEET = "SAMM_LongVideos_demo.xlsx"
LV_EMOTION_SHEET = "SAMM_Micro_FACS_Codes_demo-lv.xlsx"
LV_TRUTH = "demo_lv_truth.json"
DATASET = "demo-lv"

LV_COLUMNS = ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
              "Action Units", "Notes")
"""SAMM Long Videos' header (row 10)."""
LV_PREAMBLE = (
    ("SAMM Long Videos - FACS Codes (mepipe synthetic demo)",),
    ("Synthetic frames made by mepipe from two public-domain portraits. Not SAMM data.",),
    (),
    (f"Every event, blinks and head motion included (not annotated here): {LV_TRUTH}",),
    (),
    ("Symbol Key:",),
    ('"/" = or',),
    ("Type: Micro - 1/2 (up to 0.5 s) or Macro",),
    (),
)
"""Nine rows above the header, as SAMM Long Videos has."""
TYPE_CELLS = {MICRO: "Micro - 1/2", MACRO: "Macro"}
"""How the sheet writes each annotated kind."""
MISSING_APEX = -1
"""SAMM Long Videos' apex cell for an interval whose apex was not coded."""
EMOTION_PREAMBLE = (
    ("SAMM Dataset - Master FACS Codes (mepipe synthetic demo-lv: its long videos' micro-expressions)",),
    (),
    ("Symbol Key:",),
    ('"/" = or',),
    (),
)
"""Rows above the emotion sheet's header (SAMM's sheet has a free-text preamble of its own)."""
ALTERNATIVE = " or 14"
"""Appended to an AU cell by the ``action_units_ambiguous`` quirk: ``12 or 14``, as SAMM writes ``R12 or R14``."""


@dataclass(frozen=True)
class LongDemoSummary:
    """What :func:`write_long_demo` wrote."""

    root: Path
    sheet: Path
    emotion_sheet: Path
    truth: Path
    meta: Path
    videos: tuple[str, ...]
    n_frames: int


def frame_file(video: str, number: int) -> str:
    """A frame's file name, ``006_1_0001.jpg``: the video id and the frame number (four digits)."""
    return f"{video}_{number:04d}.jpg"


def subject_of(number: int) -> str:
    """Subject ``number`` as SAMM writes it in folders (``"006"``)."""
    return layouts.subject_id("samm", number)


def plan_corpus(params: LongDemoParams) -> list[tuple[Performer, list[VideoPlan]]]:
    """Every subject (rendered, with its fields) and its videos' plans, in writing order."""
    corpus = []
    for number in range(1, params.n_subjects + 1):
        performer = Performer.make(number, subject_of(number), params)
        left, right = eye_centres(performer.subject.frame_landmarks)
        plans = [plan_video(performer.subject.subject, number, n, (left + right) / 2, params)
                 for n in range(1, params.videos_per_subject + 1)]
        corpus.append((performer, plans))
    return corpus


def quirk_targets(plans: list[VideoPlan], params: LongDemoParams) -> dict[str, tuple[str, ...]]:
    """Interval name -> its quirk kinds, for every ``(video, kind)`` of ``params.quirks``."""
    by_video = {p.video: p for p in plans}
    targets: dict[str, tuple[str, ...]] = {}
    for video, kind in params.quirks:
        name = by_video[video].first(MACRO if kind == "apex_unparsable" else MICRO).name
        targets[name] = (*targets.get(name, ()), kind)
    return targets


def action_units(event: Event, quirks: tuple[str, ...]) -> str | int:
    """The AU cell of an annotated event: its class's, or an alternative for the ``action_units_ambiguous`` quirk."""
    cell = event.expression_class.action_units
    return f"{cell}{ALTERNATIVE}" if "action_units_ambiguous" in quirks else cell


def interval_rows(plans: list[VideoPlan], quirks: dict[str, tuple[str, ...]]) -> list[list]:
    """The intervals sheet's data rows: every micro- and macro-expression, by video and time."""
    rows = []
    for plan in plans:
        for event in plan.annotated:
            kinds = quirks.get(event.name, ())
            apex = MISSING_APEX if "apex_unparsable" in kinds else event.apex
            subject = plan.subject if len(rows) % 2 == 0 else int(plan.subject)
            rows.append([subject, event.name, plan.video_number, event.onset, apex, event.offset, event.n_frames,
                         TYPE_CELLS[event.kind], action_units(event, kinds), None])
    return rows


def emotion_rows(plans: list[VideoPlan], quirks: dict[str, tuple[str, ...]]) -> list[list]:
    """The SAMM-format sheet's rows: every micro-expression but the ``no_emotion_label`` quirk's, with its emotion."""
    rows = []
    for plan in plans:
        for event in plan.annotated:
            kinds = quirks.get(event.name, ())
            if event.kind != MICRO or "no_emotion_label" in kinds:
                continue
            cls = event.expression_class
            subject = plan.subject if len(rows) % 2 == 0 else int(plan.subject)
            rows.append([subject, event.name, plan.video_number, event.onset, event.apex, event.offset,
                         event.n_frames, TYPE_CELLS[MICRO], action_units(event, kinds), cls.name, cls.code, None])
    return rows


def event_truth(event: Event, quirks: tuple[str, ...]) -> dict:
    """One event of the truth file: timing (frame numbers), strength and, for annotated ones, the sheet's view."""
    out = {"kind": event.kind, "onset": event.onset, "apex": event.apex, "release": event.release,
           "offset": event.offset, "frames": event.n_frames, "annotated": event.annotated}
    if event.kind in (MICRO, MACRO):
        out |= {"name": event.name, "expression": event.expression, "amplitude_px": round(event.strength, 4),
                "action_units": str(event.expression_class.action_units),
                "emotion": event.expression if event.kind == MICRO else "",
                "quirks": list(quirks)}
    elif event.kind == BLINK:
        out["closure"] = round(event.strength, 4)
    else:
        out["angle_deg"] = round(event.strength, 4)
    return out


def truth_document(plans: list[VideoPlan], quirks: dict[str, tuple[str, ...]], params: LongDemoParams) -> dict:
    """The truth file: every video's frames and events (annotated or not), the sheets' quirks and the mean
    micro-expression length (from which spotting baselines set their window k)."""
    videos = [{"video": p.video, "subject": p.subject, "first_frame": p.first_frame, "last_frame": p.last_frame,
               "n_frames": p.n_frames, "events": [event_truth(e, quirks.get(e.name, ())) for e in p.events],
               "drift": dataclasses.asdict(p.wander)} for p in plans]
    micros = [e for p in plans for e in p.annotated if e.kind == MICRO]
    return {
        "format_version": FORMAT_VERSION,
        "dataset": DATASET,
        "fps": params.fps,
        "frames_folder": FRAMES_DIR,
        "sheet": LV_SHEET,
        "emotion_sheet": LV_EMOTION_SHEET,
        "frame_numbers": "inclusive file-name numbers; strength is 0 at onset and offset, full from apex to release",
        "strength": "amplitude_px: most-moving landmark at apex; closure: 1 = eye shut; angle_deg: turn positive "
                    "to the image's right, nod positive down",
        "quirks": [{"interval": name, "kind": kind, "what": QUIRK_KINDS[kind]}
                   for name, kinds in sorted(quirks.items()) for kind in kinds],
        "mean_micro_frames": round(sum(e.n_frames for e in micros) / len(micros), 2),
        "videos": videos,
    }


def prepare_root(root: Path, overwrite: bool) -> None:
    """Create ``root``; refuse a non-empty one unless it holds a previous long-video demo and ``overwrite``."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; choose an empty folder or pass overwrite=True")
        if not (root / META_NAME).is_file() or not (root / LV_TRUTH).is_file():
            raise FileExistsError(f"{root} holds no previous long-video demo ({META_NAME}, {LV_TRUTH}); "
                                  "not overwriting it")
        shutil.rmtree(root / FRAMES_DIR, ignore_errors=True)
        for name in (LV_SHEET, LV_EMOTION_SHEET, LV_TRUTH, META_NAME):
            (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def write_meta(path: Path, params: LongDemoParams) -> None:
    """Write ``demo.json``: format version, parameters and the face sources."""
    meta = {"format_version": FORMAT_VERSION, "generator": "mepipe.pipeline.demo.long_write", "dataset": DATASET,
            "layout": "samm-lv", "face_sources": CREDITS, "sheet": LV_SHEET, "emotion_sheet": LV_EMOTION_SHEET,
            "truth": LV_TRUTH, "params": dataclasses.asdict(params)}
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_long_params(root: Path) -> LongDemoParams:
    """The :class:`LongDemoParams` a long-video demo under ``root`` was written with (from ``demo.json``)."""
    meta = json.loads((Path(root) / META_NAME).read_text())
    if meta.get("format_version") != FORMAT_VERSION or meta.get("dataset") != DATASET:
        raise ValueError(f"{Path(root) / META_NAME} is not a {DATASET} demo of format {FORMAT_VERSION} "
                         f"(found {meta.get('dataset')!r}, format {meta.get('format_version')}); regenerate it")
    params = meta["params"]
    params["quirks"] = [tuple(q) for q in params["quirks"]]
    return LongDemoParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def true_video_landmarks(params: LongDemoParams, video: str) -> tuple[VideoPlan, np.ndarray]:
    """The plan and the true landmarks of every frame of ``video``, (n_frames, 68, 2) float64 frame pixels.

    Re-renders only the subject's neutral face (about a second), no frames:
    ``true_video_landmarks(read_long_params(root), "001_1")``.
    """
    subject, _, number = video.partition("_")
    if not subject.isdigit() or not number.isdigit() or not 1 <= int(subject) <= params.n_subjects \
            or not 1 <= int(number) <= params.videos_per_subject:
        raise ValueError(f"video {video!r} is not among the videos of these parameters "
                         f"(subjects 1..{params.n_subjects}, videos 1..{params.videos_per_subject})")
    performer = Performer.make(int(subject), subject_of(int(subject)), params)
    left, right = eye_centres(performer.subject.frame_landmarks)
    plan = plan_video(performer.subject.subject, int(subject), int(number), (left + right) / 2, params)
    return plan, video_landmarks(performer, plan)


def write_long_demo(root: Path, params: LongDemoParams = LongDemoParams(), *,
                    overwrite: bool = False) -> LongDemoSummary:
    """Generate the long-video demo under ``root`` (see the module docstring for what goes where).

    Parameters
    ----------
    root : Path
        Target folder; created, and must be empty unless ``overwrite`` (which
        replaces a previous long-video demo there and nothing else).
    params : LongDemoParams
        What to generate; the default is ``demo-lv``: the demo's six people,
        one video each (:data:`.long_params.LONG_PRESETS`).

    Examples
    --------
    >>> write_long_demo(Path("data/datasets/demo-lv"))  # doctest: +SKIP
    """
    root = Path(root)
    corpus = plan_corpus(params)
    plans = [plan for _, videos in corpus for plan in videos]
    quirks = quirk_targets(plans, params)
    prepare_root(root, overwrite)
    n_written = 0
    for performer, videos in corpus:
        for plan in videos:
            folder = root / FRAMES_DIR / plan.video
            folder.mkdir(parents=True)
            for number, frame in enumerate(render_video(performer, plan, params), start=plan.first_frame):
                data = layouts.encode_frame("samm", frame, params.jpeg_quality)
                (folder / frame_file(plan.video, number)).write_bytes(data)
                n_written += 1
            log.info("demo-lv video %s written (%d frames)", plan.video, plan.n_frames)
    header_row = [*LV_PREAMBLE, LV_COLUMNS]
    layouts.write_workbook(root / LV_SHEET, "SAMM_LongVideos", [*header_row, *interval_rows(plans, quirks)])
    samm_header = [*EMOTION_PREAMBLE, layouts.SAMM_COLUMNS]
    layouts.write_workbook(root / LV_EMOTION_SHEET, "MICRO_ONLY", [*samm_header, *emotion_rows(plans, quirks)])
    (root / LV_TRUTH).write_text(json.dumps(truth_document(plans, quirks, params), indent=1) + "\n")
    write_meta(root / META_NAME, params)
    return LongDemoSummary(root, root / LV_SHEET, root / LV_EMOTION_SHEET, root / LV_TRUTH, root / META_NAME,
                           tuple(p.video for p in plans), n_written)
