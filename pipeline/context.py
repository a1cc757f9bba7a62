"""What a stage task knows about its clip: a small, picklable view of a Sample (or of a window of a long video)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .datasets.base import Sample


@dataclass(frozen=True)
class Window:
    """Frames ``start`` to ``stop`` (exclusive, 0-based positions in its video) of window ``index``."""

    index: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ClipContext:
    """The per-clip inputs of a stage task, sent to worker processes.

    ``truth`` holds the sheet's onset/apex/offset as frame *indices* into this
    clip (None where missing or flagged). ``window`` is set on the context a
    stage sees for one window of a long video (:meth:`span`): its frames are
    then the window's and the overlap after it.
    """

    sample: str
    frame_files: tuple[str, ...]
    frame_numbers: tuple[int, ...]
    video: str | None
    fps: float
    truth: tuple[int | None, int | None, int | None]
    window: Window | None = None

    @classmethod
    def of(cls, s: Sample) -> "ClipContext":
        truth = tuple(s.index_of(v) for v in (s.onset, s.apex, s.offset))
        return cls(s.sample, s.frame_files, s.frame_numbers, s.video, s.fps, truth)

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.video,) if self.video else self.frame_files

    def span(self, window: Window, stop: int) -> "ClipContext":
        """The context of positions ``window.start`` to ``stop`` of this (whole) video, for a stage on ``window``."""
        part = slice(window.start, stop)
        return replace(self, frame_files=self.frame_files[part] if self.frame_files else (),
                       frame_numbers=self.frame_numbers[part], truth=(None, None, None), window=window)
