"""Torch datasets over a feature store for the sequence networks (Kim 2017, Choi 2020, Nag 2019).

Items keep the conventions of :mod:`mepipe.train.data` (``x``, ``y``,
``clip``, ``frame``) and add what the sequence models need: the
expression ``state`` of a Kim state frame, the true ``length`` of a
sequence padded by :func:`pad_collate`, and Nag's per-step ``intensity``
target.

Sequence items are read channels first, ``raw(i)`` of shape (C, T, H, W),
so that :func:`~mepipe.train.data.fit_standardiser` fits one mean and std
per channel; ``__getitem__`` returns them as (T, C, H, W), the layout the
networks take.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from mepipe.featurestore import FeatureStore
from mepipe.pipeline.stages.lfm import middle_sequence

from .data import ClipReader, Standardiser, StoreDataset

__all__ = ["ClipSequenceDataset", "FeatureSequenceDataset", "MapDataset", "NagWindowDataset", "StateFrameDataset",
           "WholeClipSampler", "map_window", "pad_collate"]

CHOI_SEQUENCE_LENGTH = 24
"""Maps per Choi sequence (§V-A: the middle 24, repeat-padded)."""


def _image(frames: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) frames as float32 (3, ..., H, W) in [0, 1]."""
    return np.moveaxis(frames.astype(np.float32) / 255.0, -1, 0)


def map_window(n_maps: int, length: int = CHOI_SEQUENCE_LENGTH) -> np.ndarray:
    """Indices of the distinct maps inside a clip's middle-``length`` window (Choi's per-map training set)."""
    return np.unique(middle_sequence(np.arange(n_maps), length))


class StateFrameDataset(StoreDataset):
    """Kim stage 1: the five expression-state frames of each clip, one item per frame.

    ``state_frames`` (5, 64, 64, 3) uint8 holds the onset, onset→apex,
    apex, apex→offset and offset frames (Kim §2.2.1). Item ``i`` is state
    ``i % 5`` of clip ``i // 5``, returned as (3, 64, 64) in [0, 1] before
    standardisation, with ``state`` = its state index and ``frame`` the same.
    """

    feature = "state_frames"

    def __init__(self, store: FeatureStore, samples: Sequence[str], labels: Sequence[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(store, samples, labels, standardiser=standardiser)
        self.reader = ClipReader(store, self.feature, self.samples, in_memory=in_memory, shared=shared)
        self.n_states = int(self.reader[self.samples[0]].shape[0]) if self.samples else 5

    def __len__(self) -> int:
        return len(self.samples) * self.n_states

    def locate(self, i: int) -> tuple[int, int]:
        return divmod(int(i), self.n_states)

    def raw(self, i: int) -> np.ndarray:
        clip, state = self.locate(i)
        return _image(self.reader[self.samples[clip]][state])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["state"] = item["frame"]
        return item


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


class MapDataset(StoreDataset):
    """Choi stage 1: every distinct LFM/CLFM map of each clip's middle-24 window, labelled with the clip's class.

    Items are (1, H, W) float32 in [0, 1] (the stored uint8 map / 255);
    ``frame`` is the map's index within the clip.
    """

    def __init__(self, store: FeatureStore, feature: str, samples: Sequence[str], labels: Sequence[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None,
                 length: int = CHOI_SEQUENCE_LENGTH):
        super().__init__(store, samples, labels, standardiser=standardiser)
        self.features = (feature,)
        self.reader = ClipReader(store, feature, self.samples, in_memory=in_memory, shared=shared)
        self.index = np.array([(c, m) for c, s in enumerate(self.samples)
                               for m in map_window(self.reader[s].shape[0], length)], dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, i: int) -> tuple[int, int]:
        clip, frame = self.index[i]
        return int(clip), int(frame)

    def raw(self, i: int) -> np.ndarray:
        clip, frame = self.locate(i)
        return self.reader[self.samples[clip]][frame][None].astype(np.float32) / 255.0


class ClipSequenceDataset(StoreDataset):
    """One whole clip per item, as a sequence (T, C, H, W) with its true ``length``.

    - ``frames64`` (Kim stage 2): every aligned 64×64 frame, (T, 3, 64, 64) in [0, 1];
    - ``lfm68`` / ``lfm21`` (Choi stage 2): the middle 24 maps, repeat-padded
      (:func:`~mepipe.pipeline.stages.lfm.middle_sequence`), (24, 1, H, W) in [0, 1].

    Clips of different lengths are batched by :func:`pad_collate`.
    """

    def __init__(self, store: FeatureStore, feature: str, samples: Sequence[str], labels: Sequence[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None,
                 length: int = CHOI_SEQUENCE_LENGTH):
        super().__init__(store, samples, labels, standardiser=standardiser)
        if feature not in ("frames64", "lfm68", "lfm21"):
            raise ValueError(f"ClipSequenceDataset reads frames64, lfm68 or lfm21, not {feature!r}")
        self.features = (feature,)
        self.length = length
        self.reader = ClipReader(store, feature, self.samples, in_memory=in_memory, shared=shared)

    def raw(self, i: int) -> np.ndarray:
        array = self.reader[self.samples[i]]
        if self.features[0] == "frames64":
            return _image(array)
        return middle_sequence(array, self.length)[None].astype(np.float32) / 255.0

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["x"] = item["x"].transpose(0, 1).contiguous()
        item["length"] = int(item["x"].shape[0])
        return item


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

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.features[i]
        return {"x": x, "y": int(self.labels[i]), "clip": int(self.clips[i]), "frame": -1, "length": int(x.shape[0])}


class NagWindowDataset(StoreDataset):
    """Nag 2019 input: windows of L consecutive frame pairs with their flow and intensity.

    Step ``k`` of a window starting at pair ``s`` holds frame ``s + k``
    (channels 0–2), frame ``s + k + 1`` (3–5), both in [0, 1], and the
    ``flow_consecutive`` field between them (6–7, pixels), so an item is
    (L, 8, 64, 64) after standardisation. Its ``intensity`` target (L,) is the
    store's intensity of frame ``s + k + 1``; ``span`` (L,) is 1 where that
    frame lies in the sheet's onset..offset (spotting ground truth).

    Parameters
    ----------
    store, samples, labels, in_memory, standardiser, shared
        See :class:`~mepipe.train.data.StoreDataset`.
    window : int or None
        Steps per item (Nag: 14). None makes one item of every clip's whole
        sequence (testing); clips shorter than ``window`` give one shorter item.
    stride : int
        Steps between the starts of consecutive training windows.
    """

    features = ("frames64", "flow_consecutive", "intensity")

    def __init__(self, store: FeatureStore, samples: Sequence[str], labels: Sequence[int], *,
                 window: int | None = 14, stride: int = 7, in_memory: bool = False,
                 standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(store, samples, labels, standardiser=standardiser)
        if window is not None and window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
        io = {"in_memory": in_memory, "shared": shared}
        self.frames = ClipReader(store, "frames64", self.samples, **io)
        self.flow = ClipReader(store, "flow_consecutive", self.samples, **io)
        self.intensity = ClipReader(store, "intensity", self.samples, **io)
        self.window = window
        self.spans = [_span(store, s, self.frames[s].shape[0]) for s in self.samples]
        windows = []
        for c, s in enumerate(self.samples):
            n_pairs = int(self.flow[s].shape[0])
            if n_pairs + 1 != self.frames[s].shape[0]:
                raise ValueError(f"{store.path}: clip {s!r} has {self.frames[s].shape[0]} frames64 but {n_pairs} "
                                 "flow_consecutive fields (expected one fewer)")
            length = n_pairs if window is None else min(window, n_pairs)
            starts = range(0, max(n_pairs - length, 0) + 1, stride) if window is not None else [0]
            starts = sorted({*starts, n_pairs - length})
            windows += [(c, start, length) for start in starts]
        self.windows = np.array(windows, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.windows)

    def locate(self, i: int) -> tuple[int, int]:
        clip, start, _ = self.windows[i]
        return int(clip), int(start)

    def raw(self, i: int) -> np.ndarray:
        clip, start, length = (int(v) for v in self.windows[i])
        sample = self.samples[clip]
        frames = _image(self.frames[sample][start:start + length + 1])
        flow = np.moveaxis(self.flow[sample][start:start + length].astype(np.float32), 1, 0)
        return np.concatenate([frames[:, :-1], frames[:, 1:], flow], axis=0)

    def targets(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(intensity, span) of the frames each step of item ``i`` ends at, (L,) float32 each."""
        clip, start, length = (int(v) for v in self.windows[i])
        sample = self.samples[clip]
        stop = start + length + 1
        return (self.intensity[sample][start + 1:stop].astype(np.float32),
                self.spans[clip][start + 1:stop].astype(np.float32))

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["x"] = item["x"].transpose(0, 1).contiguous()
        intensity, span = self.targets(i)
        item.update(length=int(item["x"].shape[0]), intensity=torch.from_numpy(intensity),
                    span=torch.from_numpy(span))
        return item


def _span(store: FeatureStore, sample: str, n_frames: int) -> np.ndarray:
    """1 for the clip's frames inside the sheet's onset..offset, else 0; all 0 without both marks."""
    out = np.zeros(n_frames, dtype=np.float32)
    row = store.samples.loc[store.samples["sample"] == sample]
    if row.empty or not store.has("frame", sample):
        return out
    onset, offset = (row.iloc[0].get(k) for k in ("onset", "offset"))
    try:
        onset, offset = int(onset), int(offset)
    except (TypeError, ValueError):
        return out
    numbers = store.read("frame", sample)
    out[(numbers >= onset) & (numbers <= offset)] = 1.0
    return out


def pad_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items whose ``x`` (and per-step targets) differ in length along dim 0, zero-padding at the end.

    Adds nothing when all lengths agree; ``length`` keeps each item's true length.
    """
    longest = max(int(item["x"].shape[0]) for item in items)
    padded = []
    for item in items:
        item = dict(item)
        for key in ("x", "intensity", "span"):
            if key in item and item[key].shape[0] < longest:
                value = item[key]
                pad = value.new_zeros((longest - value.shape[0], *value.shape[1:]))
                item[key] = torch.cat([value, pad])
        padded.append(item)
    return default_collate(padded)
