"""Flow frames: every field of a per-pair flow feature, colour-coded, one item per field (SHCNN, Miao §III-C).

A clip's class is then the vote of its frames, the field ending at the apex
breaking ties (:class:`~mepipe.train.rules.FrameVote` reads
:attr:`FlowFrameDataset.apex_fields`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mepipe.featurestore.features import FLOW_FIRST_EACH, FRAME, FeatureDef
from mepipe.featurestore.views import FLOW_CODINGS, apex_field, code_flow

from .base import ClipItemsDataset, ClipReader, Clips, Standardiser, fold_sides, shuffled_loader

if TYPE_CHECKING:
    from ..fold import FoldInputs
    from ..recipe import RecipeOption, RunOptions

__all__ = ["ClipBlockSampler", "FlowFrameDataset", "FlowFrames"]


class FlowFrameDataset(ClipItemsDataset):
    """Every field of a per-pair flow feature, colour-coded, one item per field.

    Each (2, H, W) field is coded by :func:`mepipe.featurestore.views.code_flow`
    (hue = angle, HSI intensity, or HSV value, = magnitude scaled by the
    field's own maximum, Miao §III-C) and returned as a (3, H, W) float in [0, 1] before
    standardisation. The label is the clip's. :attr:`apex_fields` holds the
    field of each clip that ends at its apex frame (the vote's tie-break).

    Parameters
    ----------
    clips, samples, labels, standardiser
        See :class:`~mepipe.train.inputs.base.StoreDataset`.
    feature : str
        ``flow_first_each`` (SHCNN) or another per-pair flow feature.
    in_memory : bool
        Hold every clip's flow in RAM.
    max_magnitude : float, optional
        Fixed magnitude for full value instead of each field's maximum.
    shared : dict, optional
        In-memory arrays shared across folds (see :class:`~mepipe.train.inputs.base.ClipReader`).
    coding : {"hsi", "hsv"}
        The colour coding (:data:`mepipe.featurestore.views.FLOW_CODINGS`).
    """

    def __init__(self, clips: Clips, samples: list[str], labels: list[int], *,
                 feature: str = FLOW_FIRST_EACH.name, in_memory: bool = False,
                 standardiser: Standardiser | None = None, max_magnitude: float | None = None,
                 shared: dict | None = None, coding: str = FLOW_CODINGS[0]):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.feature = feature
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)
        self.max_magnitude, self.coding = max_magnitude, coding
        counts = [self.reader.length(s) for s in self.samples]
        self.index_items([range(n) for n in counts])
        self.apex_fields = [apex_field(self.clips.frame_numbers(s),
                                       [self.clips.value(s, "apex"), self.clips.value(s, "apex_est")], n)
                            for s, n in zip(self.samples, counts)]

    def field(self, clip: int, frame: int) -> np.ndarray:
        """One raw (2, H, W) float32 flow field."""
        return self.reader[self.samples[clip]][frame].astype(np.float32)

    def raw(self, i: int) -> np.ndarray:
        clip, frame = self.locate(i)
        return code_flow(self.field(clip, frame), self.max_magnitude, self.coding)


class ClipBlockSampler(Sampler[int]):
    """Shuffles frame items so that lazy reads hit the clip cache.

    Clips are shuffled, cut into blocks of ``clips_per_block``, and the frame
    items within a block are shuffled; every item is drawn once per epoch.
    With everything in memory a plain random permutation is as good.

    Parameters
    ----------
    dataset : FlowFrameDataset
    clips_per_block : int
        At most the reader's cache size.
    seed : int
        Each epoch advances a generator seeded once.
    """

    def __init__(self, dataset: FlowFrameDataset, clips_per_block: int = 8, seed: int = 0):
        self.dataset = dataset
        self.clips_per_block = max(1, clips_per_block)
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        n_clips = len(self.dataset.samples)
        order = self.generator.permutation(n_clips)
        for start in range(0, n_clips, self.clips_per_block):
            block = np.concatenate([self.dataset.items_of(int(c)) for c in order[start:start + self.clips_per_block]])
            yield from (int(i) for i in self.generator.permutation(block))


@dataclass(frozen=True)
class FlowFrames:
    """Item maker of :class:`FlowFrameDataset` items, standardised per channel on the fold's training frames.

    ``coding`` is the recipe option choosing the colour coding (HSI or HSV).
    Lazy training reads go clip block by clip block (:class:`ClipBlockSampler`)
    so that each clip's chunk is read once per epoch.
    """

    feature: FeatureDef = FLOW_FIRST_EACH
    center: bool = True
    coding: RecipeOption | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature.name, FRAME.name)

    def coding_of(self, options: RunOptions) -> str:
        """The run's colour coding (``coding`` option; HSI without one)."""
        return FLOW_CODINGS[0] if self.coding is None else options.choice(self.coding)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        return fold_sides(fold, partial(FlowFrameDataset, fold.clips, feature=self.feature.name,
                                        coding=self.coding_of(fold.options), **fold.io), center=self.center)

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        sampler = ClipBlockSampler(dataset, seed=fold.options.seed) if train and not fold.options.in_memory else None
        return shuffled_loader(dataset, batch_size, fold, train, sampler=sampler)
