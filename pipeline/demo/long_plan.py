"""The timeline of one demo long video: which events happen when, drawn from a seed.

A video is a still lead-in, then its events one after another with a gap
between each two, then a still lead-out, so its length follows from what it
holds. Events never overlap: every frame belongs to at most one event, and
the ground truth can be counted by hand. Under all of them the head drifts
slowly (:class:`Wander`). Frame numbers start at 1 and name the frame files.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .long_params import FRAME_NUMBER_LIMIT, LongDemoParams, video_id
from .motion import MACRO_CLASSES, ExpressionClass, amplitude_profile, expression_class, pose_affine
from .params import PRESETS

MICRO, MACRO, BLINK, TURN, NOD = "micro", "macro", "blink", "turn", "nod"
EVENT_KINDS = (MICRO, MACRO, BLINK, TURN, NOD)
"""Every kind of event; only micro and macro are annotated in the sheet."""
ANNOTATED_KINDS = (MICRO, MACRO)
HEAD_KINDS = (TURN, NOD)

FIRST_FRAME = 1
"""Number of a video's first frame (SAMM Long Videos numbers from 1)."""


def class_of(kind: str, emotion: str) -> ExpressionClass:
    """A micro-expression's class (the people's layout's) or a macro-expression's (:data:`.motion.MACRO_CLASSES`)."""
    return MACRO_CLASSES[emotion] if kind == MACRO else expression_class(emotion)


@dataclass(frozen=True)
class Event:
    """One event of a video; frame numbers are inclusive.

    Attributes
    ----------
    kind : str
        One of :data:`EVENT_KINDS`.
    onset, apex, release, offset : int
        Frame numbers: the event starts after ``onset`` (strength 0 there),
        reaches full strength at ``apex``, holds it to ``release`` (= ``apex``
        when it does not hold) and is over at ``offset`` (strength 0 again).
    strength : float
        At full strength: the most-moving landmark's displacement in pixels
        (micro, macro), how far the eye closes (blink, 1 = shut), or the
        signed angle in degrees (turn: positive to the image's right; nod:
        positive down).
    expression : str
        The expression's emotion (micro, macro; a class of the people's
        layout, :data:`.motion.LAYOUT_CLASSES`), else "". A macro-expression
        shows the whole expression (:data:`.motion.MACRO_CLASSES`), a
        micro-expression a fragment of it.
    name : str
        The sheet's Filename, ``<video>_<k>`` with k counting the video's
        annotated events in time order (micro, macro), else "".
    """

    kind: str
    onset: int
    apex: int
    release: int
    offset: int
    strength: float
    expression: str = ""
    name: str = ""

    @property
    def annotated(self) -> bool:
        return self.kind in ANNOTATED_KINDS

    @property
    def expression_class(self) -> ExpressionClass:
        """The motion, AUs and folds of a micro- or macro-expression (:func:`class_of`)."""
        return class_of(self.kind, self.expression)

    @property
    def n_frames(self) -> int:
        """Onset to offset, inclusive (the sheet's Duration)."""
        return self.offset - self.onset + 1

    def profile(self, first_frame: int, n_frames: int) -> np.ndarray:
        """Strength per frame index of a video starting at ``first_frame``, in [0, 1] (raised cosines)."""
        start = first_frame
        return amplitude_profile(n_frames, self.onset - start, self.apex - start, self.offset - start,
                                 self.release - start)


@dataclass(frozen=True)
class Wander:
    """The slow head drift of a video: per pose component (tx, ty in pixels, degrees), a sum of sinusoids.

    ``pose(i) = sum_j amplitude_j * sin(2 pi i / period_j + phase_j)``, about
    ``pivot`` (the subject's eye midpoint, frame pixels).
    """

    amplitudes: tuple[tuple[float, float, float], ...]
    periods: tuple[float, ...]
    phases: tuple[tuple[float, float, float], ...]
    pivot: tuple[float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator, params: LongDemoParams, pivot: np.ndarray) -> Wander:
        """Two sinusoids per component with amplitudes adding up to at most the drift bounds."""
        bound = np.array([params.drift_shift_px, params.drift_shift_px, params.drift_rotation_deg])
        shares = np.array([0.6, 0.4])
        amplitudes = [tuple(float(v) for v in share * bound * rng.uniform(0, 1, 3)) for share in shares]
        periods = [float(rng.uniform(*params.drift_period_s) * params.fps) for _ in shares]
        phases = [tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 3)) for _ in shares]
        return cls(tuple(amplitudes), tuple(periods), tuple(phases), (float(pivot[0]), float(pivot[1])))

    def pose(self, index: int) -> np.ndarray:
        """(tx, ty, degrees) at frame index ``index``."""
        pose = np.zeros(3)
        for amplitude, period, phase in zip(self.amplitudes, self.periods, self.phases):
            pose += np.asarray(amplitude) * np.sin(2 * np.pi * index / period + np.asarray(phase))
        return pose

    def affine(self, index: int) -> np.ndarray:
        """2×3 matrix taking still-face frame pixels to the drifted head's at frame index ``index``."""
        return pose_affine(self.pose(index), self.pivot)


@dataclass(frozen=True)
class VideoPlan:
    """One video: who, where its frames go, its events in time order and its drift."""

    video: str
    subject: str
    subject_number: int
    video_number: int
    n_frames: int
    events: tuple[Event, ...]
    wander: Wander
    first_frame: int = FIRST_FRAME

    @property
    def last_frame(self) -> int:
        return self.first_frame + self.n_frames - 1

    @property
    def annotated(self) -> tuple[Event, ...]:
        """The micro- and macro-expressions, the sheet's rows for this video."""
        return tuple(e for e in self.events if e.annotated)

    def first(self, kind: str) -> Event:
        """The video's earliest event of ``kind``."""
        return next(e for e in self.events if e.kind == kind)


def draw_phases(rng: np.random.Generator, *ranges: tuple[int, int]) -> list[int]:
    """One whole number of frames from each inclusive range."""
    return [int(rng.integers(low, high + 1)) for low, high in ranges]


def draw_event(rng: np.random.Generator, kind: str, onset: int, params: LongDemoParams) -> Event:
    """An event of ``kind`` starting at frame ``onset``: its phases, strength and class."""
    expression = ""
    classes = PRESETS[params.people].classes
    if kind == MICRO:
        rise, fall = draw_phases(rng, params.micro_rise, params.micro_fall)
        fall = min(fall, params.micro_max_frames - 1 - rise)
        hold = 0
        strength = float(rng.uniform(*params.micro_amplitude_px))
        expression = classes[int(rng.integers(len(classes)))]
    elif kind == MACRO:
        rise, hold, fall = draw_phases(rng, params.macro_rise, params.macro_hold, params.macro_fall)
        strength = float(rng.uniform(*params.macro_amplitude_px))
        expression = classes[int(rng.integers(len(classes)))]
    elif kind == BLINK:
        rise, hold, fall = draw_phases(rng, params.blink_close, params.blink_hold, params.blink_open)
        strength = float(rng.uniform(*params.blink_closure))
    else:
        rise, hold, fall = draw_phases(rng, params.head_rise, params.head_hold, params.head_fall)
        angle = float(rng.uniform(*(params.turn_deg if kind == TURN else params.nod_deg)))
        strength = angle if rng.random() < 0.5 else -angle
    apex = onset + rise
    return Event(kind, onset, apex, apex + hold, apex + hold + fall, strength, expression)


def draw_kinds(rng: np.random.Generator, params: LongDemoParams) -> list[str]:
    """The kinds of a video's events, in time order."""
    counts = {kind: int(rng.integers(low, high + 1)) for kind, (low, high) in (
        (MICRO, params.micro_count), (MACRO, params.macro_count), (BLINK, params.blink_count),
        ("head", params.head_count))}
    heads = [TURN if rng.random() < 0.5 else NOD for _ in range(counts.pop("head"))]
    kinds = [kind for kind, n in counts.items() for _ in range(n)] + heads
    return [kinds[i] for i in rng.permutation(len(kinds))]


def plan_video(subject: str, subject_number: int, video_number: int, pivot: np.ndarray,
               params: LongDemoParams) -> VideoPlan:
    """Draw one video's events and drift from its own generator ``(seed, subject, video, 0)``.

    ``pivot`` is the subject's eye midpoint in frame pixels (the drift's centre of rotation).
    """
    rng = np.random.default_rng([params.seed, subject_number, video_number, 0])
    video = video_id(subject, video_number)
    frame = FIRST_FRAME + int(rng.integers(params.lead_frames[0], params.lead_frames[1] + 1))
    events = []
    for kind in draw_kinds(rng, params):
        event = draw_event(rng, kind, frame, params)
        events.append(event)
        frame = event.offset + 1 + int(rng.integers(params.gap_frames[0], params.gap_frames[1] + 1))
    last = events[-1].offset + int(rng.integers(params.lead_frames[0], params.lead_frames[1] + 1))
    if last > FRAME_NUMBER_LIMIT:
        raise ValueError(f"video {video} would end at frame {last}, beyond SAMM Long Videos' four-digit frame "
                         f"numbers ({FRAME_NUMBER_LIMIT}); draw fewer or shorter events")
    numbered, k = [], 0
    for event in events:
        if event.annotated:
            k += 1
            event = replace(event, name=f"{video}_{k}")
        numbered.append(event)
    wander = Wander.draw(rng, params, pivot)
    return VideoPlan(video, subject, subject_number, video_number, last - FIRST_FRAME + 1, tuple(numbered), wander)
