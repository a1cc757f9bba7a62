"""Long videos, window by window: how a stage declares its per-window form, and how a video is cut.

A long video (SAMM Long Videos: up to 20,000 frames of 2040x1088) is never
decoded or held whole. Its frames are cut into windows of
:attr:`WindowParams.frames` consecutive frames; every stored array of the
video is chunked along its frame (or pair) dim at that length, so a window of
a stage is exactly one chunk of each of its outputs, written once, and a
reader of a stretch of frames touches only its chunks. A stage runs on a
video as one task per window (STYLE §22; like ``dask.array.map_overlap``,
each window sees the frames after it that its stage declares it needs).

A stage opts in with ``register_stage(..., window=Windowed(...))``: by
default its clip kernel runs on each window as if the window were a clip
(the context's frames are the window's, plus the declared overlap); a stage
whose clip form reads what a video has not (apex states) declares other
reads, inputs, writes or a kernel of its own for windows. Stages without a
``window`` are not built on long videos.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mepipe.featurestore.features import FeatureDef

from ..context import Window

WINDOW = "window"
"""Name of the window parameters (:class:`WindowParams`): not a stage, they enter the key of every stage run on
long videos."""

SOURCE_VIDEO = "source_video"
"""Key of the whole video's frames (a :class:`~.frames.VideoFrames`, decoded on demand) in the inputs of a
windowed stage that reads sources, beside the window's decoded frames: what a window needs from elsewhere in its
video (align: the reference frame) it reads from there."""

UNITS = ("clip", "video")
"""What a store's samples are: annotated clips, or whole long videos (store attribute ``unit``)."""


@dataclass(frozen=True)
class WindowParams:
    """How long videos are cut into windows: the unit of their build and the chunk of their stored arrays.

    Attributes
    ----------
    frames : int
        Frames per window, and the chunk length along the frame (or pair)
        dim of every array stored for a long video. Part of every video
        stage's key: landmark tracking starts afresh at each window and head
        motion is smoothed within it. Bounds a build's memory (a window of
        2040x1088 grey frames is 570 MB at 256).
    """

    frames: int = 256

    def __post_init__(self):
        if not (isinstance(self.frames, int) and self.frames >= 2):
            raise ValueError(f"WindowParams.frames must be an int >= 2, got {self.frames!r}")


def cut(n_frames: int, frames: int) -> list[Window]:
    """The windows of a video of ``n_frames`` frames, ``frames`` long (the last one may be shorter)."""
    return [Window(i, start, min(start + frames, n_frames)) for i, start in enumerate(range(0, n_frames, frames))]


def windows_touching(start: int, stop: int, frames: int) -> range:
    """Indices of the windows of length ``frames`` holding positions ``start`` to ``stop`` (exclusive)."""
    return range(start // frames, (max(stop, start + 1) - 1) // frames + 1)


def merge_events(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A video's events from its windows': a value every window agrees on is kept, others are listed per window."""
    keys = list(dict.fromkeys(k for e in events for k in e))
    out: dict[str, Any] = {}
    for k in keys:
        values = [e.get(k) for e in events]
        out[k] = values[0] if all(v == values[0] for v in values) else values
    return out


@dataclass(frozen=True)
class Windowed:
    """A stage's form on long videos (``register_stage(..., window=Windowed(...))``).

    Attributes
    ----------
    kernel : callable, optional
        ``kernel(ctx, inputs, params, read) -> StageOutput`` for one window:
        ``ctx`` is a :class:`~mepipe.pipeline.context.ClipContext` of the
        window's frames and the ``after`` frames that follow (its ``window``
        says which are the window's), ``inputs`` the declared inputs over
        those frames (plus the decoded frames under ``SOURCE_FRAMES`` and the
        whole video under :data:`SOURCE_VIDEO` if the stage reads sources).
        It returns the window's rows of every output. Default: the stage's
        clip kernel, which then sees the window as a clip.
    reads, inputs, writes : tuple, optional
        The stage's declarations on videos, where they differ from its clip
        form's (Kim's stage writes only ``frames_rgb`` there: a video has no
        expression states).
    after : int or callable (params, fps) -> int
        Frames after the window that its inputs must cover (a flow from t to
        t + k needs k).
    shorter_by : int
        The outputs' leading dim has this many entries fewer than the video
        has frames (consecutive-frame flows: 1, one field per pair).
    combine : callable, optional
        The video's events from the windows' (``list[dict] -> dict``);
        default :func:`merge_events`.
    defaults : mapping
        Parameter values that differ on long videos (align: crops of 128
        pixels, the spotting baselines' size, instead of 256); a config's
        values override them, as any default.
    """

    kernel: Callable[..., Any] | None = None
    reads: tuple[str, ...] | None = None
    inputs: tuple[FeatureDef, ...] | None = None
    writes: tuple[FeatureDef, ...] | None = None
    after: int | Callable[[Any, float], int] = 0
    shorter_by: int = 0
    combine: Callable[[list[dict]], dict] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def overlap(self, params: Any, fps: float) -> int:
        """Frames after each window its inputs need, under the stage's parameters and the video's rate."""
        return int(self.after(params, fps) if callable(self.after) else self.after)

    def rows(self, n_frames: int, window: Window) -> int:
        """Rows of the outputs that ``window`` of a video of ``n_frames`` frames writes (0 when it starts past
        them: the one-frame last window of a consecutive-pair flow)."""
        return max(0, min(window.stop, n_frames - self.shorter_by) - window.start)

    def events(self, per_window: list[dict]) -> dict[str, Any]:
        """The video's events, from its windows' in window order."""
        return (self.combine or merge_events)(per_window)
