"""What a stage task knows about its clip: a small, picklable view of a Sample."""
from __future__ import annotations

from dataclasses import dataclass

from .datasets.base import Sample


@dataclass(frozen=True)
class ClipContext:
    """The per-clip inputs of a stage task, sent to worker processes.

    ``truth`` holds the sheet's onset/apex/offset as frame *indices* into this
    clip (None where missing or flagged).
    """

    sample: str
    frame_files: tuple[str, ...]
    frame_numbers: tuple[int, ...]
    video: str | None
    fps: float
    truth: tuple[int | None, int | None, int | None]

    @classmethod
    def of(cls, s: Sample) -> "ClipContext":
        truth = tuple(s.index_of(v) for v in (s.onset, s.apex, s.offset))
        return cls(s.sample, s.frame_files, s.frame_numbers, s.video, s.fps, truth)

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.video,) if self.video else self.frame_files
