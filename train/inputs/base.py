"""What every input form shares: lazy clip reads, the per-channel standardisation, the dataset base class,
augmented-epoch sampling, and the item-maker helpers.

An input form (one module of :mod:`mepipe.train.inputs`, or beside its
network for a paper's own form) is an item maker, the dataset it builds and
the item class it returns. Its dataset reads one clip's feature through a
:class:`ClipReader` when an item is asked for (one Zarr chunk per clip),
keeping the last few clips in a small cache; ``in_memory=True`` reads every
clip once up front instead. Nothing is recomputed from video: datasets only
select and apply the read-time views of :mod:`mepipe.featurestore.views`
(colour coding, masks, windows) and standardise.

Every statistic that depends on more than one clip (the standardisation,
the STRCN-A mask) is passed in; item makers fit it on the training clips of
a fold (recording it in ``fold.statistics``), so no test clip shapes its
own input.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mepipe.featurestore import FeatureStore
from mepipe.featurestore.features import FeatureDef

from ..clips import ClipTable, MissingFeatureError
from ..loop import make_loader
from ..recipe import ItemMaker, RecipeOption, RunOptions
from .batches import Item

if TYPE_CHECKING:
    from ..augment import AugmentedEpochs
    from ..fold import FoldInputs

__all__ = ["ChosenItems", "ClipItemsDataset", "ClipReader", "Clips", "Draw", "OneFeature", "Shuffled", "Standardiser", "StoreDataset",
           "VariantSampler",
           "fit_standardiser", "fold_sides", "image", "shuffled_loader", "standardise", "variant_loader"]

Draw = tuple[int, int, int]
"""``(item, variant, seed)``: an item asked for under one variant of an augmentation grid (-1: none), with
the seed of any random draw the item makes (:class:`VariantSampler`)."""

Clips = ClipTable | FeatureStore
"""What datasets read from: a clip table, or one store (wrapped in a clip table)."""


def image(frames: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, C) frames as float32 (C, ..., H, W) in [0, 1]."""
    return np.moveaxis(frames.astype(np.float32) / 255.0, -1, 0)


class ClipReader:
    """One feature of a set of clips, read lazily (small LRU cache) or all at once.

    Parameters
    ----------
    clips : ClipTable or FeatureStore
    feature : str
    samples : sequence of str
        Clips that will be asked for; each must hold the feature.
    in_memory : bool
        Read every clip now and keep it.
    cache_clips : int
        Clips kept after a lazy read (a clip's feature is one chunk, so
        reading one frame of it reads them all).
    shared : dict, optional
        ``(feature, sample) -> array`` kept across readers with
        ``in_memory=True``, so the folds of a run read each clip once.
    """

    def __init__(self, clips: Clips, feature: str, samples: Sequence[str], *, in_memory: bool = False,
                 cache_clips: int = 16, shared: dict[tuple[str, str], np.ndarray] | None = None):
        self.clips = ClipTable.of(clips)
        missing = [s for s in samples if not self.clips.has(feature, s)]
        if missing:
            shown = ", ".join(missing[:5]) + (f" … ({len(missing)} clips)" if len(missing) > 5 else "")
            raise MissingFeatureError(f"feature {feature!r} is missing for {shown}; build it with "
                                      f"`mepipe build --features {feature}`")
        self.feature, self.in_memory = feature, in_memory
        self._cache_size = max(1, cache_clips)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._held = shared if shared is not None else {}
        if in_memory:
            for s in samples:
                if (feature, s) not in self._held:
                    self._held[(feature, s)] = self.clips.read(feature, s)

    def __getitem__(self, sample: str) -> np.ndarray:
        if self.in_memory:
            try:
                return self._held[(self.feature, sample)]
            except KeyError:
                raise KeyError(f"clip {sample!r} was not loaded for {self.feature!r}") from None
        if sample in self._cache:
            self._cache.move_to_end(sample)
            return self._cache[sample]
        array = self.clips.read(self.feature, sample)
        self._cache[sample] = array
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return array

    def length(self, sample: str) -> int:
        """Size of the clip's axis 0, without reading it when it is not held."""
        if self.in_memory:
            return int(self[sample].shape[0])
        return int(self.clips.shape(self.feature, sample)[0])

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy without the cache.
        return {**self.__dict__, "_cache": OrderedDict()}


@dataclass(frozen=True)
class Standardiser:
    """Per-channel ``(x - mean) / std`` along axis 0 of an item.

    Attributes
    ----------
    mean, std : tuple of float
        One value per channel.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (x.ndim - 1)
        mean = np.asarray(self.mean, np.float32).reshape(shape)
        std = np.asarray(self.std, np.float32).reshape(shape)
        return (x - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Sequence[float]]) -> Standardiser:
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


def fit_standardiser(dataset: StoreDataset, *, center: bool = True, max_items: int = 1024,
                     seed: int = 0) -> Standardiser:
    """Per-channel mean and std of a (training) dataset's raw items.

    Parameters
    ----------
    dataset : StoreDataset
        Built over the training clips only.
    center : bool
        False keeps a zero mean (flow: zero means no motion) and scales by
        the root mean square.
    max_items : int
        Items drawn at random (without replacement) when the dataset is larger.
    seed : int
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot fit a standardiser on an empty dataset")
    rng = np.random.default_rng(seed)
    index = rng.choice(n, size=min(n, max_items), replace=False) if n > max_items else np.arange(n)
    total = total_sq = None
    count = 0
    for i in np.sort(index):
        x = dataset.raw(int(i)).astype(np.float64)
        flat = x.reshape(x.shape[0], -1)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        total_sq = (flat ** 2).sum(1) if total_sq is None else total_sq + (flat ** 2).sum(1)
        count += flat.shape[1]
    mean = total / count if center else np.zeros_like(total)
    var = total_sq / count - mean ** 2
    std = np.sqrt(np.maximum(var, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    return Standardiser(tuple(float(v) for v in mean), tuple(float(v) for v in std))


class StoreDataset(Dataset):
    """Base: clips with integer labels; subclasses define :meth:`raw`.

    Items are :class:`~mepipe.train.inputs.batches.Item` (or the subclass a
    form's :meth:`item` returns): ``clip`` indexes :attr:`samples`,
    ``frame`` the item within its clip (a flow field, a state, a map; ``-1``
    for whole-clip items), ``variant`` the augmentation variant the item was
    asked for under (-1: none). An item is asked for by its index or by a
    :data:`Draw`; a dataset whose variants change its input (rather than an
    objective transforming the batch) overrides :meth:`raw_variant`.
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *,
                 standardiser: Standardiser | None = None):
        self.clips = ClipTable.of(clips)
        if len(samples) != len(labels):
            raise ValueError(f"got {len(samples)} clips but {len(labels)} labels")
        if len(set(samples)) != len(samples):
            raise ValueError("a clip is listed twice in the dataset")
        self.samples = [str(s) for s in samples]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.standardiser = standardiser

    def __len__(self) -> int:
        return len(self.samples)

    def locate(self, i: int) -> tuple[int, int]:
        """(clip index, item within the clip) of item ``i``."""
        return i, -1

    def raw(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def raw_variant(self, i: int, variant: int, seed: int) -> np.ndarray:
        """Item ``i``'s input under a variant (default: the variant does not change it, :meth:`raw`)."""
        return self.raw(i)

    def item(self, i: int, x: torch.Tensor, clip: int, frame: int, variant: int) -> Item:
        """Item ``i`` around its standardised input; a form whose items carry more overrides this."""
        return Item(x=x, y=int(self.labels[clip]), clip=clip, frame=frame, variant=variant)

    def __getitem__(self, i: int | Draw) -> Item:
        i, variant, seed = (int(i[0]), int(i[1]), int(i[2])) if isinstance(i, tuple) else (int(i), -1, 0)
        clip, frame = self.locate(i)
        x = (self.raw(i) if variant < 0 else self.raw_variant(i, variant, seed)).astype(np.float32, copy=False)
        if self.standardiser is not None:
            x = self.standardiser(x)
        return self.item(i, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), clip, frame, variant)

    def with_standardiser(self, standardiser: Standardiser | None) -> StoreDataset:
        self.standardiser = standardiser
        return self


class ClipItemsDataset(StoreDataset):
    """Base of forms with several items per clip (flow fields, maps): :attr:`index` holds each item's
    (clip, item within the clip), clip by clip."""

    def index_items(self, per_clip: Sequence[Sequence[int]]) -> None:
        """Set the items: ``per_clip[c]`` are clip c's items (their ``frame``), in order."""
        self.index = np.array([(c, t) for c, items in enumerate(per_clip) for t in items],
                              dtype=np.int64).reshape(-1, 2)
        self._starts = np.concatenate([[0], np.cumsum([len(items) for items in per_clip])]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, i: int) -> tuple[int, int]:
        clip, frame = self.index[i]
        return int(clip), int(frame)

    def items_of(self, clip: int) -> np.ndarray:
        """Item indices of one clip, in order."""
        return np.arange(self._starts[clip], self._starts[clip + 1])


class VariantSampler(Sampler[Draw]):
    """An augmented epoch: every clip under ``per_clip`` distinct variants of a grid, in random order.

    Papers enlarge their training sets with a grid of variants per clip (Kim:
    150 affine transforms; Xia: the store's α × frame subsets) and train
    epochs over the enlarged set (:class:`~mepipe.train.augment.AugmentedEpochs`).
    Each epoch draws, for every clip, ``per_clip`` variants out of
    ``n_variants`` without replacement, shuffles the (clip, variant) pairs
    and yields, for each, the :data:`Draw` of the clip's ``items_per_clip``
    consecutive items (Kim's five state frames stay together and share their
    variant) with a seed for the random draws an item makes (Xia's frame
    subsets), so that DataLoader workers draw as the main process would.

    Parameters
    ----------
    n_clips : int
        Clips; clip c owns items ``c * items_per_clip ..``.
    n_variants : int
        Size of the grid.
    per_clip : int
        Variants of each clip per epoch, 1..n_variants.
    items_per_clip : int
    seed : int
        Each epoch advances a generator seeded once.
    """

    def __init__(self, n_clips: int, n_variants: int, per_clip: int, *, items_per_clip: int = 1, seed: int = 0):
        if n_clips < 1 or not 1 <= per_clip <= n_variants or items_per_clip < 1:
            raise ValueError(f"need n_clips >= 1, 1 <= per_clip <= n_variants and items_per_clip >= 1, got "
                             f"{n_clips}, {per_clip}, {n_variants}, {items_per_clip}")
        self.n_clips, self.n_variants, self.per_clip = n_clips, n_variants, per_clip
        self.items_per_clip = items_per_clip
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n_clips * self.per_clip * self.items_per_clip

    def __iter__(self):
        rng = self.generator
        pairs = [(c, int(v)) for c in range(self.n_clips)
                 for v in rng.choice(self.n_variants, size=self.per_clip, replace=False)]
        seeds = rng.integers(0, 2 ** 62, size=len(pairs))
        for k in rng.permutation(len(pairs)):
            clip, variant = pairs[k]
            for j in range(self.items_per_clip):
                yield clip * self.items_per_clip + j, variant, int(seeds[k])


# --- item-maker helpers ----------------------------------------------------------------------


def fold_sides(fold: FoldInputs, build: Callable[[list[str], list[int]], StoreDataset], *,
               center: bool | None = None) -> tuple[StoreDataset, StoreDataset]:
    """A fold's training and test datasets, ``build(samples, labels)`` of each side.

    With ``center`` (True or False), both are standardised (:func:`standardise`;
    ``center=False`` keeps a zero mean).
    """
    train, test = build(fold.train, fold.train_labels), build(fold.test, fold.test_labels)
    if center is not None:
        standardise(fold, train, test, center)
    return train, test


def standardise(fold: FoldInputs, train: StoreDataset, test: StoreDataset, center: bool) -> None:
    """Standardise both sides by the fold's standardiser, fitted on ``train`` first unless an earlier stage did."""
    if fold.statistics.standardiser is None:
        fold.statistics.standardiser = fit_standardiser(train, center=center, seed=fold.options.seed)
    train.with_standardiser(fold.statistics.standardiser)
    test.with_standardiser(fold.statistics.standardiser)


def shuffled_loader(dataset: Dataset, batch_size: int, fold: FoldInputs, train: bool, **kwargs) -> DataLoader:
    """Training batches in a random order (a test side in order), with the run's workers and device."""
    return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, workers=fold.options.workers,
                       device=fold.device, **kwargs)


@dataclass(frozen=True)
class OneFeature:
    """Item-maker base of a form that reads one stored feature, ``feature`` (its definition)."""

    feature: FeatureDef

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.feature.name,)


class Shuffled:
    """Item-maker mixin: training batches in a random order, test batches in order (:func:`shuffled_loader`)."""

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return shuffled_loader(dataset, batch_size, fold, train)


def variant_loader(dataset: Dataset, batch_size: int, fold: FoldInputs, train: bool,
                   epochs: AugmentedEpochs | None) -> DataLoader:
    """Training batches over augmented epochs (each clip under ``per_clip`` variants of the dataset's grid,
    :class:`VariantSampler`) when the run trains them; otherwise :func:`shuffled_loader`."""
    per_clip = epochs.per_clip(fold.options, dataset.n_variants) if train and epochs else 0
    if per_clip:
        sampler = VariantSampler(len(dataset.samples), dataset.n_variants, per_clip, seed=fold.options.seed)
        return make_loader(dataset, batch_size, sampler=sampler, workers=fold.options.workers, device=fold.device)
    return shuffled_loader(dataset, batch_size, fold, train)


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
