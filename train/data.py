"""Torch datasets over a feature store: coded flow frames, onset→apex flow, appearance matrices.

Each dataset reads one clip's feature with ``store.read`` when an item is
asked for (one Zarr chunk per clip), keeping the last few clips in a small
cache; ``in_memory=True`` reads every clip once up front instead. Nothing is
recomputed from video: the datasets only select, colour-code, mask and
standardise what the store holds.

Every statistic that depends on more than one clip (the standardisation, the
STRCN-A mask) is passed in, and :func:`fold_data` fits it on the training
clips of a fold, so no test clip shapes its own input (SPEC §4).
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
from mepipe.pipeline.stages.appearance import AppearanceParams, appearance_matrix, build_mask, time_normalise
from mepipe.pipeline.stages.flow import flow_to_rgb

INPUT_FEATURES = {
    "flow_frames": ("flow_first_each",),
    "onset_apex_flow": ("flow_onset_apex",),
    "appearance": ("appearance_frames", "heatmap"),
    "state_sequences": ("state_frames", "frames64"),
    "lfm68_sequences": ("lfm68",),
    "lfm21_sequences": ("lfm21",),
    "nag_windows": ("frames64", "flow_consecutive", "intensity"),
}
"""Store features each input kind reads (STRCN-A also reads ``magnified64x48`` for α augmentation).
The ``*_sequences`` and ``nag_windows`` kinds are read by :mod:`mepipe.train.sequence_data`."""

MULTI_ALPHA_FEATURE = "magnified64x48"


class MissingFeatureError(KeyError):
    """Clips of a store lack a feature a model needs."""


def require_features(store: FeatureStore, features: Sequence[str], samples: Sequence[str]) -> None:
    """Raise :class:`MissingFeatureError` naming the store, feature and clips when any is missing."""
    for feature in features:
        missing = [s for s in samples if not store.has(feature, s)]
        if missing:
            shown = ", ".join(missing[:5]) + (f" … ({len(missing)} clips)" if len(missing) > 5 else "")
            raise MissingFeatureError(
                f"{store.path}: feature {feature!r} is missing for {shown}; build it with "
                f"`mepipe build --features {feature} --store {store.path}`")


class ClipReader:
    """One feature of a set of clips, read lazily (small LRU cache) or all at once.

    Parameters
    ----------
    store : FeatureStore
    feature : str
    samples : sequence of str
        Clips that will be asked for.
    in_memory : bool
        Read every clip now and keep it.
    cache_clips : int
        Clips kept after a lazy read (a clip's feature is one chunk, so
        reading one frame of it reads them all).
    shared : dict, optional
        ``(feature, sample) -> array`` kept across readers with
        ``in_memory=True``, so the folds of a run read each clip once.
    """

    def __init__(self, store: FeatureStore, feature: str, samples: Sequence[str], *, in_memory: bool = False,
                 cache_clips: int = 16, shared: dict[tuple[str, str], np.ndarray] | None = None):
        require_features(store, [feature], samples)
        self.store, self.feature, self.in_memory = store, feature, in_memory
        self._cache_size = max(1, cache_clips)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._held = shared if shared is not None else {}
        if in_memory:
            for s in samples:
                if (feature, s) not in self._held:
                    self._held[(feature, s)] = store.read(feature, s)

    def __getitem__(self, sample: str) -> np.ndarray:
        if self.in_memory:
            try:
                return self._held[(self.feature, sample)]
            except KeyError:
                raise KeyError(f"{self.store.path}: clip {sample!r} was not loaded for {self.feature!r}") from None
        if sample in self._cache:
            self._cache.move_to_end(sample)
            return self._cache[sample]
        array = self.store.read(self.feature, sample)
        self._cache[sample] = array
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return array

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

    Items are dicts ``{"x": float32 tensor, "y": int64, "clip": int, "frame": int}``:
    ``clip`` indexes :attr:`samples`, ``frame`` is the flow field of a frame
    item (``-1`` for clip items).
    """

    features: tuple[str, ...] = ()

    def __init__(self, store: FeatureStore, samples: Sequence[str], labels: Sequence[int], *,
                 standardiser: Standardiser | None = None):
        if len(samples) != len(labels):
            raise ValueError(f"{store.path}: got {len(samples)} clips but {len(labels)} labels")
        if len(set(samples)) != len(samples):
            raise ValueError(f"{store.path}: a clip is listed twice in the dataset")
        self.store = store
        self.samples = [str(s) for s in samples]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.standardiser = standardiser

    def __len__(self) -> int:
        return len(self.samples)

    def locate(self, i: int) -> tuple[int, int]:
        """(clip index, frame field) of item ``i``."""
        return i, -1

    def raw(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip, frame = self.locate(i)
        x = self.raw(i).astype(np.float32, copy=False)
        if self.standardiser is not None:
            x = self.standardiser(x)
        return {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                "y": int(self.labels[clip]), "clip": clip, "frame": frame}

    def with_standardiser(self, standardiser: Standardiser | None) -> StoreDataset:
        self.standardiser = standardiser
        return self


class FlowFrameDataset(StoreDataset):
    """SHCNN input: every field of ``flow_first_each``, colour-coded, one item per field.

    Each (2, 112, 112) field is coded by
    :func:`mepipe.pipeline.stages.flow.flow_to_rgb` (hue = angle, value =
    magnitude scaled by the field's own maximum, Miao §III-C) and returned
    as a (3, 112, 112) float in [0, 1] before standardisation. The label is
    the clip's.

    Parameters
    ----------
    store, samples, labels, standardiser
        See :class:`StoreDataset`.
    in_memory : bool
        Hold every clip's flow in RAM.
    max_magnitude : float, optional
        Fixed magnitude for full value instead of each field's maximum.
    shared : dict, optional
        In-memory arrays shared across folds (see :class:`ClipReader`).
    """

    features = INPUT_FEATURES["flow_frames"]

    def __init__(self, store: FeatureStore, samples: Sequence[str], labels: Sequence[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None,
                 max_magnitude: float | None = None, shared: dict | None = None):
        super().__init__(store, samples, labels, standardiser=standardiser)
        self.reader = ClipReader(store, self.features[0], self.samples, in_memory=in_memory, shared=shared)
        self.max_magnitude = max_magnitude
        counts = _field_counts(store, self.features[0], self.samples, self.reader)
        self.index = np.array([(c, t) for c, n in enumerate(counts) for t in range(n)], dtype=np.int64)
        self.index = self.index.reshape(-1, 2)
        self.field_counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.apex_fields = [apex_field(store, s, n) for s, n in zip(self.samples, counts)]

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
        return code_flow(self.field(clip, frame), self.max_magnitude)


def code_flow(field: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """A (2, H, W) flow field as a (3, H, W) float32 RGB image in [0, 1] (Miao's coding)."""
    return flow_to_rgb(field, max_magnitude).astype(np.float32).transpose(2, 0, 1) / 255.0


class OnsetApexFlowDataset(StoreDataset):
    """STRCN-G input: the clip's onset→apex flow ``flow_onset_apex``, (2, 245, 300) float32.

    Parameters are those of :class:`FlowFrameDataset` (without ``max_magnitude``).
    """

    features = INPUT_FEATURES["onset_apex_flow"]

    def __init__(self, store: FeatureStore, samples: Sequence[str], labels: Sequence[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(store, samples, labels, standardiser=standardiser)
        self.reader = ClipReader(store, self.features[0], self.samples, in_memory=in_memory, shared=shared)

    def raw(self, i: int) -> np.ndarray:
        return self.reader[self.samples[i]].astype(np.float32)


class AppearanceDataset(StoreDataset):
    """STRCN-A input: masked appearance matrix of each clip, as a (C, d2, T) float32 image.

    The matrix is :func:`~mepipe.pipeline.stages.appearance.appearance_matrix`
    of the stored ``appearance_frames`` (magnified 64×48 clip, time-normalised
    to T frames) under ``mask``, transposed so that the masked pixels run down
    the rows and time across the columns (Xia §III-C1).

    Parameters
    ----------
    store, samples, labels, standardiser
        See :class:`StoreDataset`.
    mask : ndarray, shape (48, 64), bool
        From :func:`fold_mask` (built from the training clips of the fold).
    in_memory : bool
    random_alpha : bool
        Training only: when the store's ``magnified64x48`` holds several α,
        each item is cut from a randomly chosen α's clip instead of the stored
        ``appearance_frames`` (Xia's α ∈ {5..14} augmentation). Without
        several α this option does nothing.
    seed : int
        Seed of the α choice.
    shared : dict, optional
        In-memory arrays shared across folds (see :class:`ClipReader`).
    """

    features = INPUT_FEATURES["appearance"]

    def __init__(self, store: FeatureStore, samples: Sequence[str], labels: Sequence[int], *, mask: np.ndarray,
                 in_memory: bool = False, standardiser: Standardiser | None = None, random_alpha: bool = False,
                 seed: int = 0, shared: dict | None = None):
        super().__init__(store, samples, labels, standardiser=standardiser)
        self.reader = ClipReader(store, "appearance_frames", self.samples, in_memory=in_memory, shared=shared)
        self.mask = np.asarray(mask, dtype=bool)
        first = self.reader[self.samples[0]] if self.samples else np.zeros((30, *self.mask.shape, 1))
        if first.shape[1:3] != self.mask.shape:
            raise ValueError(f"{store.path}: mask shape {self.mask.shape} does not match appearance_frames "
                             f"{first.shape[1:3]} of clip {self.samples[0]!r}")
        self.params = AppearanceParams(n_time=int(first.shape[0]))
        self.alpha_reader = None
        self.random_alpha = random_alpha
        self._rng = np.random.default_rng(seed)
        if random_alpha and self.samples and _n_alphas(store, self.samples[0]) > 1:
            self.alpha_reader = ClipReader(store, MULTI_ALPHA_FEATURE, self.samples, in_memory=in_memory,
                                           shared=shared)

    def raw(self, i: int) -> np.ndarray:
        sample = self.samples[i]
        if self.random_alpha and self.alpha_reader is not None:
            clips = self.alpha_reader[sample]
            alpha = int(self._rng.integers(clips.shape[1]))
            frames = time_normalise(clips[:, alpha], self.params.n_time)
        else:
            frames = self.reader[sample].astype(np.float32)
        return appearance_matrix(frames, self.mask, self.params).transpose(2, 0, 1)


def fold_mask(store: FeatureStore, samples: Sequence[str], keep_fraction: float | None = None) -> np.ndarray:
    """STRCN-A mask from the heat maps of ``samples`` (a fold's training clips, or all clips).

    Parameters
    ----------
    store : FeatureStore
    samples : sequence of str
        Clips whose ``heatmap`` is summed; never a test clip of the fold.
    keep_fraction : float, optional
        Fraction p of pixels kept; defaults to the store's appearance stage
        parameter, else Xia's 0.30.

    Returns
    -------
    ndarray, shape (48, 64), bool
    """
    if not samples:
        raise ValueError(f"{store.path}: the STRCN-A mask needs at least one clip's heat map")
    reader = ClipReader(store, "heatmap", samples, cache_clips=1)
    p = keep_fraction if keep_fraction is not None else store_keep_fraction(store)
    return build_mask(np.stack([reader[s] for s in samples]), p)


def store_keep_fraction(store: FeatureStore) -> float:
    """The appearance stage's ``keep_fraction`` recorded in the store, else 0.30."""
    params = (store.attrs.get("stages") or {}).get("appearance", {}).get("params") or {}
    return float(params.get("keep_fraction", AppearanceParams().keep_fraction))


def apex_field(store: FeatureStore, sample: str, n_fields: int) -> int:
    """Index of the flow field that ends at the clip's apex frame (ground truth, else estimate).

    Field t of ``flow_first_each`` is the flow from frame 0 to frame t + 1.
    Without a ``frame`` feature or an apex, the middle field is used.
    """
    middle = max(0, (n_fields - 1) // 2)
    if n_fields == 0:
        return 0
    row = store.samples.loc[store.samples["sample"] == sample]
    if row.empty or not store.has("frame", sample):
        return middle
    numbers = store.read("frame", sample)
    for column in ("apex", "apex_est"):
        value = row.iloc[0].get(column)
        if value is not None and not _is_na(value):
            hits = np.flatnonzero(numbers == int(value))
            if hits.size:
                return int(min(max(hits[0] - 1, 0), n_fields - 1))
    return middle


def _is_na(value: Any) -> bool:
    try:
        return bool(np.isnan(float(value)))
    except (TypeError, ValueError):
        return True


def _field_counts(store: FeatureStore, feature: str, samples: Sequence[str], reader: ClipReader) -> list[int]:
    if reader.in_memory or not samples:
        return [int(reader[s].shape[0]) for s in samples]
    owner = store.dataset(feature, list(samples))["sample"].values
    names, counts = np.unique(owner, return_counts=True)
    by_name = dict(zip(names.tolist(), counts.tolist()))
    return [int(by_name.get(s, 0)) for s in samples]


def _n_alphas(store: FeatureStore, sample: str) -> int:
    if not store.has(MULTI_ALPHA_FEATURE, sample):
        return 0
    return int(store.read(MULTI_ALPHA_FEATURE, sample).shape[1])


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
class FoldData:
    """A fold's datasets and the statistics fitted on its training clips.

    Attributes
    ----------
    train, test : StoreDataset
    standardiser : Standardiser
    mask : ndarray or None
        STRCN-A mask (48, 64) bool; None for other inputs.
    mask_clips : tuple of str
        The clips the mask was built from.
    """

    train: StoreDataset
    test: StoreDataset
    standardiser: Standardiser
    mask: np.ndarray | None = None
    mask_clips: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-able statistics, enough to rebuild the test inputs (saliency, re-evaluation)."""
        out: dict[str, Any] = {"standardiser": self.standardiser.to_dict()}
        if self.mask is not None:
            out["mask_clips"] = list(self.mask_clips)
            out["mask_pixels"] = int(self.mask.sum())
        return out


def fold_data(kind: str, store: FeatureStore, train: Sequence[str], train_labels: Sequence[int],
              test: Sequence[str], test_labels: Sequence[int], *, mask: str = "fold", in_memory: bool = False,
              augment: bool = True, seed: int = 0, shared: dict | None = None) -> FoldData:
    """Datasets of one fold, with the standardisation (and STRCN-A mask) from its training clips.

    Parameters
    ----------
    kind : {"flow_frames", "onset_apex_flow", "appearance"}
        Input kind of the model (see :data:`INPUT_FEATURES`).
    store : FeatureStore
    train, test : sequence of str
        Clip ids of the two sides; they must not overlap.
    train_labels, test_labels : sequence of int
    mask : {"fold", "global"}
        STRCN-A mask from the training clips, or from every clip of the store
        that has a heat map (Xia's choice; test clips then shape the mask).
    in_memory : bool
    augment : bool
        Enable data-side augmentation of the training set (STRCN-A's random α).
    seed : int
    shared : dict, optional
        In-memory arrays shared across the folds of a run (see :class:`ClipReader`).
    """
    overlap = set(train) & set(test)
    if overlap:
        raise ValueError(f"{store.path}: clips {sorted(overlap)[:5]} are on both sides of a fold")
    if kind not in INPUT_FEATURES:
        raise KeyError(f"unknown input kind {kind!r}; known: {', '.join(INPUT_FEATURES)}")
    require_features(store, INPUT_FEATURES[kind], [*train, *test])
    io = {"in_memory": in_memory, "shared": shared}
    fold_mask_array, mask_clips = None, ()
    if kind == "flow_frames":
        train_ds = FlowFrameDataset(store, train, train_labels, **io)
        test_ds = FlowFrameDataset(store, test, test_labels, **io)
        standardiser = fit_standardiser(train_ds, seed=seed)
    elif kind == "onset_apex_flow":
        train_ds = OnsetApexFlowDataset(store, train, train_labels, **io)
        test_ds = OnsetApexFlowDataset(store, test, test_labels, **io)
        standardiser = fit_standardiser(train_ds, center=False, seed=seed)
    else:
        if mask not in ("fold", "global"):
            raise ValueError(f"mask must be 'fold' or 'global', got {mask!r}")
        if mask == "fold":
            mask_clips = tuple(train)
        else:
            mask_clips = tuple(s for s in store.sample_ids if store.has("heatmap", s))
        fold_mask_array = fold_mask(store, list(mask_clips))
        train_ds = AppearanceDataset(store, train, train_labels, mask=fold_mask_array, random_alpha=augment,
                                     seed=seed, **io)
        train_ds.random_alpha = False
        standardiser = fit_standardiser(train_ds, seed=seed)
        train_ds.random_alpha = augment
        test_ds = AppearanceDataset(store, test, test_labels, mask=fold_mask_array, **io)
    train_ds.with_standardiser(standardiser)
    test_ds.with_standardiser(standardiser)
    return FoldData(train_ds, test_ds, standardiser, fold_mask_array, mask_clips)
