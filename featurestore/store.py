"""Reading a store: the sample table, one clip's feature, a clip's tree, lazy datasets over all clips.

A long-video store (``store.unit == "video"``) is read the same way, its
samples being whole videos; ``store.intervals`` lists the expressions
annotated in them, and ``frames=`` reads a stretch of a video's feature,
touching only the chunks (windows) that hold it, each checked against the
manifest.
"""
from __future__ import annotations

import os
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .features import FEATURES, feature_def
from .finite import check_finite
from .integrity import IncompleteStoreError
from .layout import (CLIPS_GROUP, DATASET_GROUP, INTERVALS_GROUP, SAMPLES_GROUP, array_path, clip_path,
                     dataset_feature_path, feature_path)
from .location import StoreLocation, zarr_store
from .manifest import Manifest
from .provenance import BuildRecord
from .schema import INTEGER_COLUMNS, INTERVAL_COLUMNS, INTERVAL_INTEGER_COLUMNS, UNIT_ATTR
from .versioning import check_schema_readable
from .writer import quiet_zarr

_CONCAT_DIMS = ("frame", "pair", "map")

__all__ = ["FeatureStore", "IncompleteStoreError", "open_store"]


class FeatureStore:
    """A built feature store, opened read-only.

    Parameters
    ----------
    path : str, PathLike or StoreLocation
        A built store: its folder, a ``.zip`` of it, or an fsspec URL
        (``https://``, ``s3://``, ...; see :func:`.location.locate`). All are
        read-only; URLs are read through a local cache. Every file read is
        checked against the store's manifest (see :mod:`.integrity`).
    allow_incomplete : bool
        Open a store whose build is still running or was killed; only arrays
        that were written completely are visible then, and reads are not
        verified (the manifest is written when the build finishes).
    expect_id : str, optional
        The store id the caller expects (from ``mepipe store verify`` or a
        run report); any other content is refused.

    Attributes
    ----------
    path : str
        The store's location as messages and records give it (a URL without
        user, password or query).
    backend : StoreBackend
        What its files are read through (:mod:`.backends`).
    store_id : str or None
        sha256 of the store's manifest: the same for a folder, its zip and its
        pushed copies, different for any other content. None when an
        incomplete store is read unverified.
    manifest : Manifest or None
        The checked manifest every read is verified against.
    """

    def __init__(self, path: str | os.PathLike | StoreLocation, *, allow_incomplete: bool = False,
                 expect_id: str | None = None):
        store = zarr_store(path, expect_id=expect_id, allow_incomplete=allow_incomplete)
        self.path = store.where
        self.backend = store.backend
        self.store_id: str | None = store.store_id
        self.manifest: Manifest | None = store.manifest
        with quiet_zarr():
            self._root = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=None)
        self.attrs: dict[str, Any] = dict(self._root.attrs)
        self.schema_version = check_schema_readable(self.attrs, self.path)
        self.complete = self.attrs.get("state") == "complete" and self.store_id is not None
        if not self.complete:
            with quiet_zarr():
                self._root = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=False)

    def __repr__(self) -> str:
        return (f"FeatureStore({self.path!r}, {len(self.samples)} clips, features={self.features}, "
                f"dataset_features={self.dataset_features})")

    @cached_property
    def samples(self) -> pd.DataFrame:
        """One row per clip (per video in a long-video store); frame columns are nullable integers (source frame
        numbers)."""
        return self._table(SAMPLES_GROUP, ["sample"], INTEGER_COLUMNS)

    @property
    def unit(self) -> str:
        """What the samples are: ``"clip"`` (annotated clips) or ``"video"`` (whole long videos)."""
        return str(self.attrs.get(UNIT_ATTR, "clip"))

    @cached_property
    def intervals(self) -> pd.DataFrame:
        """A long-video store's annotated intervals, one row each (empty for a store of clips).

        Columns :data:`~.schema.INTERVAL_COLUMNS`: ``video`` is a sample id,
        onset/apex/offset are nullable integers, frame numbers of that video
        (its features' ``frame`` coordinate), ``kind`` is micro or macro.
        """
        return self._table(INTERVALS_GROUP, list(INTERVAL_COLUMNS), INTERVAL_INTEGER_COLUMNS)

    def _table(self, group: str, empty: list[str], integers) -> pd.DataFrame:
        if group not in self._root:
            return pd.DataFrame(columns=empty)
        with quiet_zarr():
            ds = xr.open_zarr(self._root.store, group=group, consolidated=self.complete, zarr_format=3,
                              chunks=None).load()  # read here, never by a dask scheduler a session has set
        df = ds.to_dataframe().reset_index()
        for col in integers:
            if col in df:  # int64 with MISSING_INT; float64 with NaN in older stores
                numbers = df[col].astype("float64")
                df[col] = numbers.where(numbers >= 0).round().astype("Int64")
        return df

    @property
    def sample_ids(self) -> list[str]:
        return [str(s) for s in self.samples["sample"]]

    @cached_property
    def record(self) -> BuildRecord | None:
        """The build record (provenance); None for a store whose first build has not finished."""
        if "build" not in self.attrs:
            return None
        return BuildRecord.from_attrs(self.attrs, self.path)

    @cached_property
    def features(self) -> list[str]:
        """Names of the clip-level features: those readable with :meth:`read` for at least one clip.

        Features of the whole store (``appearance_mask``) are listed apart, in
        :attr:`dataset_features`.
        """
        if self.complete and self.record is not None:
            return [f for f in self.record.features if f not in self.dataset_features]
        names: set[str] = set()
        if CLIPS_GROUP in self._root:
            for _, clip in self._root[CLIPS_GROUP].groups():
                names.update(name for name, _ in clip.groups())
        return sorted(names)

    @cached_property
    def dataset_features(self) -> list[str]:
        """Names of the dataset-level features: one array for the whole store, read with :meth:`dataset_array`."""
        if DATASET_GROUP not in self._root:
            return []
        return sorted(name for name, _ in self._root[DATASET_GROUP].groups())

    def nodes(self):
        """Every group and array below the root as ``(path, zarr node)`` pairs (metadata only, no chunks)."""
        with quiet_zarr():
            yield from self._root.members(max_depth=None)

    def has(self, feature: str, sample: str) -> bool:
        return feature_path(sample, feature) in self._root

    def _array(self, feature: str, sample: str) -> zarr.Array:
        try:
            return self._root[array_path(sample, feature)]
        except KeyError:
            known = self.sample_ids
            if sample not in known:
                raise KeyError(f"{self.path}: no clip {sample!r} (the store has {len(known)} clips)") from None
            if feature in self.dataset_features:
                raise KeyError(f"{self.path}: {feature!r} is a dataset-level feature, one array for the whole "
                               f"store; read it with dataset_array({feature!r})") from None
            raise KeyError(f"{self.path}: clip {sample!r} has no feature {feature!r} "
                           f"(failed clip, or the build skipped that feature)") from None

    def read(self, feature: str, sample: str, frames: slice | None = None) -> np.ndarray:
        """One clip's (or video's) feature as a numpy array; NaN or infinity it may not hold is refused
        (:mod:`.finite`).

        ``frames`` selects rows of its first dim (0-based positions: frames,
        or flow pairs, of the video): only the chunks holding them are read,
        each checked against the manifest. A clip's feature is one chunk.
        """
        with quiet_zarr():
            return self._finite(feature, sample, self._array(feature, sample)[frames if frames is not None else ...])

    def _finite(self, feature: str, sample: str | None, values: np.ndarray) -> np.ndarray:
        where = f"{self.path}: " + (f"clip {sample!r}, feature {feature!r}" if sample else f"dataset array {feature!r}")
        return check_finite(feature_def(feature), values, where)

    def _finite_lazily(self, feature: str, sample: str, values):
        """A dask array of a clip's feature whose chunks are checked (:mod:`.finite`) as they are computed
        (an array xarray left unchunked, a 0-d one, is checked now)."""
        if values.dtype.kind != "f":
            return values
        if not hasattr(values, "map_blocks"):
            return self._finite(feature, sample, np.asarray(values))
        return values.map_blocks(partial(self._finite, feature, sample), dtype=values.dtype,
                                 name=f"finite-{self.path}:{feature}:{sample}")

    def shape(self, feature: str, sample: str) -> tuple[int, ...]:
        """The shape of one clip's feature, from its metadata (no chunk is read)."""
        return tuple(self._array(feature, sample).shape)

    def read_xr(self, feature: str, sample: str, frames: slice | None = None) -> xr.DataArray:
        """One clip's (or video's) feature as a labelled DataArray: dims, CF attributes, its coordinates (``frame``
        numbers, region names), cache key; ``frames`` as in :meth:`read`."""
        rows = frames if frames is not None else slice(None)
        spec = feature_def(feature)
        with quiet_zarr():
            array = self._array(feature, sample)
            da = xr.DataArray(self._finite(feature, sample, array[rows]), dims=spec.dims, name=feature, attrs=dict(array.attrs))
            for dim in spec.dims:
                coord = f"{feature_path(sample, feature)}/{dim}"
                if dim != feature and coord in self._root:
                    values = self._root[coord]
                    da = da.assign_coords({dim: values[rows] if dim == spec.dims[0] else values[...]})
        return da.assign_attrs(sample=sample, **self.attrs_of(feature, sample))

    def attrs_of(self, feature: str, sample: str) -> dict[str, Any]:
        """Attributes of a clip's feature group: cache key, stage, stage version, per-clip events."""
        self._array(feature, sample)  # a missing clip or feature is named
        return dict(self._root[feature_path(sample, feature)].attrs)

    def dataset_array(self, name: str) -> xr.DataArray:
        """A dataset-level feature (e.g. ``appearance_mask``) with its attributes (the clips it was built from)."""
        try:
            group = self._root[dataset_feature_path(name)]
            arr = group[name]
        except KeyError:
            raise KeyError(f"{self.path}: no dataset array {name!r} (build the stage that makes it)") from None
        with quiet_zarr():
            return xr.DataArray(self._finite(name, None, arr[...]), dims=feature_def(name).dims, name=name,
                                attrs={**dict(arr.attrs), **dict(group.attrs)})

    def clip(self, sample: str) -> xr.DataTree:
        """Every feature of one clip (lazy): one child node per feature group, float features checked when
        computed (:mod:`.finite`)."""
        with quiet_zarr():
            tree = xr.open_datatree(self._root.store, group=clip_path(sample), engine="zarr",
                                    consolidated=self.complete, zarr_format=3, chunks={})

        def checked(ds: xr.Dataset) -> xr.Dataset:
            features = [n for n in ds.data_vars if n in FEATURES]
            return ds.assign({n: ds[n].copy(data=self._finite_lazily(n, sample, ds[n].data)) for n in features})

        return tree.map_over_datasets(checked)

    def dataset(self, feature: str, samples: list[str] | None = None) -> xr.Dataset:
        """A lazy, dask-backed Dataset of one feature over many clips.

        Features with a per-frame leading dim (frame, pair, map) are
        concatenated along it, without padding, with a ``sample`` coordinate
        on that dim; others are stacked along a new ``sample`` dim.
        """
        import dask.array as da

        spec = feature_def(feature)
        ids = [s for s in (samples or self.sample_ids) if self.has(feature, s)]
        if not ids:
            raise KeyError(f"{self.path}: no clip has feature {feature!r}")
        with quiet_zarr():
            parts = [da.from_zarr(self._array(feature, s), name=f"{self.path}:{feature}:{s}") for s in ids]
        parts = [self._finite_lazily(feature, s, p) for p, s in zip(parts, ids)]
        lead = spec.dims[0] if spec.dims else None
        if lead in _CONCAT_DIMS:
            data = da.concatenate(parts, axis=0)
            owner = np.concatenate([np.full(p.shape[0], s, dtype=f"<U{max(map(len, ids))}")
                                    for p, s in zip(parts, ids)])
            return xr.Dataset({feature: (spec.dims, data)}, coords={"sample": (lead, owner)})
        data = da.stack(parts, axis=0)
        return xr.Dataset({feature: (("sample", *spec.dims), data)}, coords={"sample": ids})


def open_store(path: str | os.PathLike | StoreLocation, *, allow_incomplete: bool = False,
               expect_id: str | None = None) -> FeatureStore:
    """Open a built store for reading, every read checked against its manifest (see :class:`FeatureStore`)."""
    return FeatureStore(path, allow_incomplete=allow_incomplete, expect_id=expect_id)
