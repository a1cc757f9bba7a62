"""Maps: every distinct landmark feature map of each clip's middle window, labelled with the clip's class
(Choi's first stage, §III-C)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.views import map_window

from .base import ClipItemsDataset, ClipReader, Clips, OneFeature, Shuffled, Standardiser, fold_sides

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["MapDataset", "MiddleMaps"]


class MapDataset(ClipItemsDataset):
    """Every distinct LFM/CLFM map of each clip's middle window, one item per map.

    Items are (1, H, W) float32 in [0, 1] (the stored uint8 map / 255);
    ``frame`` is the map's index within the clip.
    """

    def __init__(self, clips: Clips, feature: str, samples: list[str], labels: list[int], *,
                 length: int, in_memory: bool = False, standardiser: Standardiser | None = None,
                 shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.feature = feature
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)
        self.index_items([map_window(self.reader.length(s), length) for s in self.samples])

    def raw(self, i: int) -> np.ndarray:
        clip, frame = self.locate(i)
        return self.reader[self.samples[clip]][frame][None].astype(np.float32) / 255.0


@dataclass(frozen=True)
class MiddleMaps(OneFeature, Shuffled):
    """Item maker of :class:`MapDataset` items over the middle ``window`` maps, standardised per channel."""

    window: int
    center: bool = True

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        return fold_sides(fold, partial(MapDataset, fold.clips, self.feature.name, length=self.window, **fold.io),
                          center=self.center)
