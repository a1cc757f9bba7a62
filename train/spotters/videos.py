"""The long videos a spotting run reads, with their annotated intervals, over one or more long-video stores.

A :class:`VideoTable` is a :class:`~mepipe.train.clips.ClipTable` whose
samples are whole videos (a long-video store's samples): the same store
checks (features present, computed alike, stage parameters), the same ids
(``dataset/video`` over several stores), plus the stores' annotated
intervals as one truth table (:attr:`VideoTable.truth`) and reads of a
range of frames (:meth:`VideoTable.read`), which touch only the chunks
holding them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mepipe.featurestore import FeatureStore
from mepipe.featurestore.errors import UsageError
from mepipe.featurestore.safety import printable

from ..clips import ClipTable
from ..spotting_eval import KINDS

__all__ = ["NotLongVideosError", "TRUTH_COLUMNS", "VideoTable"]

TRUTH_COLUMNS = ("dataset", "video", "name", "onset", "apex", "offset", "kind")
"""Columns of :attr:`VideoTable.truth`: frame numbers of the run's video ids."""


class NotLongVideosError(UsageError, ValueError):
    """A store given to a spotting run holds annotated clips, not long videos."""


class VideoTable(ClipTable):
    """Long videos over one or more stores, read by video id (see the module docstring).

    Parameters
    ----------
    stores, samples
        As :class:`~mepipe.train.clips.ClipTable`; one sample per video.
    truth : pandas.DataFrame
        :data:`TRUTH_COLUMNS`, videos named by their run ids.
    left_out : list of str
        Annotated intervals the truth lacks, each with why (no onset or
        offset, a kind that is neither micro nor macro).
    """

    def __init__(self, stores, samples: pd.DataFrame, truth: pd.DataFrame, left_out: Sequence[str] = ()):
        super().__init__(stores, samples)
        self.truth = truth.reset_index(drop=True)
        self.left_out = list(left_out)
        self._held: dict[tuple[str, str], np.ndarray] = {}

    @classmethod
    def open(cls, locations: Sequence[str | os.PathLike], expect_ids: Sequence[str | None] = ()) -> VideoTable:
        clips = ClipTable.open(locations, expect_ids)
        return cls.over(list(clips.stores.values()))

    @classmethod
    def over(cls, stores: Sequence[FeatureStore]) -> VideoTable:
        """The videos of opened long-video stores and their intervals.

        Raises
        ------
        NotLongVideosError
            A store holds clips.
        """
        for store in stores:
            if not is_long_video_store(store):
                raise NotLongVideosError(f"{store.path} holds annotated clips, not long videos; spotting reads a "
                                         "long-video store (mepipe build --dataset samm-lv, casme-sq or demo-lv)")
        clips = ClipTable.over(stores)
        truths, left_out = [], []
        for store in stores:
            ids = clips.samples.loc[clips.samples["store"] == store.path, ["store_sample", "sample"]]
            names = dict(zip(ids["store_sample"].astype(str), ids["sample"].astype(str)))
            table, dropped = _truth_of(store, names)
            truths.append(table)
            left_out += dropped
        truth = pd.concat(truths, ignore_index=True) if truths else pd.DataFrame(columns=list(TRUTH_COLUMNS))
        return cls(clips.stores, clips.samples, truth, left_out)

    def subset(self, samples: Sequence[str]) -> VideoTable:
        """The same stores, only the given videos (in that order) and their intervals; what is held stays shared."""
        keep = set(samples)
        table = VideoTable(self.stores, self._rows.loc[list(samples)].reset_index(drop=True),
                           self.truth[self.truth["video"].isin(keep)], self.left_out)
        table._held = self._held
        return table

    def intervals_of(self, videos: Sequence[str]) -> pd.DataFrame:
        """The annotated intervals of ``videos``."""
        return self.truth[self.truth["video"].isin(set(videos))].reset_index(drop=True)

    def hold(self, features: Sequence[str], videos: Sequence[str]) -> None:
        """Read ``features`` of ``videos`` whole, once, and serve later reads from memory (``--in-memory``)."""
        for video in videos:
            for feature in features:
                if (feature, video) not in self._held:
                    self._held[(feature, video)] = super().read(feature, video)

    def read(self, feature: str, sample: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """A video's feature over positions ``start:stop`` of its first dim (all of it by default)."""
        held = self._held.get((feature, sample))
        if held is not None:
            return held[start:stop]
        key, inner = self._locate(sample)
        whole = start is None and stop is None
        return self.stores[key].read(feature, inner, frames=None if whole else slice(start, stop))

    def feature_shape(self, feature: str) -> tuple[int, ...]:
        """The shape of ``feature`` in the first video that holds it (its first dim is that video's)."""
        for video in self.ids:
            if self.has(feature, video):
                return tuple(self.shape(feature, video))
        raise KeyError(f"no video holds {feature!r}")

    def describe(self) -> list[dict[str, Any]]:
        """:meth:`ClipTable.describe` with ``n_videos`` for ``n_clips`` and each store's intervals per kind."""
        out = super().describe()
        for entry in out:
            entry["n_videos"] = entry.pop("n_clips")
            videos = set(self.samples.loc[self.samples["store"] == entry["location"], "sample"])
            entry["n_intervals"] = {k: int(((self.truth["kind"] == k) & self.truth["video"].isin(videos)).sum())
                                    for k in KINDS}
        return out


def is_long_video_store(store: FeatureStore) -> bool:
    """Whether the store's samples are whole videos with annotated intervals."""
    return store.unit == "video"


def _truth_of(store: FeatureStore, names: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """A store's intervals with run video ids, and the ones left out (with why)."""
    table = store.intervals
    dropped = []
    keep = []
    for row in table.itertuples(index=False):
        where = f"{printable(str(row.dataset))}/{printable(str(row.video))} interval {printable(str(row.name))}"
        if pd.isna(row.onset) or pd.isna(row.offset):
            dropped.append(f"{where}: no onset or offset")
        elif row.kind not in KINDS:
            dropped.append(f"{where}: kind {printable(repr(row.kind))} is neither micro nor macro")
        elif str(row.video) not in names:
            dropped.append(f"{where}: its video is not among the store's samples")
        else:
            keep.append({"dataset": str(row.dataset), "video": names[str(row.video)], "name": str(row.name),
                         "onset": int(row.onset), "apex": None if pd.isna(row.apex) else int(row.apex),
                         "offset": int(row.offset), "kind": str(row.kind)})
    return pd.DataFrame(keep, columns=list(TRUTH_COLUMNS)), dropped
