"""Magnified flows: STRCN-G's onset→apex flows of the magnified clip, per α and frame subset
(Xia §III-C2, §III-E)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mepipe.featurestore.features import FLOW_ONSET_APEX_MAGNIFIED, SUBSET_PAIR

from ..augment import AugmentedEpochs, Magnification
from .base import ClipReader, Clips, Standardiser, StoreDataset, fold_sides, variant_loader

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["MagnifiedFlowDataset", "MagnifiedFlows"]


class MagnifiedFlowDataset(StoreDataset):
    """STRCN-G input from flows of the magnified clip: one (2, H, W) field per item.

    ``flow_onset_apex_magnified`` (alpha, pair, uv, y, x) holds the
    onset→apex flow of the clip magnified with each stored α for each
    (onset, apex) pair its frame subsets give (pair 0: the clip's own);
    ``subset_pair`` (subset,) the pair of each of Xia's frame subsets. An
    item asked for by index is the test input: the test α's field of pair
    0. Under variant ``a * K + k`` (a :data:`~mepipe.train.inputs.base.Draw`)
    it is α number ``a``'s field of subset ``k``'s pair.

    Parameters
    ----------
    clips, samples, labels, in_memory, standardiser, shared
        See :class:`~mepipe.train.inputs.flow_frames.FlowFrameDataset`.
    test_alpha : int
        Position of the test α (Xia: 8) along the alpha dim.
    """

    def __init__(self, clips: Clips, samples: list[str], labels: list[int], *, test_alpha: int,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        io = {"in_memory": in_memory, "shared": shared}
        self.flows = ClipReader(self.clips, FLOW_ONSET_APEX_MAGNIFIED.name, self.samples, **io)
        self.pairs = ClipReader(self.clips, SUBSET_PAIR.name, self.samples, **io)
        self.test_alpha = int(test_alpha)
        self.n_alphas = self.n_subsets = 0
        if self.samples:
            self.n_alphas = int(self.clips.shape(FLOW_ONSET_APEX_MAGNIFIED.name, self.samples[0])[0])
            self.n_subsets = int(self.clips.shape(SUBSET_PAIR.name, self.samples[0])[0])
            if not 0 <= self.test_alpha < self.n_alphas:
                raise ValueError(f"test alpha number {self.test_alpha} is not among the {self.n_alphas} stored")

    @property
    def n_variants(self) -> int:
        """Size of Xia's grid on this store: stored α × frame subsets."""
        return self.n_alphas * self.n_subsets

    def raw(self, i: int) -> np.ndarray:
        return self.flows[self.samples[i]][self.test_alpha, 0].astype(np.float32)

    def raw_variant(self, i: int, variant: int, seed: int) -> np.ndarray:
        alpha, subset = divmod(int(variant), self.n_subsets)
        sample = self.samples[i]
        return self.flows[sample][alpha, int(self.pairs[sample][subset])].astype(np.float32)


@dataclass(frozen=True)
class MagnifiedFlows:
    """Item maker of :class:`MagnifiedFlowDataset` items.

    Test items (and the standardisation, without centring: zero means no
    motion) are the flow of the store's ``magnify.test_alpha`` between the
    clip's onset and apex. With ``epochs`` (Xia §III-E), an epoch is every
    training clip under the variants of the grid it asks for: each stored α
    times each of the clip's stored frame subsets, whose (onset, apex) pair
    selects the field.
    """

    epochs: AugmentedEpochs | None = None
    center: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        return (FLOW_ONSET_APEX_MAGNIFIED.name, SUBSET_PAIR.name)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        test_alpha = Magnification.recorded(fold.clips, "STRCN-G's magnified flows").test_index
        return fold_sides(fold, partial(MagnifiedFlowDataset, fold.clips, test_alpha=test_alpha, **fold.io),
                          center=self.center)

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return variant_loader(dataset, batch_size, fold, train, self.epochs)
