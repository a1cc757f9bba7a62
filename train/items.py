"""Item makers: how a recipe's stage assembles its training and test items from store features.

Each maker names the features it reads, builds a fold's two datasets
(fitting what it needs on the training clips only and recording it in
``fold.statistics``, where a later call finds and reuses it) and batches
them. The fold runner calls a maker twice: while training, with the
fold's training side and its validation clips (or none) as the second
side; once every stage is trained, with no training side and the test
clips. Recipes combine them; the trainer
calls them without knowing which it has.

- :class:`FlowFrames`: every flow field of a clip, colour-coded (SHCNN).
- :class:`ClipArrays`: one stored array per clip (STRCN-G's onset→apex flow).
- :class:`AppearanceMatrices`: STRCN-A's masked matrices, mask per fold or global.
- :class:`StateFrames`: Kim's five expression-state frames, batched by whole clips.
- :class:`MiddleMaps`: every map of Choi's middle window.
- :class:`EncodedSequences`: whole clips encoded by the network trained so far
  (the recurrent stage of Kim and Choi).
- :class:`PairWindows`: Nag's windows of consecutive frame pairs with their flow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .augment import AffineAugmentParams, affine_augment
from .data import (AppearanceDataset, ClipArrayDataset, ClipBlockSampler, FlowFrameDataset, StoreDataset,
                   fit_standardiser, fold_mask)
from .loop import make_loader
from .sequence_data import (ClipSequenceDataset, FeatureSequenceDataset, MapDataset, NagWindowDataset,
                            StateFrameDataset, WholeClipSampler, pad_collate)

if TYPE_CHECKING:
    from .fold import FoldInputs

__all__ = ["AppearanceMatrices", "ClipArrays", "EncodedSequences", "FlowFrames", "MiddleMaps", "PairWindows",
           "StateFrames", "encode_sequences"]


def _standardise(fold: FoldInputs, train: StoreDataset, test: StoreDataset, center: bool) -> None:
    """Fit the fold's standardiser on the training items (unless an earlier stage did) and apply it to both."""
    if fold.statistics.standardiser is None:
        fold.statistics.standardiser = fit_standardiser(train, center=center, seed=fold.options.seed)
    train.with_standardiser(fold.statistics.standardiser)
    test.with_standardiser(fold.statistics.standardiser)


def _loader(dataset: Dataset, batch_size: int, fold: FoldInputs, train: bool, **kwargs) -> DataLoader:
    return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, workers=fold.options.workers,
                       device=fold.device, **kwargs)


@dataclass(frozen=True)
class FlowFrames:
    """Every field of a per-pair flow feature, colour-coded, one item per field (Miao §III-C).

    Lazy training reads go clip block by clip block (:class:`~mepipe.train.data.ClipBlockSampler`)
    so that each clip's chunk is read once per epoch.
    """

    feature: str = "flow_first_each"
    center: bool = True

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature, "frame")

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        train = FlowFrameDataset(fold.clips, fold.train, fold.train_labels, feature=self.feature, **fold.io)
        test = FlowFrameDataset(fold.clips, fold.test, fold.test_labels, feature=self.feature, **fold.io)
        _standardise(fold, train, test, self.center)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        sampler = ClipBlockSampler(dataset, seed=fold.options.seed) if train and not fold.options.in_memory else None
        return _loader(dataset, batch_size, fold, train, sampler=sampler)


@dataclass(frozen=True)
class ClipArrays:
    """One stored array per clip as the item (STRCN-G: the onset→apex flow, standardised without centring)."""

    feature: str
    center: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature,)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        train = ClipArrayDataset(fold.clips, fold.train, fold.train_labels, feature=self.feature, **fold.io)
        test = ClipArrayDataset(fold.clips, fold.test, fold.test_labels, feature=self.feature, **fold.io)
        _standardise(fold, train, test, self.center)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return _loader(dataset, batch_size, fold, train)


@dataclass(frozen=True)
class AppearanceMatrices:
    """STRCN-A's masked appearance matrices (Xia §III-C1), (C, d2, T) per clip.

    The mask keeps the store's ``appearance_mask.keep_fraction`` of the summed heat
    maps of the fold's training clips (``--mask fold``, leak-free) or of every
    clip with a heat map (``--mask global``, the paper's). With augmentation
    and several stored α, training items are cut from a random α's clip.
    """

    center: bool = True
    reads: tuple[str, ...] = ("appearance_frames", "heatmap", "magnified_small")

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        if fold.options.mask not in ("fold", "global"):
            raise ValueError(f"mask must be 'fold' or 'global', got {fold.options.mask!r}")
        if fold.statistics.mask is None:  # fitted once per fold, on its training side (or all clips)
            clips = tuple(fold.train) if fold.options.mask == "fold" else tuple(
                s for s in fold.clips.ids if fold.clips.has("heatmap", s))
            fold.statistics.mask = fold_mask(fold.clips, clips,
                                             fold.clips.stage_params("appearance_mask")["keep_fraction"])
            fold.statistics.mask_clips = clips
        mask = fold.statistics.mask
        train = AppearanceDataset(fold.clips, fold.train, fold.train_labels, mask=mask,
                                  random_alpha=fold.options.augment, seed=fold.options.seed, **fold.io)
        test = AppearanceDataset(fold.clips, fold.test, fold.test_labels, mask=mask, **fold.io)
        train.random_alpha = False  # the standardisation is fitted on the stored alpha's matrices
        _standardise(fold, train, test, self.center)
        train.random_alpha = fold.options.augment
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return _loader(dataset, batch_size, fold, train)


@dataclass(frozen=True)
class StateFrames:
    """Kim's five expression-state frames of each clip, one item per frame (Kim §2.2.1).

    A training batch of ``batch_size`` holds that many whole clips, each with
    all its state frames, so the state terms E4/E5 see every state of the
    batch's classes.
    """

    feature: str = "state_frames"
    center: bool = True

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature,)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        train = StateFrameDataset(fold.clips, fold.train, fold.train_labels, **fold.io)
        test = StateFrameDataset(fold.clips, fold.test, fold.test_labels, **fold.io)
        _standardise(fold, train, test, self.center)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        if not train:
            return _loader(dataset, batch_size, fold, False)
        return make_loader(dataset, batch_size * dataset.n_states,
                           sampler=WholeClipSampler(dataset, fold.options.seed), workers=fold.options.workers,
                           device=fold.device)


@dataclass(frozen=True)
class MiddleMaps:
    """Every distinct map of each clip's middle window, labelled with the clip's class (Choi §III-C)."""

    feature: str
    window: int
    center: bool = True

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature,)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        train = MapDataset(fold.clips, self.feature, fold.train, fold.train_labels, length=self.window, **fold.io)
        test = MapDataset(fold.clips, self.feature, fold.test, fold.test_labels, length=self.window, **fold.io)
        _standardise(fold, train, test, self.center)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return _loader(dataset, batch_size, fold, train)


@dataclass(frozen=True)
class EncodedSequences:
    """Whole clips as sequences of per-frame features of the network trained so far (frozen).

    Each clip's frames (or its middle ``window`` of maps), standardised as the
    first stage's items, go through ``model.encode``; the recurrent head
    ``model.temporal`` then gets its input scale from the training
    sequences' features (a statistic of the fold's training clips). With
    augmentation, ``copies`` extra copies of every training sequence are
    encoded under random affine draws (Kim §3.1 trains the LSTM on augmented
    sequences).
    """

    feature: str
    window: int | None = None
    copies: int = 0
    augment: AffineAugmentParams = field(default_factory=AffineAugmentParams)

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature,)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        standardiser = fold.statistics.standardiser
        common = {"window": self.window, "standardiser": standardiser, **fold.io}
        train = ClipSequenceDataset(fold.clips, self.feature, fold.train, fold.train_labels, **common)
        test = ClipSequenceDataset(fold.clips, self.feature, fold.test, fold.test_labels, **common)
        copies = self.copies if fold.options.augment else 0
        encoded_train = encode_sequences(model, train, fold.device, copies=copies, seed=fold.options.seed,
                                         augment=self.augment)
        encoded_test = encode_sequences(model, test, fold.device)
        if len(encoded_train):  # a side with no training clips (predicting) keeps the scale the training fitted
            frames = torch.cat(encoded_train.features)
            model.temporal.set_input_scale(frames.mean(0), frames.std(0))
        return encoded_train, encoded_test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, device=fold.device,
                           collate_fn=pad_collate)


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
            x = dataset[clip]["x"].to(device)
            for copy in range(copies + 1):
                frames = x if copy == 0 else affine_augment(x[None], generator, augment)[0]
                encoded = torch.cat([model.encode(frames[i:i + chunk]) for i in range(0, len(frames), chunk)])
                features.append(encoded.float().cpu())
                labels.append(int(dataset.labels[clip]))
                clips.append(clip)
    finally:
        model.train(was_training)
    return FeatureSequenceDataset(features, labels, clips)


@dataclass(frozen=True)
class PairWindows:
    """Windows of consecutive frame pairs with their flow and per-frame target (Nag §2).

    Training items are windows of ``window`` steps every ``stride`` steps;
    test items are whole clips (one sequence each).
    """

    window: int
    stride: int = 1
    frames: str = "frames_rgb"
    flow: str = "flow_consecutive"
    target: str = "intensity"
    center: bool = True

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.frames, self.flow, self.target, "frame")

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        names = {"frames": self.frames, "flow": self.flow, "target": self.target}
        train = NagWindowDataset(fold.clips, fold.train, fold.train_labels, window=self.window, stride=self.stride,
                                 **names, **fold.io)
        test = NagWindowDataset(fold.clips, fold.test, fold.test_labels, window=None, **names, **fold.io)
        _standardise(fold, train, test, self.center)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return _loader(dataset, batch_size, fold, train, collate_fn=pad_collate)

