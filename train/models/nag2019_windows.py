"""Nag's input form: windows of consecutive frame pairs with their flow and per-frame intensity (Nag §2).

Beside :mod:`mepipe.train.models.nag2019` because only that network reads
it. Training items are windows of a fixed number of steps; test items are
whole clips (one sequence per run of consecutive frames).

References
----------
.. [1] S. Nag, A. K. Bhunia, A. Konwer, P. P. Roy, "Facial micro-expression
   spotting and recognition using time contrasted feature with visual
   memory", ICASSP 2019; arXiv:1902.03514. https://doi.org/10.48550/arXiv.1902.03514
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.errors import DataError
from mepipe.featurestore.features import FLOW_CONSECUTIVE, FRAME, FRAMES_RGB, INTENSITY, FeatureDef
from mepipe.featurestore.views import consecutive_runs, onset_offset_span, step_windows

from ..inputs.base import ClipReader, Clips, Shuffled, Standardiser, StoreDataset, image, standardise
from ..inputs.batches import stepwise
from ..inputs.sequences import SequenceItem

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["NagWindowDataset", "PairWindows", "WindowItem"]


@dataclass(kw_only=True)
class WindowItem(SequenceItem):
    """A window of frame pairs (or a batch of them) with the per-step targets of the frames the steps end at.

    Attributes
    ----------
    intensity : Tensor, float32, (L,)
        The store's intensity of each step's second frame (the regression target).
    span : Tensor, float32, (L,)
        1 where that frame lies in the sheet's onset..offset (spotting ground truth).
    """

    intensity: torch.Tensor = stepwise()
    span: torch.Tensor = stepwise()


class NagWindowDataset(StoreDataset):
    """Windows of L consecutive frame pairs with their flow and intensity.

    Step ``k`` of a window starting at pair ``s`` holds frame ``s + k``
    (channels 0–2), frame ``s + k + 1`` (3–5), both in [0, 1], and the
    ``flow_consecutive`` field between them (6–7, pixels), so an item is
    (L, 8, H, W) after standardisation, a :class:`WindowItem`.

    Windows never cross a gap in the clip's frame numbers (a frame missing
    from the source, whose flow the store leaves NaN): they are cut within
    each run of consecutive frames (:func:`~mepipe.featurestore.views.consecutive_runs`),
    and with ``window=None`` each run is one item. A run of one frame has
    no pair and gives no item; a clip with no pair at all is refused.

    Parameters
    ----------
    clips, samples, labels, in_memory, standardiser, shared
        See :class:`~mepipe.train.inputs.base.StoreDataset`.
    window : int or None
        Steps per item (Nag: 14). None makes one item of every clip's whole
        sequence (testing); clips shorter than ``window`` give one shorter item.
    stride : int
        Steps between the starts of consecutive training windows.
    frames, flow, target : str
        The features read: frames, the flow between consecutive frames, and
        the per-frame regression target.
    """

    def __init__(self, clips: Clips, samples: list[str], labels: list[int], *,
                 window: int | None, stride: int = 1, in_memory: bool = False,
                 standardiser: Standardiser | None = None, shared: dict | None = None,
                 frames: str = FRAMES_RGB.name, flow: str = FLOW_CONSECUTIVE.name, target: str = INTENSITY.name):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        io = {"in_memory": in_memory, "shared": shared}
        self.frames = ClipReader(self.clips, frames, self.samples, **io)
        self.flow = ClipReader(self.clips, flow, self.samples, **io)
        self.intensity = ClipReader(self.clips, target, self.samples, **io)
        self.window = window
        self.spans = [onset_offset_span(self.clips.frame_numbers(s), self.clips.value(s, "onset"),
                                        self.clips.value(s, "offset")) for s in self.samples]
        windows = []
        for c, s in enumerate(self.samples):
            n_pairs, n_frames = self.flow.length(s), self.frames.length(s)
            if n_pairs + 1 != n_frames:
                raise ValueError(f"clip {s!r} has {n_frames} {frames} but {n_pairs} {flow} fields "
                                 "(expected one fewer)")
            runs = [(a, b) for a, b in consecutive_runs(self.clips.frame_numbers(s)) if b > a]
            if not runs:
                raise DataError(f"clip {s!r} has no two consecutive frame numbers, so no {flow} pair to train on")
            windows += [(c, first + start, length) for first, last in runs
                        for start, length in step_windows(last - first, window, stride)]
        self.windows = np.array(windows, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.windows)

    def locate(self, i: int) -> tuple[int, int]:
        clip, start, _ = self.windows[i]
        return int(clip), int(start)

    def raw(self, i: int) -> np.ndarray:
        clip, start, length = (int(v) for v in self.windows[i])
        sample = self.samples[clip]
        frames = image(self.frames[sample][start:start + length + 1])
        flow = np.moveaxis(self.flow[sample][start:start + length].astype(np.float32), 1, 0)
        return np.concatenate([frames[:, :-1], frames[:, 1:], flow], axis=0)

    def targets(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(intensity, span) of the frames each step of item ``i`` ends at, (L,) float32 each."""
        clip, start, length = (int(v) for v in self.windows[i])
        sample = self.samples[clip]
        stop = start + length + 1
        return (self.intensity[sample][start + 1:stop].astype(np.float32),
                self.spans[clip][start + 1:stop].astype(np.float32))

    def item(self, i: int, x: torch.Tensor, clip: int, frame: int, variant: int) -> WindowItem:
        x = x.transpose(0, 1).contiguous()
        intensity, span = self.targets(i)
        return WindowItem(**vars(super().item(i, x, clip, frame, variant)), length=int(x.shape[0]),
                          intensity=torch.from_numpy(intensity), span=torch.from_numpy(span))


@dataclass(frozen=True)
class PairWindows(Shuffled):
    """Item maker of :class:`NagWindowDataset` items: training windows of ``window`` steps every ``stride``
    steps, whole clips to test, standardised per channel on the training windows."""

    window: int
    stride: int = 1
    frames: FeatureDef = FRAMES_RGB
    flow: FeatureDef = FLOW_CONSECUTIVE
    target: FeatureDef = INTENSITY
    center: bool = True

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.frames.name, self.flow.name, self.target.name, FRAME.name)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        names = {"frames": self.frames.name, "flow": self.flow.name, "target": self.target.name}
        train = NagWindowDataset(fold.clips, fold.train, fold.train_labels, window=self.window, stride=self.stride,
                                 **names, **fold.io)
        test = NagWindowDataset(fold.clips, fold.test, fold.test_labels, window=None, **names, **fold.io)
        standardise(fold, train, test, self.center)
        return train, test
