"""Feature arrays: one item per clip, chosen store features as one float32 array, channels first.

The input form of networks registered with :func:`mepipe.train.api.register`:
any features of a store, each made channels-first (a feature over time
becomes ``(channels, length)``), concatenated along the channel axis.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.features import FeatureDef, feature_def

from ..clips import ClipTable
from ..labels import apply_scheme
from .base import ClipReader, Shuffled, StoreDataset, fold_sides

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["FeatureDataset", "FeatureItems", "Stores", "feature_item", "item_channels", "over_time"]

_TIME_DIMS = ("pair", "map", "time")
"""Leading dims besides the frames that run over a clip's time."""

Stores = str | os.PathLike | Sequence[str | os.PathLike] | ClipTable


def over_time(spec: FeatureDef) -> bool:
    """Whether a feature's axis 0 runs over the clip's time (frames, flow pairs, maps, time-normalised frames):
    such a feature is resampled to ``length`` and put last, its other dims becoming channels."""
    return spec.frame_indexed or (bool(spec.dims) and spec.dims[0] in _TIME_DIMS)


def _clip_table(stores: Stores) -> ClipTable:
    if isinstance(stores, ClipTable):
        return stores
    if isinstance(stores, (str, os.PathLike)):
        return ClipTable.open([stores])
    return ClipTable.open(list(stores))


def _resample(array: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling of axis 0 to ``length`` samples (a clip of one frame is repeated)."""
    n = array.shape[0]
    if n == length:
        return array
    if n == 1:
        return np.repeat(array, length, axis=0)
    position = np.linspace(0, n - 1, length)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, n - 1)
    weight = (position - low).reshape((-1,) + (1,) * (array.ndim - 1))
    return array[low] * (1 - weight) + array[high] * weight


def feature_item(feature: str, array: np.ndarray, length: int | None) -> np.ndarray:
    """One stored feature of one clip as a channels-first float32 array.

    A feature over time (leading dim ``frame``, ``pair``, ``map`` or ``time``)
    becomes ``(channels, time)``: its other dims flattened into channels, its
    time resampled linearly to ``length`` when given. Any other feature keeps
    its shape, with a channel axis added when it has fewer than three dims
    (``heatmap`` (y, x) -> (1, y, x); ``sfem`` () -> (1,); ``flow_onset_apex``
    (uv, y, x) as stored).
    """
    x = np.asarray(array, dtype=np.float32)
    if over_time(feature_def(feature)):
        if length is not None:
            x = _resample(x, length)
        return np.ascontiguousarray(x.reshape(x.shape[0], -1).T)
    if x.ndim >= 3:
        return x
    return x[None] if x.ndim else x.reshape(1)


def item_channels(feature: str, sizes: dict[str, int]) -> int:
    """Channels a feature contributes to an item (see :func:`feature_item`), from its stored sizes."""
    dims = feature_def(feature).dims
    if over_time(feature_def(feature)):
        return int(math.prod(sizes[d] for d in dims[1:]))
    return int(sizes[dims[0]]) if len(dims) >= 3 else 1


class FeatureDataset(StoreDataset):
    """One item per clip: the chosen store features as one float32 array, channels first.

    Each feature is made channels-first by :func:`feature_item` (a feature
    over time becomes ``(channels, length)``), and the features are
    concatenated along the channel axis, so they must agree on the other
    axes (e.g. several per-frame features with one ``length``).

    Parameters
    ----------
    stores : path, sequence of paths, or ClipTable
        One or several feature stores (folder, zip or URL); every read is
        checked against the store's manifest.
    features : sequence of str
        Store feature names (``mepipe.featurestore.feature_names()``).
    labels : str, optional
        A label scheme (``samm-3``, ``megc-3``, ...): clips it does not map
        and failed clips are left out, and :attr:`classes` names the classes.
        Without one, every built clip is kept with label -1.
    samples : sequence of str, optional
        Clip ids to keep (e.g. one side of a fold), with ``sample_labels``.
    sample_labels : sequence of int, optional
    length : int, optional
        Samples per feature over time (linear resampling); without it items
        of clips of different lengths differ in size.
    standardiser : Standardiser, optional
        Applied to every item (fit one with ``fit_standardiser`` on training
        clips only).

    Items are :class:`~mepipe.train.inputs.batches.Item` (``frame`` -1);
    :attr:`samples` names the clip of each.
    """

    def __init__(self, stores: Stores, features: Sequence[str], *, labels: str | None = None,
                 samples: Sequence[str] | None = None, sample_labels: Sequence[int] | None = None,
                 length: int | None = None, standardiser=None, in_memory: bool = False, shared: dict | None = None):
        clips = _clip_table(stores)
        self.features = tuple(features)
        if not self.features:
            raise ValueError("a FeatureDataset needs at least one feature")
        for feature in self.features:
            feature_def(feature)  # unknown names raise, listing the known ones
        self.classes: list[str] = []
        if samples is None:
            samples, sample_labels = self._choose(clips, labels)
        elif sample_labels is None:
            sample_labels = [-1] * len(samples)
        super().__init__(clips, list(samples), list(sample_labels), standardiser=standardiser)
        self.length = length
        self.readers = {f: ClipReader(self.clips, f, self.samples, in_memory=in_memory, shared=shared)
                        for f in self.features}

    def _choose(self, clips: ClipTable, labels: str | None) -> tuple[list[str], list[int]]:
        table = clips.samples
        ok = ~table["status"].astype(str).eq("failed") if "status" in table else np.ones(len(table), bool)
        has = np.array([all(clips.has(f, s) for f in self.features) for s in table["sample"]], dtype=bool)
        table = table[np.asarray(ok, dtype=bool) & has]
        if labels is None:
            return table["sample"].astype(str).tolist(), [-1] * len(table)
        kept, self.classes, _ = apply_scheme(table, labels)
        return table.loc[kept.index, "sample"].astype(str).tolist(), kept.astype(int).tolist()

    def raw(self, i: int) -> np.ndarray:
        sample = self.samples[i]
        parts = [feature_item(f, self.readers[f][sample], self.length) for f in self.features]
        try:
            return np.concatenate(parts, axis=0)
        except ValueError:
            shapes = ", ".join(f"{f} {p.shape}" for f, p in zip(self.features, parts))
            raise ValueError(f"{sample}: features {shapes} do not agree beyond the channel axis; give one length "
                             "for features over time, or read them in separate datasets") from None


@dataclass(frozen=True)
class FeatureItems(Shuffled):
    """Item maker of :func:`register`'s recipes: :class:`FeatureDataset` items, standardised per channel.

    The standardisation is fitted on the fold's training clips (never a test
    clip) and recorded in the fold's statistics; the test side reuses it.

    Attributes
    ----------
    reads : tuple of str
        The features of an item.
    length : int or None
        Samples per feature over time.
    center : bool
        Subtract the training mean (False: scale by the root mean square only,
        e.g. for flow, where zero means no motion).
    """

    reads: tuple[str, ...]
    length: int | None = None
    center: bool = True

    def datasets(self, fold: FoldInputs, model: nn.Module | None) -> tuple[Dataset, Dataset]:
        return fold_sides(fold, lambda samples, labels: FeatureDataset(fold.clips, self.reads, samples=samples,
                                                                       sample_labels=labels, length=self.length,
                                                                       **fold.io), center=self.center)
