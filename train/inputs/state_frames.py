"""State frames: Kim's five expression-state frames of each clip, one item per frame (Kim §2.2.1)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mepipe.featurestore.features import STATE_FRAMES, State

from ..augment import AffineAugmentParams, AugmentedEpochs
from ..loop import make_loader
from .base import (ClipReader, Clips, Standardiser, StoreDataset, VariantSampler, fold_sides, image,
                   shuffled_loader)
from .batches import Item

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["StateFrameDataset", "StateFrames", "StateItem", "WholeClipSampler"]


@dataclass(kw_only=True)
class StateItem(Item):
    """A state frame (or a batch of them): an :class:`~mepipe.train.inputs.batches.Item` with its expression state.

    Attributes
    ----------
    state : int or LongTensor
        The frame's :class:`~mepipe.featurestore.features.State` code (also its ``frame``).
    """

    state: torch.Tensor | int


class StateFrameDataset(StoreDataset):
    """The five expression-state frames of each clip, one item per frame.

    ``state_frames`` (5, S, S, 3) uint8 holds the onset, onset→apex,
    apex, apex→offset and offset frames (Kim §2.2.1). Item ``i`` is state
    ``i % 5`` of clip ``i // 5``, returned as (3, S, S) in [0, 1] before
    standardisation, with ``state`` = its state code and ``frame`` the same.
    """

    def __init__(self, clips: Clips, samples: list[str], labels: list[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.reader = ClipReader(self.clips, STATE_FRAMES.name, self.samples, in_memory=in_memory, shared=shared)
        self.n_states = len(State)

    def __len__(self) -> int:
        return len(self.samples) * self.n_states

    def locate(self, i: int) -> tuple[int, int]:
        return divmod(int(i), self.n_states)

    def raw(self, i: int) -> np.ndarray:
        clip, state = self.locate(i)
        return image(self.reader[self.samples[clip]][state])

    def item(self, i: int, x: torch.Tensor, clip: int, frame: int, variant: int) -> StateItem:
        return StateItem(**vars(super().item(i, x, clip, frame, variant)), state=frame)


class WholeClipSampler(Sampler[int]):
    """Clips in random order, each clip's state frames together (Kim's batches hold whole clips).

    With a batch size of k × 5 items every batch holds all five states of k
    clips, so the state terms E4/E5 always see every state of the batch's
    classes.
    """

    def __init__(self, dataset: StateFrameDataset, seed: int = 0):
        self.dataset = dataset
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        n = self.dataset.n_states
        for clip in self.generator.permutation(len(self.dataset.samples)):
            yield from range(int(clip) * n, int(clip) * n + n)


@dataclass(frozen=True)
class StateFrames:
    """Item maker of :class:`StateFrameDataset` items, batched by whole clips.

    A training batch of ``batch_size`` holds that many whole clips, each with
    all its state frames, so the state terms E4/E5 see every state of the
    batch's classes. With ``epochs`` (and a run that augments), an epoch is
    every training clip under the variants of ``grid`` it asks for, and the
    five frames of a clip carry the same variant (Kim §3.1 picks the state
    frames of each augmented sequence); the objective transforms them.
    """

    center: bool = True
    grid: AffineAugmentParams = field(default_factory=AffineAugmentParams)
    epochs: AugmentedEpochs | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        return (STATE_FRAMES.name,)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        return fold_sides(fold, partial(StateFrameDataset, fold.clips, **fold.io), center=self.center)

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        if not train:
            return shuffled_loader(dataset, batch_size, fold, False)
        per_clip = self.epochs.per_clip(fold.options, self.grid.n_variants) if self.epochs is not None else 0
        sampler = (VariantSampler(len(dataset.samples), self.grid.n_variants, per_clip, seed=fold.options.seed,
                                  items_per_clip=dataset.n_states) if per_clip
                   else WholeClipSampler(dataset, fold.options.seed))
        return make_loader(dataset, batch_size * dataset.n_states, sampler=sampler, workers=fold.options.workers,
                           device=fold.device)
