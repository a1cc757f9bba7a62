"""Parameters of the synthetic long-video demo ``demo-lv`` (SAMM Long Videos layout).

One :class:`LongDemoParams` describes the whole corpus (it is written to
``demo.json`` beside the frames): whose faces the videos show, how many
videos, and the ranges every event of a video is drawn from. Events are the
two annotated kinds (micro- and macro-expressions) and three that no sheet
annotates but every long recording has: blinks, head turns and nods, and a
slow head drift through the whole video.

Timing is in frames at ``fps`` (200, SAMM Long Videos' rate, so 1 frame =
5 ms); ranges are ``(low, high)`` of a uniform draw, inclusive for frame
counts. MEGC's spotting challenges call an interval a micro-expression when
it lasts at most 0.5 s (offset - onset + 1 <= 100 frames here) and a
macro-expression otherwise; the defaults keep the two apart.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..datasets.samm_lv import SAMM_LV_FPS
from .layouts import subject_id
from .params import PRESETS

FORMAT_VERSION = 1
"""Version of the long-video demo's layout and generator; bump when output bytes change."""

QUIRK_KINDS = {
    "apex_unparsable": "the video's first macro-expression has its apex written -1, as SAMM Long Videos does",
    "no_emotion_label": "the video's first micro-expression is left out of the SAMM-format emotion sheet",
    "action_units_ambiguous": "the video's first micro-expression has its AU cell written with an alternative "
                              "('R12 or R14' style)",
}
"""Sheet quirks a video can be given (the :func:`~..datasets.samm_lv.read_samm_lv` quirk kind each produces)."""

FRAME_NUMBER_LIMIT = 9999
"""Largest frame number a SAMM Long Videos file name carries (``006_1_0001.jpg``: four digits)."""


def video_id(subject: str, video_number: int) -> str:
    """SAMM Long Videos' video id, ``<subject>_<n>`` (``006_1``): its folder name."""
    return f"{subject}_{video_number}"


@dataclass(frozen=True)
class LongDemoParams:
    """What the long-video demo generates and how.

    Parameters
    ----------
    seed : int
        Root seed. Each video draws its plan and its noise from generators of
        ``(seed, subject, video)``, so fewer subjects leave the others' videos
        byte-identical.
    people : str
        The short-clip demo (a key of :data:`.params.PRESETS`, SAMM layout)
        whose subjects the videos show, with its frame size, face placement,
        lighting, noise, expression classes and skin folds: subject ``001``
        of ``demo-lv`` is subject ``001`` of ``demo``, as SAMM Long Videos
        films SAMM's people.
    n_subjects, videos_per_subject : int
        Subjects (numbered from 1) and videos per subject (``<subject>_<n>``, n from 1).
    fps : float
        Frame rate [200, SAMM Long Videos'].
    jpeg_quality : int
        JPEG quality of the frames (90: about 36 kB per 384x384 frame).
    micro_count, macro_count, blink_count, head_count : tuple of int
        How many events of each kind a video has; head events are turns or nods.
    lead_frames : tuple of int
        Still frames before the first event and after the last.
    gap_frames : tuple of int
        Frames between consecutive events (events never overlap, so every
        frame belongs to at most one event and the truth is countable by hand).
    micro_rise, micro_fall : tuple of int
        Onset-to-apex and apex-to-offset frames of a micro-expression.
    micro_max_frames : int
        Longest micro-expression, onset to offset inclusive (MEGC: 0.5 s).
    micro_amplitude_px : tuple of float
        Apex displacement of a micro-expression's most-moving landmark.
    macro_rise, macro_hold, macro_fall : tuple of int
        Frames of a macro-expression's rise, its hold at full strength and its fall.
    macro_amplitude_px : tuple of float
        As ``micro_amplitude_px``, for macro-expressions (larger, as on real faces).
    fold_full_px : float
        Amplitude at which an expression's skin folds reach the people's
        ``fold_depth``; weaker expressions draw them proportionally fainter.
    blink_close, blink_hold, blink_open : tuple of int
        Frames of a blink's closing, closed and opening phases (the whole
        blink 100-150 ms; the lid opens more slowly than it closes).
    blink_closure : tuple of float
        How far the eye closes at the blink's peak (1 = shut).
    lid_travel : float
        How far the upper lid moves down at full closure, as a fraction of the eye's opening
        (the rest of the closing is the lid's skin covering the eye).
    turn_deg, nod_deg : tuple of float
        Size of a head turn (yaw) or nod (pitch); the sign is drawn too.
    head_rise, head_hold, head_fall : tuple of int
        Frames of a head event's movement away, its hold and its return.
    face_depth, nose_depth : float
        Relief of the face (an ellipsoid over it) and of the nose (a ridge
        along it), in inter-ocular distances: under a turn or nod nearer
        points move further, so the motion is not a similarity and an
        aligner removes most of it, not all.
    drift_shift_px, drift_rotation_deg : float
        Bound of the slow head drift (translation, in-plane rotation) through the whole video.
    drift_period_s : tuple of float
        Periods of the drift's two sinusoids per pose component.
    quirks : tuple of (str, str)
        ``(video, kind)`` pairs: sheet quirks to write (:data:`QUIRK_KINDS`).
    """

    seed: int = 0
    people: str = "demo"
    n_subjects: int = 6
    videos_per_subject: int = 1
    fps: float = SAMM_LV_FPS
    jpeg_quality: int = 90
    micro_count: tuple[int, int] = (1, 3)
    macro_count: tuple[int, int] = (1, 2)
    blink_count: tuple[int, int] = (2, 3)
    head_count: tuple[int, int] = (1, 2)
    lead_frames: tuple[int, int] = (30, 50)
    gap_frames: tuple[int, int] = (15, 40)
    micro_rise: tuple[int, int] = (15, 40)
    micro_fall: tuple[int, int] = (20, 55)
    micro_max_frames: int = 100
    micro_amplitude_px: tuple[float, float] = (2.5, 4.0)
    macro_rise: tuple[int, int] = (30, 60)
    macro_hold: tuple[int, int] = (15, 45)
    macro_fall: tuple[int, int] = (55, 90)
    macro_amplitude_px: tuple[float, float] = (5.0, 8.0)
    fold_full_px: float = 8.0
    blink_close: tuple[int, int] = (7, 10)
    blink_hold: tuple[int, int] = (2, 5)
    blink_open: tuple[int, int] = (10, 15)
    blink_closure: tuple[float, float] = (0.85, 1.0)
    lid_travel: float = 0.5
    turn_deg: tuple[float, float] = (1.0, 3.0)
    nod_deg: tuple[float, float] = (1.0, 3.0)
    head_rise: tuple[int, int] = (25, 50)
    head_hold: tuple[int, int] = (10, 40)
    head_fall: tuple[int, int] = (25, 50)
    face_depth: float = 0.35
    nose_depth: float = 0.3
    drift_shift_px: float = 2.5
    drift_rotation_deg: float = 1.0
    drift_period_s: tuple[float, float] = (2.0, 6.0)
    quirks: tuple[tuple[str, str], ...] = (("002_1", "apex_unparsable"), ("005_1", "no_emotion_label"))

    def __post_init__(self) -> None:
        if self.people not in PRESETS or PRESETS[self.people].layout != "samm":
            samm = [name for name, p in PRESETS.items() if p.layout == "samm"]
            raise ValueError(f"people {self.people!r} must name a SAMM-layout demo: {', '.join(samm)}")
        identities = PRESETS[self.people].identities
        if not 1 <= self.n_subjects <= len(identities):
            raise ValueError(f"n_subjects must be in 1..{len(identities)} (the people of {self.people!r}), "
                             f"got {self.n_subjects}")
        if self.videos_per_subject < 1:
            raise ValueError(f"videos_per_subject must be at least 1, got {self.videos_per_subject}")
        ranges = {name: getattr(self, name) for name in (
            "micro_count", "macro_count", "blink_count", "head_count", "lead_frames", "gap_frames", "micro_rise",
            "micro_fall", "micro_amplitude_px", "macro_rise", "macro_hold", "macro_fall", "macro_amplitude_px",
            "blink_close", "blink_hold", "blink_open", "blink_closure", "turn_deg", "nod_deg", "head_rise",
            "head_hold", "head_fall", "drift_period_s")}
        bad = [f"{name}={value}" for name, value in ranges.items() if not 0 <= value[0] <= value[1]]
        if bad:
            raise ValueError(f"ranges must be (low, high) with 0 <= low <= high: {', '.join(bad)}")
        if self.micro_count[0] < 1 or self.macro_count[0] < 1:
            raise ValueError("every video needs a micro- and a macro-expression: micro_count and macro_count "
                             f"must start at 1 or more, got {self.micro_count} and {self.macro_count}")
        shortest_phase = min(self.micro_rise[0], self.micro_fall[0], self.macro_rise[0], self.macro_fall[0],
                             self.blink_close[0], self.blink_open[0], self.head_rise[0], self.head_fall[0])
        if shortest_phase < 1:
            raise ValueError("rise, fall, close and open phases must last at least one frame")
        if self.micro_rise[1] + self.micro_fall[0] + 1 > self.micro_max_frames:
            raise ValueError(f"micro_rise {self.micro_rise} and micro_fall {self.micro_fall} cannot fit in "
                             f"micro_max_frames={self.micro_max_frames}")
        shortest_macro = self.macro_rise[0] + self.macro_hold[0] + self.macro_fall[0] + 1
        if shortest_macro <= self.micro_max_frames:
            raise ValueError(f"the shortest macro-expression ({shortest_macro} frames) must be longer than "
                             f"micro_max_frames={self.micro_max_frames}")
        if not 0 < self.lid_travel < 1 or self.blink_closure[1] > 1:
            raise ValueError(f"lid_travel must lie in (0, 1) and blink_closure at most 1, got {self.lid_travel}, "
                             f"{self.blink_closure}")
        unknown = sorted({kind for _, kind in self.quirks} - set(QUIRK_KINDS))
        if unknown:
            raise ValueError(f"unknown quirk kinds {unknown}; known: {', '.join(QUIRK_KINDS)}")
        videos = self.video_ids()
        absent = sorted({video for video, _ in self.quirks} - set(videos))
        if absent:
            raise ValueError(f"quirks name videos {absent}, which are not among the videos to generate "
                             f"({videos[0]} ... {videos[-1]}); name others or drop those quirks")

    def video_ids(self) -> list[str]:
        """Every video to generate, in writing order (subject, then video number)."""
        return [video_id(subject_id("samm", s), n) for s in range(1, self.n_subjects + 1)
                for n in range(1, self.videos_per_subject + 1)]

    def resized(self, n_subjects: int | None = None, videos_per_subject: int | None = None) -> LongDemoParams:
        """These parameters for other numbers of subjects or videos, keeping the quirks of the videos still made."""
        subjects = self.n_subjects if n_subjects is None else n_subjects
        videos = self.videos_per_subject if videos_per_subject is None else videos_per_subject
        resized = replace(self, n_subjects=subjects, videos_per_subject=videos, quirks=())
        kept = set(resized.video_ids())
        return replace(resized, quirks=tuple(q for q in self.quirks if q[0] in kept))


LONG_PRESETS: dict[str, LongDemoParams] = {
    # The demo's six people, one video each of 776-1054 frames (5,642 in all, 28 s at 200 fps): 14 micro- and 9
    # macro-expressions, 16 blinks, 10 head turns or nods, a slow drift throughout; 002_1's first macro has its
    # apex written -1 and 005_1's first micro is missing from the emotion sheet.
    "demo-lv": LongDemoParams(),
}
"""The long-video demo corpora by dataset name (``mepipe demo --dataset NAME``). Unlike :data:`.params.PRESETS`,
they show the people of a short-clip demo (``people``), as SAMM Long Videos shows SAMM's."""
