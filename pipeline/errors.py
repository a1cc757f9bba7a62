"""The error a stage raises when one clip cannot be processed."""
from __future__ import annotations


class ClipError(Exception):
    """One clip failed at one stage; the build records it and goes on.

    The message names the sample, the stage, the file (when one is to blame)
    and the reason.
    """

    def __init__(self, reason: str, *, sample: str = "", stage: str = "", file: str = ""):
        self.reason, self.sample, self.stage, self.file = reason, sample, stage, file
        super().__init__(self.describe())

    def describe(self) -> str:
        head = ": ".join(p for p in (self.sample, self.stage) if p)
        tail = f"{self.file}: {self.reason}" if self.file else self.reason
        return f"{head}: {tail}" if head else tail

    def located(self, *, sample: str, stage: str) -> "ClipError":
        return ClipError(self.reason, sample=self.sample or sample, stage=self.stage or stage, file=self.file)
