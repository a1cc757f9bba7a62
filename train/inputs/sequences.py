"""Sequences: whole clips as sequences, and the same clips encoded by the network trained so far
(the recurrent stage of Kim and Choi).

Sequence items are read channels first, ``raw(i)`` of shape (C, T, H, W),
so that :func:`~mepipe.train.inputs.base.fit_standardiser` fits one mean and
std per channel; items hold them as (T, C, H, W), the layout the networks
take, with their true ``length`` (:class:`SequenceItem`; batches are
zero-padded to the longest).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mepipe.featurestore.features import feature_def
from mepipe.featurestore.views import middle_sequence

from ..augment import AffineAugmentParams, AugmentedEpochs, affine_augment, affine_transform, affine_variants
from ..loop import make_loader
from .base import ClipReader, Clips, OneFeature, Standardiser, StoreDataset, image
from .batches import Item, stepwise

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["AugmentedEncodings", "ClipSequenceDataset", "EncodedSequences", "FeatureSequenceDataset",
           "SequenceItem", "encode_sequences"]


@dataclass(kw_only=True)
class SequenceItem(Item):
    """A sequence (or a batch of them): ``x`` (T, ...) with its true ``length``; batches pad ``x`` with zeros.

    Attributes
    ----------
    length : int or LongTensor
        Steps of the sequence before padding.
    """

    x: torch.Tensor = stepwise()
    length: torch.Tensor | int


class ClipSequenceDataset(StoreDataset):
    """One whole clip per item, as a sequence (T, C, H, W) with its true ``length``.

    - frame-indexed images (``frames_rgb``, Kim stage 2): every frame,
      (T, C, H, W) in [0, 1];
    - landmark feature maps (``lfm`` / ``clfm``, Choi stage 2) with a
      ``window``: the middle maps, repeat-padded
      (:func:`~mepipe.featurestore.views.middle_sequence`), (window, 1, H, W) in [0, 1].
    """

    def __init__(self, clips: Clips, feature: str, samples: Sequence[str], labels: Sequence[int], *,
                 window: int | None = None, in_memory: bool = False, standardiser: Standardiser | None = None,
                 shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.images = feature_def(feature).dims[-1] == "channel"
        if not self.images and window is None:
            raise ValueError(f"ClipSequenceDataset reads {feature!r} maps in a window; give window=")
        self.feature, self.window = feature, window
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)

    def raw(self, i: int) -> np.ndarray:
        array = self.reader[self.samples[i]]
        if self.window is not None:
            array = middle_sequence(array, self.window)
        return image(array) if self.images else array[None].astype(np.float32) / 255.0

    def item(self, i: int, x: torch.Tensor, clip: int, frame: int, variant: int) -> SequenceItem:
        x = x.transpose(0, 1).contiguous()
        return SequenceItem(**vars(super().item(i, x, clip, frame, variant)), length=int(x.shape[0]))


class FeatureSequenceDataset(Dataset):
    """Per-frame feature sequences computed by a frozen stage-1 network (the input of a stage-2 LSTM).

    Parameters
    ----------
    features : list of Tensor
        One (T_i, D) float tensor per item.
    labels : sequence of int
    clips : sequence of int
        Index of each item's clip in the source dataset (augmented copies repeat it).
    """

    def __init__(self, features: list[torch.Tensor], labels: Sequence[int], clips: Sequence[int]):
        if not len(features) == len(labels) == len(clips):
            raise ValueError(f"got {len(features)} sequences, {len(labels)} labels and {len(clips)} clip indices")
        self.features = features
        self.labels = np.asarray(labels, dtype=np.int64)
        self.clips = np.asarray(clips, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> SequenceItem:
        x = self.features[i]
        return SequenceItem(x=x, y=int(self.labels[i]), clip=int(self.clips[i]), length=int(x.shape[0]))


@dataclass(frozen=True)
class EncodedSequences(OneFeature):
    """Item maker: whole clips as sequences of per-frame features of the network trained so far (frozen).

    Each clip's frames (or its middle ``window`` of maps), standardised as the
    first stage's items, go through ``model.encode``; the recurrent head
    ``model.temporal`` then gets its input scale from the training
    sequences' features (a statistic of the fold's training clips). With
    augmentation and ``epochs``, an epoch is every training sequence under
    the variants of ``grid`` it asks for, each variant applied to all the
    sequence's frames (Kim §3.1 trains the LSTM on the augmented sequences):
    :class:`AugmentedEncodings` draws them before each epoch and encodes
    each (sequence, variant) once. Without ``epochs`` (or when they are
    switched off), ``copies`` extra copies of every training sequence are
    encoded once, under random affine draws.
    """

    window: int | None = None
    copies: int = 0
    grid: AffineAugmentParams = field(default_factory=AffineAugmentParams)
    epochs: AugmentedEpochs | None = None

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        common = {"window": self.window, "standardiser": fold.statistics.standardiser, **fold.io}
        train = ClipSequenceDataset(fold.clips, self.feature.name, fold.train, fold.train_labels, **common)
        test = ClipSequenceDataset(fold.clips, self.feature.name, fold.test, fold.test_labels, **common)
        per_clip = self.epochs.per_clip(fold.options, self.grid.n_variants) if self.epochs is not None else 0
        copies = self.copies if fold.options.augment and not per_clip else 0
        encoded_train = encode_sequences(model, train, fold.device, copies=copies, seed=fold.options.seed,
                                         augment=self.grid)
        encoded_test = encode_sequences(model, test, fold.device)
        if len(encoded_train):  # a side with no training clips (predicting) keeps the scale the training fitted
            frames = torch.cat(encoded_train.features)
            model.temporal.set_input_scale(frames.mean(0), frames.std(0))
        if per_clip and len(encoded_train):
            encoded_train = AugmentedEncodings(model, train, fold.device, self.grid, per_clip, fold.options.seed)
        return encoded_train, encoded_test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, device=fold.device)


class AugmentedEncodings(Dataset):
    """Training sequences of an augmented epoch, encoded by the frozen network (see :class:`EncodedSequences`).

    Before each epoch (:meth:`start_epoch`) every sequence draws ``per_clip``
    distinct variants of the grid; a (sequence, variant) is encoded the
    first time it is drawn and kept (float16: the network is frozen, so its
    features do not change), so an epoch over the whole grid encodes it
    once. Items are those of :class:`FeatureSequenceDataset`.

    Parameters
    ----------
    model : nn.Module
        Has ``encode``; frozen.
    dataset : ClipSequenceDataset
        The training sequences.
    device : torch.device
    grid : AffineAugmentParams
    per_clip : int
        Variants per sequence and epoch.
    seed : int
    """

    def __init__(self, model: nn.Module, dataset: ClipSequenceDataset, device: torch.device,
                 grid: AffineAugmentParams, per_clip: int, seed: int = 0):
        self.model, self.dataset, self.device, self.grid = model, dataset, device, grid
        self.per_clip = per_clip
        self.labels = dataset.labels
        self.generator = np.random.default_rng(seed)
        self.cache: dict[tuple[int, int], torch.Tensor] = {}
        self.pairs: list[tuple[int, int]] = []

    def start_epoch(self, epoch: int) -> None:
        """Draw this epoch's variants of every sequence and encode the ones not seen yet."""
        n_variants = self.grid.n_variants
        self.pairs = [(clip, int(v)) for clip in range(len(self.dataset))
                      for v in self.generator.choice(n_variants, size=self.per_clip, replace=False)]
        missing = [p for p in self.pairs if p not in self.cache]
        for clip in sorted({c for c, _ in missing}):
            variants = [v for c, v in missing if c == clip]
            for v, encoded in zip(variants, _encode_variants(self.model, self.dataset[clip].x, variants,
                                                             self.grid, self.device)):
                self.cache[(clip, v)] = encoded.half()

    def __len__(self) -> int:
        return len(self.dataset) * self.per_clip

    def __getitem__(self, i: int) -> SequenceItem:
        if not self.pairs:
            raise RuntimeError("AugmentedEncodings: no epoch drawn yet (call start_epoch first)")
        clip, variant = self.pairs[i]
        x = self.cache[(clip, variant)].float()
        return SequenceItem(x=x, y=int(self.labels[clip]), clip=clip, length=int(x.shape[0]))


@torch.no_grad()
def _encode_variants(model: nn.Module, frames: torch.Tensor, variants: list[int], grid: AffineAugmentParams,
                     device: torch.device, chunk: int = 256) -> list[torch.Tensor]:
    """Per-frame features (T, D) of one sequence (T, C, H, W) under each of ``variants`` of the grid."""
    was_training = model.training
    model.to(device).eval()
    table = affine_variants(grid)
    out = []
    try:
        frames = frames.to(device)
        for v in variants:
            flip, angle, shift, scale = table[v]
            moved = affine_transform(frames[None], flip=torch.tensor([flip]), angle=torch.tensor([angle]),
                                     shift=torch.tensor([shift]), scale=torch.tensor([scale]))[0]
            out.append(torch.cat([model.encode(moved[i:i + chunk]) for i in range(0, len(moved), chunk)])
                       .float().cpu())
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def encode_sequences(model: nn.Module, dataset: ClipSequenceDataset, device: torch.device, *, copies: int = 0,
                     seed: int = 0, chunk: int = 256,
                     augment: AffineAugmentParams = AffineAugmentParams()) -> FeatureSequenceDataset:
    """Per-frame features of every sequence by the (frozen) network, plus augmented copies.

    Parameters
    ----------
    model : nn.Module
        Has ``encode(x (N, C, H, W)) -> (N, D)``; run in eval mode.
    dataset : ClipSequenceDataset
    copies : int
        Extra copies of each sequence, each under one random
        :func:`~mepipe.train.augment.affine_augment` draw.
    chunk : int
        Frames encoded per forward pass.
    """
    was_training = model.training
    model.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    features, labels, clips = [], [], []
    try:
        for clip in range(len(dataset)):
            x = dataset[clip].x.to(device)
            for copy in range(copies + 1):
                frames = x if copy == 0 else affine_augment(x[None], generator, augment)[0]
                encoded = torch.cat([model.encode(frames[i:i + chunk]) for i in range(0, len(frames), chunk)])
                features.append(encoded.float().cpu())
                labels.append(int(dataset.labels[clip]))
                clips.append(clip)
    finally:
        model.train(was_training)
    return FeatureSequenceDataset(features, labels, clips)
