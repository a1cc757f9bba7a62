"""Torch datasets over stored features for the sequence networks (Kim 2017, Choi 2020, Nag 2019).

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

from mepipe.featurestore.errors import DataError
from mepipe.featurestore.features import feature_def
from mepipe.featurestore.views import consecutive_runs, map_window, middle_sequence, onset_offset_span, step_windows

from .data import ClipReader, Clips, Standardiser, StoreDataset

__all__ = ["ClipSequenceDataset", "FeatureSequenceDataset", "MapDataset", "NagWindowDataset", "StateFrameDataset",
           "WholeClipSampler", "pad_collate"]


def _image(frames: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, C) frames as float32 (C, ..., H, W) in [0, 1]."""
    return np.moveaxis(frames.astype(np.float32) / 255.0, -1, 0)


class StateFrameDataset(StoreDataset):
    """Kim stage 1: the five expression-state frames of each clip, one item per frame.

    ``state_frames`` (5, S, S, 3) uint8 holds the onset, onset→apex,
    apex, apex→offset and offset frames (Kim §2.2.1). Item ``i`` is state
    ``i % 5`` of clip ``i // 5``, returned as (3, S, S) in [0, 1] before
    standardisation, with ``state`` = its state index and ``frame`` the same.
    """

    feature = "state_frames"

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *,
                 in_memory: bool = False, standardiser: Standardiser | None = None, shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.reader = ClipReader(self.clips, self.feature, self.samples, in_memory=in_memory, shared=shared)
        self.n_states = feature_def(self.feature).sizes["state"]

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
    """Choi stage 1: every distinct LFM/CLFM map of each clip's middle window, labelled with the clip's class.

    Items are (1, H, W) float32 in [0, 1] (the stored uint8 map / 255);
    ``frame`` is the map's index within the clip.
    """

    def __init__(self, clips: Clips, feature: str, samples: Sequence[str], labels: Sequence[int], *,
                 length: int, in_memory: bool = False, standardiser: Standardiser | None = None,
                 shared: dict | None = None):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        self.feature = feature
        self.reader = ClipReader(self.clips, feature, self.samples, in_memory=in_memory, shared=shared)
        self.index = np.array([(c, m) for c, s in enumerate(self.samples)
                               for m in map_window(self.reader.length(s), length)], dtype=np.int64).reshape(-1, 2)

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

    - frame-indexed images (``frames_rgb``, Kim stage 2): every frame,
      (T, C, H, W) in [0, 1];
    - landmark feature maps (``lfm`` / ``clfm``, Choi stage 2) with a
      ``window``: the middle maps, repeat-padded
      (:func:`~mepipe.featurestore.views.middle_sequence`), (window, 1, H, W) in [0, 1].

    Clips of different lengths are batched by :func:`pad_collate`.
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
        return _image(array) if self.images else array[None].astype(np.float32) / 255.0

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
    (L, 8, H, W) after standardisation. Its ``intensity`` target (L,) is the
    store's intensity of frame ``s + k + 1``; ``span`` (L,) is 1 where that
    frame lies in the sheet's onset..offset (spotting ground truth).

    Windows never cross a gap in the clip's frame numbers (a frame missing
    from the source, whose flow the store leaves NaN): they are cut within
    each run of consecutive frames (:func:`~mepipe.featurestore.views.consecutive_runs`),
    and with ``window=None`` each run is one item. A run of one frame has
    no pair and gives no item; a clip with no pair at all is refused.

    Parameters
    ----------
    clips, samples, labels, in_memory, standardiser, shared
        See :class:`~mepipe.train.data.StoreDataset`.
    window : int or None
        Steps per item (Nag: 14). None makes one item of every clip's whole
        sequence (testing); clips shorter than ``window`` give one shorter item.
    stride : int
        Steps between the starts of consecutive training windows.
    frames, flow, target : str
        The features read: frames, the flow between consecutive frames, and
        the per-frame regression target.
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *,
                 window: int | None, stride: int = 1, in_memory: bool = False,
                 standardiser: Standardiser | None = None, shared: dict | None = None,
                 frames: str = "frames_rgb", flow: str = "flow_consecutive", target: str = "intensity"):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        io = {"in_memory": in_memory, "shared": shared}
        self.frames = ClipReader(self.clips, frames, self.samples, **io)
        self.flow = ClipReader(self.clips, flow, self.samples, **io)
        self.intensity = ClipReader(self.clips, target, self.samples, **io)
        self.window = window
        self.spans = [onset_offset_span(self.clips.frame_numbers(s), self.clips.value(s, "onset"),
                                        self.clips.value(s, "offset")) for s in self.samples]
        windows = []
        for c, s in enumerate(self.samples):
            n_pairs, n_frames = self.flow.length(s), self.frames.length(s)
            if n_pairs + 1 != n_frames:
                raise ValueError(f"clip {s!r} has {n_frames} {frames} but {n_pairs} {flow} fields "
                                 "(expected one fewer)")
            runs = [(a, b) for a, b in consecutive_runs(self.clips.frame_numbers(s)) if b > a]
            if not runs:
                raise DataError(f"clip {s!r} has no two consecutive frame numbers, so no {flow} pair to train on")
            windows += [(c, first + start, length) for first, last in runs
                        for start, length in step_windows(last - first, window, stride)]
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
