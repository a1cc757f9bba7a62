"""Writing a store: atomic per-clip feature groups, the sample and interval tables, build state.

Each feature group (its array, its ``frame`` coordinate and its attributes)
is written complete in a staging folder outside the Zarr hierarchy and then
renamed into place, so a reader (or a resumed build) sees either the whole
feature with its cache key or nothing. Renames are atomic on one local file
system, which is why building needs a local folder.

A long video's feature is built window by window in the same way, only
slower: its group is made under ``.mepipe/windows/<video>/<stage>/<key>/``
with its whole shape and a chunk per window; each window's task writes its
chunks (each file atomically, through Zarr) and then a small record that the
window is done; when every window is, the group gets its cache key and is
renamed into place. A killed build leaves finished windows there, keyed, and
its rerun does only the others.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from .features import feature_def
from .finite import check_finite, non_finite_problem
from .layout import (CLIPS_GROUP, DATASET_GROUP, FRAME_COORD, INTERVALS_GROUP, PRIVATE_DIR, SAMPLES_GROUP, STAGING_DIR,
                     WINDOWS_DIR, array_path, check_sample_id, clip_path, dataset_feature_path, feature_path)
from .schema import (INTEGER_COLUMNS, INTERVAL_ATTRS, INTERVAL_COLUMNS, INTERVAL_INTEGER_COLUMNS, MISSING_INT,
                     SAMPLE_ATTRS, SAMPLE_COLUMNS, SCHEMA_VERSION)
from .versioning import check_schema_readable
from .zarr_files import ZARR_JSON, DirectArray, group_json, read_single_chunk


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
    """Write access to a local store folder (created if absent).

    Feature groups of numeric and boolean arrays are written as files
    directly (:mod:`.zarr_files`: the same bytes Zarr writes, without its
    per-call machinery, which cost some 10 ms of CPU per group, more than
    most stages' kernels per clip); ``direct=False`` writes every group
    through Zarr, as the other dtypes always are.
    """

    def __init__(self, path: str | os.PathLike, *, direct: bool = True):
        self.path = Path(path)
        self.direct = direct

    def create(self, attrs: Mapping[str, Any] | None = None) -> None:
        """Create the root group if absent; refuse a store of another schema (older or newer)."""
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
        return self.feature_attrs(sample, feature).get("cache_key")

    def write_feature(self, sample: str, feature: str, array: np.ndarray, cache_key: str,
                      attrs: Mapping[str, Any] | None = None, *, frame_numbers: np.ndarray | None = None,
                      stage_params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Write one clip's feature as a group holding a single-chunk array, atomically.

        Parameters
        ----------
        sample, feature : str
        array : ndarray
            Checked against the feature table (rank; sizes too when
            ``stage_params`` is given) and cast to its dtype.
        cache_key : str
            Stored in the group's attributes with ``attrs``.
        frame_numbers : ndarray, optional
            The clip's source frame numbers, written as the ``frame``
            coordinate of a frame-indexed feature.
        stage_params : mapping, optional
            Canonical parameters of every stage, to check the array's sizes.
        """
        spec = feature_def(feature)
        arr = _checked(spec, sample, array, stage_params)
        if not (self.path / clip_path(sample) / ZARR_JSON).is_file():  # the clip's group, made by its first write
            zarr.open_group(self.path, path=clip_path(sample), mode="a", zarr_format=3, use_consolidated=False)
        coord = None
        if frame_numbers is not None and spec.frame_indexed and feature != FRAME_COORD:
            coord = np.asarray(frame_numbers, dtype=feature_def(FRAME_COORD).dtype)
            if coord.shape != arr.shape[:1]:
                raise ValueError(f"{sample}: {len(coord)} frame numbers for {feature!r} of {arr.shape[0]} frames")
        self._write_group(feature_path(sample, feature), feature, arr.astype(spec.dtype, copy=False),
                          {"cache_key": cache_key, "stage": spec.stage, **dict(attrs or {})}, coord)

    def write_dataset_feature(self, feature: str, array: np.ndarray, cache_key: str,
                              attrs: Mapping[str, Any] | None = None) -> None:
        """Write a dataset-level feature (e.g. the STRCN-A mask) under ``dataset/``, atomically."""
        spec = feature_def(feature)
        arr = np.asarray(array)
        spec.check(arr)
        zarr.open_group(self.path, path=DATASET_GROUP, mode="a", zarr_format=3, use_consolidated=False)
        self._write_group(dataset_feature_path(feature), feature, arr.astype(spec.dtype, copy=False),
                          {"cache_key": cache_key, "stage": spec.stage, **dict(attrs or {})})

    def dataset_attrs(self, feature: str) -> dict[str, Any]:
        return self._group_attrs(dataset_feature_path(feature))

    def _group_attrs(self, rel_path: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.path / rel_path / "zarr.json").read_text()).get("attributes", {}))
        except (FileNotFoundError, ValueError):
            return {}

    def _write_group(self, rel_path: str, name: str, arr: np.ndarray, attrs: Mapping[str, Any],
                     frame_numbers: np.ndarray | None = None) -> None:
        spec = feature_def(name)
        staging = self.path / STAGING_DIR / uuid.uuid4().hex
        staging.parent.mkdir(parents=True, exist_ok=True)
        arrays = [(name, arr, spec.dims, spec.attrs()), *_coordinates(spec, frame_numbers)]
        direct = [DirectArray.of(a.dtype, dims, array_attrs) if self.direct and DirectArray.supports(a) else None
                  for _, a, dims, array_attrs in arrays]
        if all(d is not None and d.usable() for d in direct):
            staging.mkdir()
            (staging / ZARR_JSON).write_bytes(group_json(attrs))
            for (array_name, a, _, _), writer in zip(arrays, direct):
                writer.write(staging / array_name, a)
        else:
            with quiet_zarr():
                group = zarr.open_group(str(staging), mode="w", zarr_format=3, attributes=dict(attrs))
                for array_name, a, dims, array_attrs in arrays:
                    self._add_array(group, array_name, a, dims, array_attrs)
        self._move_into_place(staging, self.path / rel_path)

    @staticmethod
    def _add_array(group: zarr.Group, name: str, arr: np.ndarray, dims: tuple[str, ...],
                   attrs: Mapping[str, Any]) -> None:
        z = group.create_array(name, shape=arr.shape, chunks=tuple(max(1, n) for n in arr.shape), dtype=arr.dtype,
                               dimension_names=list(dims), attributes=dict(attrs))
        if arr.size:
            z[...] = arr

    # -- long videos, window by window ---------------------------------------------------------------

    def _building(self, sample: str, stage: str, key: str | None = None) -> Path:
        """Where a long video's features of ``stage`` are built under ``key`` (all keys' parent without one)."""
        folder = self.path / WINDOWS_DIR / check_sample_id(sample) / stage
        return folder / key if key is not None else folder

    def write_window(self, sample: str, stage: str, key: str, feature: str, start: int, array: np.ndarray, *,
                     length: int, chunk: int, frame_numbers: Sequence[int],
                     stage_params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Write rows ``start`` onwards of a long video's feature being built under ``key``.

        Parameters
        ----------
        sample, stage, key, feature : str
            The video, the stage writing, its cache key and the feature.
        start : int
            Row of the first of ``array``'s rows (a multiple of ``chunk``).
        array : ndarray
            The window's rows; checked against the feature table and cast to its dtype.
        length, chunk : int
            Rows of the whole feature, and rows per chunk (the window length).
        frame_numbers : sequence of int
            The video's frame numbers: the ``frame`` coordinate of a frame-indexed feature.
        stage_params : mapping, optional
            Canonical parameters of every stage, to check the array's sizes.
        """
        spec = feature_def(feature)
        arr = _checked(spec, sample, array, stage_params)
        if start % chunk or start + len(arr) > length:
            raise ValueError(f"{sample}: rows {start}..{start + len(arr)} of {feature!r} do not fit its {length} rows "
                             f"in chunks of {chunk}")
        group = self._building(sample, stage, key) / feature
        if not (group / ZARR_JSON).is_file():
            self._create_window_group(group, spec, arr, length, chunk, frame_numbers, {"stage": stage})
        with quiet_zarr():
            z = zarr.open_array(group / feature, mode="r+", zarr_format=3)
            if tuple(z.shape[1:]) != arr.shape[1:]:
                raise ValueError(f"{sample}: {feature!r} rows of shape {arr.shape[1:]}, where its earlier windows' "
                                 f"are {tuple(z.shape[1:])}")
            z[start:start + len(arr)] = arr.astype(spec.dtype, copy=False)

    def _create_window_group(self, group: Path, spec, arr: np.ndarray, length: int, chunk: int,
                             frame_numbers: Sequence[int], attrs: Mapping[str, Any]) -> None:
        """Make a feature's group with its whole shape, chunked by windows, unless another window's task just has."""
        staging = self.path / STAGING_DIR / uuid.uuid4().hex
        indexed = spec.frame_indexed and spec.name != FRAME_COORD
        coord = np.asarray(frame_numbers, dtype=feature_def(FRAME_COORD).dtype) if indexed else None
        with quiet_zarr():
            g = zarr.open_group(str(staging), mode="w", zarr_format=3, attributes=dict(attrs))
            g.create_array(spec.name, shape=(length, *arr.shape[1:]), chunks=(chunk, *arr.shape[1:]),
                           dtype=spec.dtype, dimension_names=list(spec.dims), attributes=spec.attrs())
            for array_name, a, dims, array_attrs in _coordinates(spec, coord):
                self._add_array(g, array_name, a, dims, array_attrs)
        group.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, group)
        except OSError:  # made by another window's task meanwhile: that one is used
            shutil.rmtree(staging, ignore_errors=True)
            if not (group / ZARR_JSON).is_file():
                raise

    def read_window(self, sample: str, feature: str, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` of a long video's feature of cache key ``key``, finished or being built."""
        building = self._building(sample, feature_def(feature).stage, key) / feature / feature
        for _ in range(2):  # finished between the two looks: in place on the second
            path = self.path / array_path(sample, feature) if self.stored_key(sample, feature) == key else building
            if (path / ZARR_JSON).is_file():
                with quiet_zarr():
                    return zarr.open_array(path, mode="r", zarr_format=3)[start:stop]
        raise FileNotFoundError(f"{sample}: {feature!r} of key {key} is neither built nor being built")

    def mark_window(self, sample: str, stage: str, key: str, index: int, record: Mapping[str, Any]) -> None:
        """Record that window ``index`` of a video's stage is written (after all of its chunks are)."""
        folder = self._building(sample, stage, key) / "done"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{index}.{uuid.uuid4().hex}.part"
        tmp.write_text(json.dumps(dict(record)))
        os.replace(tmp, folder / f"{index}.json")

    def window_marks(self, sample: str, stage: str, key: str) -> dict[int, dict[str, Any]]:
        """The finished windows of a video's stage being built under ``key``: index -> what its task recorded."""
        folder = self._building(sample, stage, key) / "done"
        if not folder.is_dir():
            return {}
        out = {}
        for path in folder.glob("*.json"):
            if path.stem.isdigit():
                try:
                    out[int(path.stem)] = json.loads(path.read_text())
                except ValueError:  # unreadable: that window is done again
                    continue
        return out

    def finish_windows(self, sample: str, stage: str, key: str, outputs: Sequence[str],
                       attrs: Mapping[str, Any]) -> None:
        """Give a video's fully written features of ``stage`` their cache key and move them into place.

        Each feature is renamed into ``clips/<video>/`` (replacing an older
        one), then the stage's window folder of every key is removed.
        """
        built = self._building(sample, stage, key)
        missing = [f for f in outputs if not (built / f / ZARR_JSON).is_file()]
        if missing:
            raise FileNotFoundError(f"{sample}: {stage} wrote no {', '.join(missing)} in any window")
        if not (self.path / clip_path(sample) / ZARR_JSON).is_file():
            zarr.open_group(self.path, path=clip_path(sample), mode="a", zarr_format=3, use_consolidated=False)
        for feature in outputs:
            group = built / feature
            meta = group / ZARR_JSON
            tmp = group / f".{ZARR_JSON}.{uuid.uuid4().hex}.part"
            tmp.write_bytes(group_json({"cache_key": key, "stage": stage, **dict(attrs)}))
            os.replace(tmp, meta)
            self._move_into_place(group, self.path / feature_path(sample, feature))
        shutil.rmtree(self._building(sample, stage), ignore_errors=True)
        with contextlib.suppress(OSError):  # the video's folder, once no stage of it is being built
            self._building(sample, stage).parent.rmdir()

    def prune_windows(self, sample: str, stage: str, keep: str | None) -> None:
        """Remove a video's windows of ``stage`` built under any key but ``keep`` (all of them with None)."""
        folder = self._building(sample, stage)
        if folder.is_dir():
            for old in folder.iterdir():
                if old.name != keep:
                    shutil.rmtree(old, ignore_errors=True)

    def _move_into_place(self, staging: Path, final: Path) -> None:
        trash = None
        if final.exists():
            trash = staging.with_name(staging.name + ".old")
            os.rename(final, trash)
        os.rename(staging, final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def clip_ids(self) -> list[str]:
        """The clips the store holds a group of, sorted."""
        clips = self.path / CLIPS_GROUP
        return sorted(p.name for p in clips.iterdir() if p.is_dir()) if clips.is_dir() else []

    def prune_clips(self, keep: set[str]) -> list[str]:
        """Remove clip groups not in ``keep`` (so the store matches its sample table); returns their ids."""
        gone = [sample for sample in self.clip_ids() if sample not in keep]
        for sample in gone:
            self.discard(f"{CLIPS_GROUP}/{sample}")  # a folder name as listed, whatever it is
        windows = self.path / WINDOWS_DIR
        for unfinished in (p.name for p in windows.iterdir() if p.name not in keep) if windows.is_dir() else ():
            self.discard(f"{WINDOWS_DIR}/{unfinished}")
        return gone

    def discard(self, rel_path: str) -> None:
        """Remove a group (a clip, a feature) if present: renamed out of the hierarchy first, so a kill
        mid-way never leaves it half-deleted and visible."""
        if not (self.path / rel_path).is_dir():
            return
        trash = self.path / STAGING_DIR / (uuid.uuid4().hex + ".old")
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.path / rel_path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def read_feature(self, sample: str, feature: str) -> np.ndarray:
        """A stored feature of one clip (a stage's input), refused if it holds NaN it may not (:mod:`.finite`)."""
        arr = read_single_chunk(self.path / array_path(sample, feature)) if self.direct else None
        if arr is None:
            with quiet_zarr():
                arr = zarr.open_array(self.path / array_path(sample, feature), mode="r")[...]
        return check_finite(feature_def(feature), arr, f"{self.path}: clip {sample!r}, feature {feature!r}")

    def feature_attrs(self, sample: str, feature: str) -> dict[str, Any]:
        """Attributes of a clip's feature group (cache key, stage, events); empty when it is absent."""
        return self._group_attrs(feature_path(sample, feature))

    def stored_features(self) -> set[str]:
        """Features present (completely written) for at least one clip."""
        clips = self.path / CLIPS_GROUP
        if not clips.is_dir():
            return set()
        return {f.name for clip in clips.iterdir() if clip.is_dir() for f in clip.iterdir()
                if (f / "zarr.json").is_file()}

    def clip_attrs(self, sample: str) -> dict[str, Any]:
        return self._group_attrs(clip_path(sample))

    def write_clip_attrs(self, sample: str, attrs: Mapping[str, Any]) -> None:
        g = zarr.open_group(self.path, path=clip_path(sample), mode="a", zarr_format=3, use_consolidated=False)
        g.attrs.update(dict(attrs))

    def write_samples(self, table: pd.DataFrame) -> None:
        """Write the sample table as the ``samples`` group (plain xarray-readable).

        Integer columns are int64 with :data:`~.schema.MISSING_INT` for a
        missing value and no ``_FillValue`` (which xarray would decode to
        float64 with NaN), so ``xarray.open_zarr(path, group="samples")``
        reads them as integers. Every column carries CF ``units`` and
        ``long_name``.
        """
        self._write_table(SAMPLES_GROUP, "sample", table, SAMPLE_COLUMNS, SAMPLE_ATTRS, INTEGER_COLUMNS)

    def write_intervals(self, table: pd.DataFrame) -> None:
        """Write a long-video store's annotated intervals as the ``intervals`` group, as the sample table is written.

        ``table`` has the columns of :data:`~.schema.INTERVAL_COLUMNS` but
        ``interval``, which is the row number.
        """
        table = table.reset_index(drop=True).assign(interval=lambda t: np.arange(len(t), dtype=np.int64))
        self._write_table(INTERVALS_GROUP, "interval", table, INTERVAL_COLUMNS, INTERVAL_ATTRS,
                          INTERVAL_INTEGER_COLUMNS)

    def _write_table(self, group: str, index: str, table: pd.DataFrame, columns: Sequence[str],
                     column_attrs: Mapping[str, tuple[str, str]], integers: Sequence[str]) -> None:
        import xarray as xr

        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"{group} table lacks columns {missing}")
        data = {}
        for col in columns:
            values = table[col]
            units, long_name = column_attrs[col]
            attrs = {"units": units, "long_name": long_name}
            if col in integers:
                numbers = pd.to_numeric(values, errors="coerce")
                if (numbers < 0).any():
                    bad = table.loc[numbers < 0, index].tolist()
                    raise ValueError(f"{group} table: negative {col} for {bad[:5]}")
                data[col] = (index, numbers.fillna(MISSING_INT).round().astype("int64").to_numpy(),
                             {**attrs, "valid_min": 0, "comment": f"{MISSING_INT} = not known"})
            elif col == "fps":
                data[col] = (index, values.astype("float64").to_numpy(), attrs)
            elif col == index and pd.api.types.is_integer_dtype(values):
                data[col] = (index, values.to_numpy(), attrs)
            else:
                strings = values.fillna("").astype(str).to_numpy()
                width = max(1, max((len(s) for s in strings), default=1))
                data[col] = (index, strings.astype(f"<U{width}"), attrs)
        ds = xr.Dataset({k: v for k, v in data.items() if k != index}, coords={index: data[index]})
        with quiet_zarr():
            ds.to_zarr(self.path, group=group, mode="w", zarr_format=3, consolidated=False)

    def consolidate(self) -> None:
        with quiet_zarr():
            zarr.consolidate_metadata(self.path)

    def clear_staging(self) -> None:
        shutil.rmtree(self.path / STAGING_DIR, ignore_errors=True)

    def private_path(self, name: str) -> Path:
        p = self.path / PRIVATE_DIR / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _checked(spec, sample: str, array: np.ndarray, stage_params: Mapping[str, Mapping[str, Any]] | None) -> np.ndarray:
    """``array`` as an ndarray, refused (naming the clip) unless it has the feature's rank and sizes and only
    the non-finite values the feature declares (:mod:`.finite`)."""
    arr = np.asarray(array)
    try:
        spec.check(arr, stage_params)
    except ValueError as err:
        raise ValueError(f"{sample}: {err}") from None
    problem = non_finite_problem(spec, arr)
    if problem is not None:
        raise ValueError(f"{sample}: feature {spec.name!r} came out with {problem}; not written")
    return arr


def _coordinates(spec, frame_numbers: np.ndarray | None) -> list[tuple[str, np.ndarray, tuple[str, ...], dict]]:
    """The coordinate arrays written beside a feature: its ``frame`` numbers, and the names of its labelled dims."""
    out = []
    if frame_numbers is not None:
        out.append((FRAME_COORD, frame_numbers, (FRAME_COORD,), feature_def(FRAME_COORD).attrs()))
    for dim, names in spec.labels.items():
        width = max(len(n) for n in names)
        out.append((dim, np.asarray(names, dtype=f"<U{width}"), (dim,), {"long_name": f"{dim} names"}))
    return out
