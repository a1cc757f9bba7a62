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
- :class:`ClipArrays`: one stored array per clip (STRCN-G's onset→apex flow of the crops).
- :class:`MagnifiedFlows`: STRCN-G's onset→apex flows of the magnified clip, per α and frame subset.
- :class:`ChosenItems`: the maker a recipe option chooses.
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

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mepipe.featurestore.views import FLOW_CODINGS

from .augment import (AffineAugmentParams, AugmentedEpochs, AugmentParams, affine_augment, affine_transform,
                      affine_variants)
from .data import (AppearanceDataset, ClipArrayDataset, ClipBlockSampler, ClipReader, FlowFrameDataset,
                   MagnifiedFlowDataset, StoreDataset, VariantSampler, fit_standardiser, fold_mask)
from .loop import make_loader
from .recipe import ItemMaker, RecipeOption, RunOptions
from .sequence_data import (ClipSequenceDataset, FeatureSequenceDataset, MapDataset, NagWindowDataset,
                            StateFrameDataset, WholeClipSampler, pad_collate)

if TYPE_CHECKING:
    from .fold import FoldInputs

__all__ = ["AppearanceMatrices", "AugmentedEncodings", "ChosenItems", "ClipArrays", "EncodedSequences", "FlowFrames",
           "MagnifiedFlows", "MiddleMaps", "PairWindows", "StateFrames", "encode_sequences", "test_alpha_index"]


def _standardise(fold: FoldInputs, train: StoreDataset, test: StoreDataset, center: bool) -> None:
    """Fit the fold's standardiser on the training items (unless an earlier stage did) and apply it to both."""
    if fold.statistics.standardiser is None:
        fold.statistics.standardiser = fit_standardiser(train, center=center, seed=fold.options.seed)
    train.with_standardiser(fold.statistics.standardiser)
    test.with_standardiser(fold.statistics.standardiser)


def _loader(dataset: Dataset, batch_size: int, fold: FoldInputs, train: bool, **kwargs) -> DataLoader:
    return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, workers=fold.options.workers,
                       device=fold.device, **kwargs)


def _variant_loader(dataset: Dataset, batch_size: int, fold: FoldInputs, train: bool,
                    epochs: AugmentedEpochs | None) -> DataLoader:
    """Training batches over augmented epochs (each clip under ``per_clip`` variants of the grid) when the run
    trains them; otherwise the plain loader."""
    per_clip = epochs.per_clip(fold.options, dataset.n_variants) if train and epochs else 0
    if per_clip:
        sampler = VariantSampler(len(dataset.samples), dataset.n_variants, per_clip, seed=fold.options.seed)
        return make_loader(dataset, batch_size, sampler=sampler, workers=fold.options.workers, device=fold.device)
    return _loader(dataset, batch_size, fold, train)


@dataclass(frozen=True)
class FlowFrames:
    """Every field of a per-pair flow feature, colour-coded, one item per field (Miao §III-C).

    ``coding`` is the recipe option choosing the colour coding (HSI or HSV).

    Lazy training reads go clip block by clip block (:class:`~mepipe.train.data.ClipBlockSampler`)
    so that each clip's chunk is read once per epoch.
    """

    feature: str = "flow_first_each"
    center: bool = True
    coding: RecipeOption | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature, "frame")

    def coding_of(self, options: RunOptions) -> str:
        """The run's colour coding (``coding`` option; HSI without one)."""
        return FLOW_CODINGS[0] if self.coding is None else options.choice(self.coding)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        coding = self.coding_of(fold.options)
        train = FlowFrameDataset(fold.clips, fold.train, fold.train_labels, feature=self.feature, coding=coding,
                                 **fold.io)
        test = FlowFrameDataset(fold.clips, fold.test, fold.test_labels, feature=self.feature, coding=coding,
                                **fold.io)
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


def test_alpha_index(fold: FoldInputs) -> int:
    """Position of the store's ``magnify.test_alpha`` (Xia: 8) in its ``magnify.alphas``."""
    magnify = fold.clips.stage_params("magnify")
    return [float(a) for a in magnify["alphas"]].index(float(magnify["test_alpha"]))


@dataclass(frozen=True)
class MagnifiedFlows:
    """STRCN-G's onset→apex flows of the magnified clip (Xia §III-C2), one (2, H, W) field per item.

    Test items (and the standardisation, without centring: zero means no
    motion) are the test α's flow between the clip's onset and apex. With
    ``epochs`` (Xia §III-E), an epoch is every training clip under the
    variants of the grid it asks for: each stored α times each of the
    clip's stored frame subsets, whose (onset, apex) pair selects the field
    (:class:`~mepipe.train.data.MagnifiedFlowDataset`).
    """

    epochs: AugmentedEpochs | None = None
    center: bool = False
    reads: tuple[str, ...] = ("flow_onset_apex_magnified", "subset_pair")

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        common = {"test_alpha": test_alpha_index(fold), **fold.io}
        train = MagnifiedFlowDataset(fold.clips, fold.train, fold.train_labels, **common)
        test = MagnifiedFlowDataset(fold.clips, fold.test, fold.test_labels, **common)
        _standardise(fold, train, test, self.center)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return _variant_loader(dataset, batch_size, fold, train, self.epochs)


@dataclass(frozen=True)
class ChosenItems:
    """The item maker a recipe option chooses (STRCN-G: magnified flows per α, or one scaled flow).

    Attributes
    ----------
    option : RecipeOption
    makers : tuple of (str, ItemMaker)
        The maker of each of the option's values.
    """

    option: RecipeOption
    makers: tuple[tuple[str, ItemMaker], ...]

    @property
    def reads(self) -> tuple[str, ...]:
        """Every feature one of the makers reads."""
        return tuple(dict.fromkeys(f for _, maker in self.makers for f in maker.reads))

    def chosen(self, options: RunOptions) -> ItemMaker:
        return dict(self.makers)[options.choice(self.option)]

    def reads_for(self, options: RunOptions) -> tuple[str, ...]:
        """The features the run's maker reads."""
        return self.chosen(options).reads

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        return self.chosen(fold.options).datasets(fold, model)

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return self.chosen(fold.options).loader(dataset, batch_size, fold, train=train)


@dataclass(frozen=True)
class AppearanceMatrices:
    """STRCN-A's masked appearance matrices (Xia §III-C1), (C, d2, T) per clip.

    The mask keeps the store's ``appearance_mask.keep_fraction`` of the summed heat
    maps of the fold's training clips (``--mask fold``, leak-free) or of every
    clip with a heat map (``--mask global``, the paper's). Test items (and the
    standardisation) are the stored ``appearance_frames``. With ``epochs``
    (Xia §III-E), an epoch is every training clip under the variants of the
    grid it asks for: each stored α of ``magnified_small`` times each frame
    subset fraction, a fresh random subset per item
    (:class:`~mepipe.train.data.AppearanceDataset`). When the run augments
    without them, training items are cut from a random α's clip (and the
    objective subsamples the matrix's time columns).
    """

    center: bool = True
    reads: tuple[str, ...] = ("appearance_frames", "heatmap", "magnified_small")
    epochs: AugmentedEpochs | None = None
    keep_fractions: tuple[float, ...] = AugmentParams().keep_fractions

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
        xia = self.epochs is not None and self.epochs.active(fold.options)
        legacy = fold.options.augment and not xia
        train = AppearanceDataset(fold.clips, fold.train, fold.train_labels, mask=mask, variants=xia,
                                  keep_fractions=self.keep_fractions, seed=fold.options.seed, **fold.io)
        test = AppearanceDataset(fold.clips, fold.test, fold.test_labels, mask=mask, **fold.io)
        _standardise(fold, train, test, self.center)  # on the stored (test) alpha's matrices
        train.random_alpha = legacy
        if legacy and train.alpha_reader is None and train.n_alphas > 1:
            train.alpha_reader = ClipReader(fold.clips, "magnified_small", train.samples, **fold.io)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return _variant_loader(dataset, batch_size, fold, train, self.epochs)


@dataclass(frozen=True)
class StateFrames:
    """Kim's five expression-state frames of each clip, one item per frame (Kim §2.2.1).

    A training batch of ``batch_size`` holds that many whole clips, each with
    all its state frames, so the state terms E4/E5 see every state of the
    batch's classes. With ``epochs`` (and a run that augments), an epoch is
    every training clip under the variants of ``grid`` it asks for, and the
    five frames of a clip carry the same variant (Kim §3.1 picks the state
    frames of each augmented sequence); the objective transforms them.
    """

    feature: str = "state_frames"
    center: bool = True
    grid: AffineAugmentParams = field(default_factory=AffineAugmentParams)
    epochs: AugmentedEpochs | None = None

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
        per_clip = self.epochs.per_clip(fold.options, self.grid.n_variants) if self.epochs is not None else 0
        sampler = (VariantSampler(len(dataset.samples), self.grid.n_variants, per_clip, seed=fold.options.seed,
                                  items_per_clip=dataset.n_states) if per_clip
                   else WholeClipSampler(dataset, fold.options.seed))
        return make_loader(dataset, batch_size * dataset.n_states, sampler=sampler, workers=fold.options.workers,
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
    augmentation and ``epochs``, an epoch is every training sequence under
    the variants of ``grid`` it asks for, each variant applied to all the
    sequence's frames (Kim §3.1 trains the LSTM on the augmented sequences):
    :class:`AugmentedEncodings` draws them before each epoch and encodes
    each (sequence, variant) once. Without ``epochs`` (or when they are
    switched off), ``copies`` extra copies of every training sequence are
    encoded once, under random affine draws.
    """

    feature: str
    window: int | None = None
    copies: int = 0
    grid: AffineAugmentParams = field(default_factory=AffineAugmentParams)
    epochs: AugmentedEpochs | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature,)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        standardiser = fold.statistics.standardiser
        common = {"window": self.window, "standardiser": standardiser, **fold.io}
        train = ClipSequenceDataset(fold.clips, self.feature, fold.train, fold.train_labels, **common)
        test = ClipSequenceDataset(fold.clips, self.feature, fold.test, fold.test_labels, **common)
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
        return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, device=fold.device,
                           collate_fn=pad_collate)


class AugmentedEncodings(Dataset):
    """Training sequences of an augmented epoch, encoded by the frozen network (see :class:`EncodedSequences`).

    Before each epoch (:meth:`start_epoch`) every sequence draws ``per_clip``
    distinct variants of the grid; a (sequence, variant) is encoded the
    first time it is drawn and kept (float16: the network is frozen, so its
    features do not change), so an epoch over the whole grid encodes it
    once. Items are those of :class:`~mepipe.train.sequence_data.FeatureSequenceDataset`.

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
            for v, encoded in zip(variants, _encode_variants(self.model, self.dataset[clip]["x"], variants,
                                                             self.grid, self.device)):
                self.cache[(clip, v)] = encoded.half()

    def __len__(self) -> int:
        return len(self.dataset) * self.per_clip

    def __getitem__(self, i: int) -> dict:
        if not self.pairs:
            raise RuntimeError("AugmentedEncodings: no epoch drawn yet (call start_epoch first)")
        clip, variant = self.pairs[i]
        x = self.cache[(clip, variant)].float()
        return {"x": x, "y": int(self.labels[clip]), "clip": clip, "frame": -1, "length": int(x.shape[0])}


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

