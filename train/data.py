"""Torch datasets over stored features: coded flow frames, whole-clip arrays, appearance matrices.

Each dataset reads one clip's feature through a :class:`~mepipe.train.clips.ClipTable`
when an item is asked for (one Zarr chunk per clip), keeping the last few
clips in a small cache; ``in_memory=True`` reads every clip once up front
instead. Nothing is recomputed from video: the datasets only select and
apply the read-time views of :mod:`mepipe.featurestore.views` (colour
coding, masks, windows) and standardise.

Every statistic that depends on more than one clip (the standardisation,
the STRCN-A mask) is passed in; the item makers of :mod:`mepipe.train.items`
fit it on the training clips of a fold, so no test clip shapes its own input.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mepipe.featurestore import FeatureStore
from mepipe.featurestore.views import (FLOW_CODINGS, apex_field, appearance_matrix, build_mask, code_flow,
                                       time_normalise)

from .augment import draw_frame_subset
from .clips import ClipTable, MissingFeatureError

__all__ = ["AppearanceDataset", "ClipArrayDataset", "ClipBlockSampler", "ClipReader", "Draw", "FlowFrameDataset",
           "MagnifiedFlowDataset", "Standardiser", "StoreDataset", "VariantSampler", "fit_standardiser", "fold_mask"]

Draw = tuple[int, int, int]
"""``(item, variant, seed)``: an item asked for under one variant of an augmentation grid (-1: none), with
the seed of any random draw the item makes (:class:`VariantSampler`)."""

Clips = ClipTable | FeatureStore
"""What datasets read from: a clip table, or one store (wrapped in a clip table)."""


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

    Items are dicts ``{"x": float32 tensor, "y": int64, "clip": int, "frame": int, "variant": int}``:
    ``clip`` indexes :attr:`samples`, ``frame`` the item within its clip
    (a flow field, a state, a map; ``-1`` for whole-clip items), ``variant``
    the augmentation variant the item was asked for under (-1: none). An
    item is asked for by its index or by a :data:`Draw`; a dataset whose
    variants change its input (rather than an objective transforming the
    batch) overrides :meth:`raw_variant`.
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

    def __getitem__(self, i: int | Draw) -> dict[str, Any]:
        i, variant, seed = (int(i[0]), int(i[1]), int(i[2])) if isinstance(i, tuple) else (int(i), -1, 0)
        clip, frame = self.locate(i)
        x = (self.raw(i) if variant < 0 else self.raw_variant(i, variant, seed)).astype(np.float32, copy=False)
        if self.standardiser is not None:
            x = self.standardiser(x)
        return {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                "y": int(self.labels[clip]), "clip": clip, "frame": frame, "variant": variant}

    def with_standardiser(self, standardiser: Standardiser | None) -> StoreDataset:
        self.standardiser = standardiser
        return self


class FlowFrameDataset(StoreDataset):
    """SHCNN input: every field of a per-pair flow feature, colour-coded, one item per field.

    Each (2, H, W) field is coded by :func:`mepipe.featurestore.views.code_flow`
    (hue = angle, HSI intensity, or HSV value, = magnitude scaled by the
    field's own maximum, Miao §III-C) and returned as a (3, H, W) float in [0, 1] before
    standardisation. The label is the clip's. :attr:`apex_fields` holds the
    field of each clip that ends at its apex frame (the vote's tie-break).

    Parameters
    ----------
    clips, samples, labels, standardiser
        See :class:`StoreDataset`.
    feature : str
        ``flow_first_each`` (SHCNN) or another per-pair flow feature.
    in_memory : bool
        Hold every clip's flow in RAM.
    max_magnitude : float, optional
        Fixed magnitude for full value instead of each field's maximum.
    shared : dict, optional
        In-memory arrays shared across folds (see :class:`ClipReader`).
    coding : {"hsi", "hsv"}
        The colour coding (:data:`mepipe.featurestore.views.FLOW_CODINGS`).
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *,
                 feature: str = "flow_first_each", in_memory: bool = False,
                 standardiser: Standardiser | None = None, max_magnitude: float | None = None,
                 shared: dict | None = None, coding: str = FLOW_CODINGS[0]):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.feature = feature
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)
        self.max_magnitude, self.coding = max_magnitude, coding
        counts = [self.reader.length(s) for s in self.samples]
        self.index = np.array([(c, t) for c, n in enumerate(counts) for t in range(n)], dtype=np.int64).reshape(-1, 2)
        self.field_counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.apex_fields = [apex_field(self.clips.frame_numbers(s),
                                       [self.clips.value(s, "apex"), self.clips.value(s, "apex_est")], n)
                            for s, n in zip(self.samples, counts)]

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, i: int) -> tuple[int, int]:
        clip, frame = self.index[i]
        return int(clip), int(frame)

    def items_of(self, clip: int) -> np.ndarray:
        """Item indices of one clip's fields, in field order."""
        return np.arange(self._starts[clip], self._starts[clip + 1])

    def field(self, clip: int, frame: int) -> np.ndarray:
        """One raw (2, H, W) float32 flow field."""
        return self.reader[self.samples[clip]][frame].astype(np.float32)

    def raw(self, i: int) -> np.ndarray:
        clip, frame = self.locate(i)
        return code_flow(self.field(clip, frame), self.max_magnitude, self.coding)


class ClipArrayDataset(StoreDataset):
    """One stored array per clip as the item, as float32 (STRCN-G: ``flow_onset_apex``, (2, H, W)).

    Parameters are those of :class:`FlowFrameDataset` (without ``max_magnitude``).
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *,
                 feature: str = "flow_onset_apex", in_memory: bool = False,
                 standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.feature = feature
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)

    def raw(self, i: int) -> np.ndarray:
        return self.reader[self.samples[i]].astype(np.float32)


class MagnifiedFlowDataset(StoreDataset):
    """STRCN-G input from flows of the magnified clip (Xia §III-C2, §III-E): one (2, H, W) field per item.

    ``flow_onset_apex_magnified`` (alpha, pair, uv, y, x) holds the
    onset→apex flow of the clip magnified with each stored α for each
    (onset, apex) pair its frame subsets give (pair 0: the clip's own);
    ``subset_pair`` (subset,) the pair of each of Xia's frame subsets. An
    item asked for by index is the test input: the test α's field of pair
    0. Under variant ``a * K + k`` (:data:`Draw`) it is α number ``a``'s
    field of subset ``k``'s pair.

    Parameters
    ----------
    clips, samples, labels, in_memory, standardiser, shared
        See :class:`FlowFrameDataset`.
    test_alpha : int
        Position of the test α (Xia: 8) along the alpha dim.
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *, test_alpha: int,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        io = {"in_memory": in_memory, "shared": shared}
        self.flows = ClipReader(self.clips, "flow_onset_apex_magnified", self.samples, **io)
        self.pairs = ClipReader(self.clips, "subset_pair", self.samples, **io)
        self.test_alpha = int(test_alpha)
        self.n_alphas = self.n_subsets = 0
        if self.samples:
            self.n_alphas = int(self.clips.shape("flow_onset_apex_magnified", self.samples[0])[0])
            self.n_subsets = int(self.clips.shape("subset_pair", self.samples[0])[0])
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


class AppearanceDataset(StoreDataset):
    """STRCN-A input: masked appearance matrix of each clip, as a (C, d2, T) float32 image.

    The matrix is :func:`~mepipe.featurestore.views.appearance_matrix` of the
    stored ``appearance_frames`` (magnified clip, time-normalised to T frames)
    under ``mask``, transposed so that the masked pixels run down the rows
    and time across the columns (Xia §III-C1).

    Under a variant (a :data:`Draw`), the item is Xia's augmentation (§III-E):
    variant ``a * K + k`` takes the clip magnified with the store's α number
    ``a`` (``magnified_small``), keeps a random subset of its frames of the
    fraction ``keep_fractions[k]`` (drawn with the draw's seed,
    :func:`~mepipe.train.augment.draw_frame_subset`) and time-normalises
    the kept frames to T. :attr:`n_variants` is the grid's size.

    Parameters
    ----------
    clips, samples, labels, standardiser
        See :class:`StoreDataset`.
    mask : ndarray, shape (H, W), bool
        From :func:`fold_mask` (built from the training clips of the fold).
    in_memory : bool
    random_alpha : bool
        Items asked for by index are cut from a random α's clip (the
        augmentation before issue 14, ``--recipe-option augmentation=columns``);
        without several stored α it does nothing.
    keep_fractions : tuple of float
        Xia's frame-subset fractions (100 .. 60 %).
    seed : int
        Seed of the random α choice.
    shared : dict, optional
        In-memory arrays shared across folds (see :class:`ClipReader`).
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *, mask: np.ndarray,
                 in_memory: bool = False, standardiser: Standardiser | None = None, random_alpha: bool = False,
                 keep_fractions: Sequence[float] = (1.0, 0.9, 0.8, 0.7, 0.6), seed: int = 0,
                 shared: dict | None = None, variants: bool = False):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        io = {"in_memory": in_memory, "shared": shared}
        self.reader = ClipReader(self.clips, "appearance_frames", self.samples, **io)
        self.mask = np.asarray(mask, dtype=bool)
        self.n_alphas = 0
        if self.samples:
            shape = self.clips.shape("appearance_frames", self.samples[0])
            if tuple(shape[1:3]) != self.mask.shape:
                raise ValueError(f"mask shape {self.mask.shape} does not match appearance_frames {shape[1:3]} "
                                 f"of clip {self.samples[0]!r}")
            self.n_time = int(shape[0])
            self.n_alphas = int(self.clips.shape("magnified_small", self.samples[0])[1])
        self.keep_fractions = tuple(float(f) for f in keep_fractions)
        self.random_alpha = random_alpha
        self._rng = np.random.default_rng(seed)
        self.alpha_reader = None
        if (variants or (random_alpha and self.n_alphas > 1)) and self.samples:
            self.alpha_reader = ClipReader(self.clips, "magnified_small", self.samples, **io)

    @property
    def n_variants(self) -> int:
        """Size of Xia's grid on this store: stored α × frame-subset fractions."""
        return self.n_alphas * len(self.keep_fractions)

    def raw(self, i: int) -> np.ndarray:
        sample = self.samples[i]
        if self.random_alpha and self.alpha_reader is not None:
            clips = self.alpha_reader[sample]
            alpha = int(self._rng.integers(clips.shape[1]))
            frames = time_normalise(clips[:, alpha], self.n_time)
        else:
            frames = self.reader[sample].astype(np.float32)
        return appearance_matrix(frames, self.mask, self.n_time).transpose(2, 0, 1)

    def raw_variant(self, i: int, variant: int, seed: int) -> np.ndarray:
        if self.alpha_reader is None:
            raise ValueError("AppearanceDataset: variants need variants=True (the magnified_small reader)")
        alpha, level = divmod(int(variant), len(self.keep_fractions))
        clip = self.alpha_reader[self.samples[i]][:, alpha]
        kept = draw_frame_subset(len(clip), self.keep_fractions[level], np.random.default_rng(seed))
        return appearance_matrix(clip[kept], self.mask, self.n_time).transpose(2, 0, 1)


def fold_mask(clips: Clips, samples: Sequence[str], keep_fraction: float) -> np.ndarray:
    """STRCN-A mask from the heat maps of ``samples`` (a fold's training clips, or all clips).

    Parameters
    ----------
    clips : ClipTable or FeatureStore
    samples : sequence of str
        Clips whose ``heatmap`` is summed; never a test clip of the fold.
    keep_fraction : float
        Fraction p of pixels kept (the store's ``appearance_mask.keep_fraction``).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    if not samples:
        raise ValueError("the STRCN-A mask needs at least one clip's heat map")
    reader = ClipReader(clips, "heatmap", samples, cache_clips=1)
    return build_mask(np.stack([reader[s] for s in samples]), keep_fraction)


class VariantSampler(Sampler[Draw]):
    """An augmented epoch: every clip under ``per_clip`` distinct variants of a grid, in random order.

    Papers enlarge their training sets with a grid of variants per clip (Kim:
    150 affine transforms; Xia: 10 α × 5 frame subsets) and train epochs over
    the enlarged set (:class:`~mepipe.train.augment.AugmentedEpochs`). Each
    epoch draws, for every clip, ``per_clip`` variants out of ``n_variants``
    without replacement, shuffles the (clip, variant) pairs and yields, for
    each, the :data:`Draw` of the clip's ``items_per_clip`` consecutive items
    (Kim's five state frames stay together and share their variant) with a
    seed for the random draws an item makes (Xia's frame subsets), so that
    DataLoader workers draw as the main process would.

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
