"""Clip arrays: one stored array per clip as the item (STRCN-G's onset→apex flow of the crops)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.features import FLOW_ONSET_APEX

from .base import ClipReader, Clips, OneFeature, Shuffled, Standardiser, StoreDataset, fold_sides

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["ClipArrayDataset", "ClipArrays"]


class ClipArrayDataset(StoreDataset):
    """One stored array per clip as the item, as float32 (STRCN-G: ``flow_onset_apex``, (2, H, W)).

    Parameters are those of :class:`~mepipe.train.inputs.flow_frames.FlowFrameDataset`
    (without ``max_magnitude``).
    """

    def __init__(self, clips: Clips, samples: list[str], labels: list[int], *,
                 feature: str = FLOW_ONSET_APEX.name, in_memory: bool = False,
                 standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.feature = feature
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)

    def raw(self, i: int) -> np.ndarray:
        return self.reader[self.samples[i]].astype(np.float32)


@dataclass(frozen=True)
class ClipArrays(OneFeature, Shuffled):
    """Item maker of :class:`ClipArrayDataset` items (STRCN-G: standardised without centring, zero = no motion)."""

    center: bool = False

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        return fold_sides(fold, partial(ClipArrayDataset, fold.clips, feature=self.feature.name, **fold.io),
                          center=self.center)
