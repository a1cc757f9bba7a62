"""Feature groups written as files directly are the files Zarr writes, byte for byte."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from mepipe.featurestore import open_store
from mepipe.featurestore.layout import CLIPS_GROUP, feature_path
from mepipe.featurestore.writer import StoreWriter
from mepipe.featurestore.zarr_files import DirectArray, read_single_chunk


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def zarr_written(folder: Path, arr: np.ndarray, dims: tuple[str, ...], attrs: dict) -> dict[str, bytes]:
    group = zarr.open_group(str(folder), mode="w", zarr_format=3)
    z = group.create_array("a", shape=arr.shape, chunks=tuple(max(1, n) for n in arr.shape), dtype=arr.dtype,
                           dimension_names=list(dims), attributes=attrs)
    if arr.size:
        z[...] = arr
    return tree(folder / "a")


CASES = {
    "uint8 crops": np.random.default_rng(0).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8),
    "float32 with NaN": np.array([[1.5, np.nan], [-2.0, 3.25]], np.float32),
    "float32 all -0.0 (written: Zarr compares bits)": np.full((3, 2), -0.0, np.float32),
    "float32 all zero (not written, as Zarr)": np.zeros((3, 2), np.float32),
    "float64": np.linspace(0, 1, 7),
    "int64": np.arange(-3, 9, dtype=np.int64).reshape(3, 4),
    "bool all False": np.zeros(6, bool),
    "bool mixed": np.array([True, False, True]),
    "empty": np.zeros((0, 68, 2), np.float32),
    "big-endian input": np.arange(6, dtype=">i4"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_direct_array_files_equal_zarrs(tmp_path, name):
    arr = CASES[name]
    dims = tuple("abcd"[:arr.ndim])
    attrs = {"units": "1", "long_name": name}
    expected = zarr_written(tmp_path / "zarr", arr, dims, attrs)
    writer = DirectArray.of(arr.dtype, dims, attrs)
    assert writer.usable()
    writer.write(tmp_path / "direct", arr)
    assert tree(tmp_path / "direct") == expected
    read = read_single_chunk(tmp_path / "direct")
    through_zarr = zarr.open_array(str(tmp_path / "direct"), mode="r")[...]
    np.testing.assert_array_equal(through_zarr, arr)
    if read is not None:  # None (read through Zarr): no chunk, as for the empty and all-fill arrays
        assert read.dtype == through_zarr.dtype and read.flags.writeable
        np.testing.assert_array_equal(read, through_zarr)
    else:
        assert not (arr.size and arr.reshape(-1).view(np.uint8).any())


def test_other_dtypes_are_left_to_zarr():
    assert not DirectArray.supports(np.array(["a", "bc"]))
    assert not DirectArray.supports(np.float32(1.0).reshape(()))


@pytest.mark.slow
def test_every_feature_of_a_built_store_is_written_as_zarr_writes_it(small_store, tmp_path):
    """Rewriting each stored feature of a real build, directly and through Zarr, gives the same files."""
    store = open_store(small_store)
    direct, through_zarr = StoreWriter(tmp_path / "direct.zarr"), StoreWriter(tmp_path / "zarr.zarr", direct=False)
    for writer in (direct, through_zarr):
        writer.create()
    written = 0
    for sample in store.sample_ids:
        frames = store.read("frame", sample)
        for feature in store.features:
            if not store.has(feature, sample):
                continue
            arr = store.read(feature, sample)
            attrs = {"stage_version": "x", "events": {"apex": 3, "ratio": 0.5}}
            for writer in (direct, through_zarr):
                writer.write_feature(sample, feature, arr, "key", attrs, frame_numbers=frames)
            written += 1
    assert written >= 8 * len(store.sample_ids)
    for sample in store.sample_ids:
        for feature in store.features:
            if store.has(feature, sample):
                read = direct.read_feature(sample, feature)
                expected = through_zarr.read_feature(sample, feature)
                assert read.dtype == expected.dtype
                np.testing.assert_array_equal(read, expected)
    assert tree(tmp_path / "direct.zarr" / CLIPS_GROUP) == tree(tmp_path / "zarr.zarr" / CLIPS_GROUP)
    sample = store.sample_ids[0]
    assert (tmp_path / "direct.zarr" / feature_path(sample, "crops") / "crops" / "c").is_dir()
