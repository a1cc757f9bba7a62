"""Writing a store: atomic per-clip feature arrays, the sample table, build state.

Each feature array is written complete in a staging folder outside the Zarr
hierarchy and then renamed into place, so a reader (or a resumed build) sees
either the whole array with its cache key or nothing. Renames are atomic on
one local file system, which is why building needs a local folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from .layout import CLIPS_GROUP, DATASET_GROUP, PRIVATE_DIR, SAMPLES_GROUP, STAGING_DIR, clip_path, feature_path
from .schema import DATASET_ARRAYS, FRAME_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION, feature_spec
from .versioning import check_schema_readable


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notes on fixed-length strings and consolidated metadata.

    Both are deliberate: strings are fixed-width (no object arrays) and
    consolidated metadata makes one-request opens possible over HTTP.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part.*")
        warnings.filterwarnings("ignore", message=r"Object at (\.mepipe|manifest\.json) is not recognized.*")
        yield


class StoreWriter:
    """Write access to a local store folder (created if absent)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def create(self, attrs: Mapping[str, Any] | None = None) -> None:
        """Create the root group if absent; refuse a store of another schema."""
        if (self.path / "zarr.json").exists():
            meta = json.loads((self.path / "zarr.json").read_text())
            check_schema_readable(meta.get("attributes", {}), self.path)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(self.path, mode="a", zarr_format=3)
        root.attrs.update({"schema_version": SCHEMA_VERSION, "state": "empty", **(attrs or {})})
        root.require_group(CLIPS_GROUP)

    def root_attrs(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "zarr.json").read_text()).get("attributes", {}))

    def update_root_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Update root attributes; drops stale consolidated metadata while building."""
        root = zarr.open_group(self.path, mode="a", zarr_format=3, use_consolidated=False)
        root.attrs.update(dict(attrs))

    def stored_key(self, sample: str, feature: str) -> str | None:
        """The cache key a complete stored feature was written with, or None."""
        meta = self.path / feature_path(sample, feature) / "zarr.json"
        try:
            return json.loads(meta.read_text())["attributes"].get("cache_key")
        except (FileNotFoundError, KeyError, ValueError):
            return None

    def write_feature(self, sample: str, feature: str, array: np.ndarray, cache_key: str,
                      attrs: Mapping[str, Any] | None = None) -> None:
        """Write one clip's feature as a single-chunk array, atomically."""
        spec = feature_spec(feature)
        arr = np.asarray(array)
        if arr.ndim != len(spec.dims):
            raise ValueError(f"{sample}: feature {feature!r} must have dims {spec.dims}, got shape {arr.shape}")
        zarr.open_group(self.path, path=clip_path(sample), mode="a", zarr_format=3, use_consolidated=False)
        self._write_array(feature_path(sample, feature), arr.astype(spec.dtype, copy=False), spec.dims,
                          {"cache_key": cache_key, "stage": spec.stage, **dict(attrs or {})})

    def write_dataset_array(self, name: str, array: np.ndarray, cache_key: str,
                            attrs: Mapping[str, Any] | None = None) -> None:
        """Write a dataset-level array (e.g. the STRCN-A mask) under ``dataset/``, atomically."""
        dims = DATASET_ARRAYS[name]
        arr = np.asarray(array)
        if arr.ndim != len(dims):
            raise ValueError(f"dataset array {name!r} must have dims {dims}, got shape {arr.shape}")
        zarr.open_group(self.path, path=DATASET_GROUP, mode="a", zarr_format=3, use_consolidated=False)
        self._write_array(f"{DATASET_GROUP}/{name}", arr, dims, {"cache_key": cache_key, **dict(attrs or {})})

    def dataset_attrs(self, name: str) -> dict[str, Any]:
        meta = self.path / DATASET_GROUP / name / "zarr.json"
        try:
            return dict(json.loads(meta.read_text()).get("attributes", {}))
        except FileNotFoundError:
            return {}

    def _write_array(self, rel_path: str, arr: np.ndarray, dims: tuple[str, ...], attrs: Mapping[str, Any]) -> None:
        staging = self.path / STAGING_DIR / uuid.uuid4().hex
        staging.parent.mkdir(parents=True, exist_ok=True)
        with quiet_zarr():
            z = zarr.create_array(
                store=str(staging), shape=arr.shape, chunks=tuple(max(1, n) for n in arr.shape),
                dtype=arr.dtype, dimension_names=list(dims), zarr_format=3, attributes=dict(attrs))
            if arr.size:
                z[...] = arr
        self._move_into_place(staging, self.path / rel_path)

    def _move_into_place(self, staging: Path, final: Path) -> None:
        trash = None
        if final.exists():
            trash = staging.with_name(staging.name + ".old")
            os.rename(final, trash)
        os.rename(staging, final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def prune_clips(self, keep: set[str]) -> list[str]:
        """Remove clip groups not in ``keep`` (so the store matches its sample table); returns their ids.

        Each clip folder is renamed out of the hierarchy first, so a kill
        mid-way never leaves a half-deleted clip visible.
        """
        clips = self.path / CLIPS_GROUP
        gone = sorted(p.name for p in clips.iterdir() if p.is_dir() and p.name not in keep) if clips.is_dir() else []
        for sample in gone:
            trash = self.path / STAGING_DIR / (uuid.uuid4().hex + ".old")
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(clips / sample, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return gone

    def read_feature(self, sample: str, feature: str) -> np.ndarray:
        with quiet_zarr():
            return zarr.open_array(self.path / feature_path(sample, feature), mode="r")[...]

    def feature_attrs(self, sample: str, feature: str) -> dict[str, Any]:
        meta = self.path / feature_path(sample, feature) / "zarr.json"
        return dict(json.loads(meta.read_text()).get("attributes", {}))

    def write_clip_attrs(self, sample: str, attrs: Mapping[str, Any]) -> None:
        g = zarr.open_group(self.path, path=clip_path(sample), mode="a", zarr_format=3, use_consolidated=False)
        g.attrs.update(dict(attrs))

    def write_samples(self, table: pd.DataFrame) -> None:
        """Write the sample table as the ``samples`` group (plain xarray-readable)."""
        import xarray as xr

        missing = [c for c in SAMPLE_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"sample table lacks columns {missing}")
        data, encoding = {}, {}
        for col in SAMPLE_COLUMNS:
            values = table[col]
            if col in FRAME_COLUMNS or col == "n_frames":
                data[col] = ("sample", pd.to_numeric(values, errors="coerce").astype("float64").to_numpy())
                encoding[col] = {"dtype": "int64", "_FillValue": -1}
            elif col == "fps":
                data[col] = ("sample", values.astype("float64").to_numpy())
            else:
                strings = values.fillna("").astype(str).to_numpy()
                width = max(1, max((len(s) for s in strings), default=1))
                data[col] = ("sample", strings.astype(f"<U{width}"))
        ds = xr.Dataset({k: v for k, v in data.items() if k != "sample"}, coords={"sample": data["sample"][1]})
        with quiet_zarr():
            ds.to_zarr(self.path, group=SAMPLES_GROUP, mode="w", zarr_format=3, consolidated=False,
                       encoding=encoding)

    def consolidate(self) -> None:
        with quiet_zarr():
            zarr.consolidate_metadata(self.path)

    def clear_staging(self) -> None:
        shutil.rmtree(self.path / STAGING_DIR, ignore_errors=True)

    def private_path(self, name: str) -> Path:
        p = self.path / PRIVATE_DIR / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p
