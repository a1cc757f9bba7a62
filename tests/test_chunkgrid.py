"""An array's chunk grid against the manifest (featurestore/chunkgrid.py), on hand-checkable inputs."""
from __future__ import annotations

import json

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.core.chunk_key_encodings import parse_chunk_key_encoding
from zarr.storage import LocalStore

from mepipe.featurestore.chunkgrid import (FILL_LIMIT, MAX_EXPANSION, chunk_keys, empty_chunk_keys, grid_count,
                                           grid_problems)


def _meta(shape, chunks, encoding=None, dtype="float32"):
    meta = {"node_type": "array", "shape": shape, "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}}}
    if encoding is not None:
        meta["chunk_key_encoding"] = encoding
    return meta


@pytest.mark.parametrize("shape, chunks", [([4, 68, 2], [4, 68, 2]), ([5, 3], [2, 3]), ([], []), ([7], [3]),
                                           ([0, 3], [1, 3])])
@pytest.mark.parametrize("encoding", [None, {"name": "default", "configuration": {"separator": "."}},
                                      {"name": "v2"}, {"name": "v2", "configuration": {"separator": "/"}}])
def test_chunk_keys_are_zarrs(shape, chunks, encoding):
    counts = [-(-s // c) for s, c in zip(shape, chunks)]
    zarr_encoding = parse_chunk_key_encoding(encoding or {"name": "default"})
    expected = [f"a/{zarr_encoding.encode_chunk_key(index)}" for index in np.ndindex(*counts)]
    assert list(chunk_keys("a", _meta(shape, chunks, encoding))) == expected
    assert grid_count(_meta(shape, chunks, encoding)) == len(expected)


def test_empty_chunks_are_the_chunks_zarr_left_out(tmp_path):
    """Zarr writes no chunk that holds only the fill value; those are exactly the ones recorded empty."""
    data = np.zeros((6, 4), np.float32)
    data[2:4] = 1.0  # only the second of three row-chunks holds anything but zeros
    zarr.create_array(LocalStore(tmp_path), name="x", shape=data.shape, chunks=(2, 4), dtype=data.dtype)[...] = data
    files = {p.relative_to(tmp_path).as_posix(): {} for p in tmp_path.rglob("*") if p.is_file()}
    meta = json.loads((tmp_path / "x" / "zarr.json").read_text())
    assert sorted(n for n in files if "/c/" in n) == ["x/c/1/0"]
    assert empty_chunk_keys(files, iter([("x", meta)])) == ["x/c/0/0", "x/c/2/0"]


FILES = {"a/c/0/0": {"size": 100, "sha256": "0" * 64}, "a/c/1/0": {"size": 100, "sha256": "0" * 64}}


def test_every_chunk_must_be_listed_or_recorded_empty():
    assert grid_problems("a", _meta([4, 3], [2, 3]), FILES, frozenset()) == []
    assert grid_problems("a", _meta([5, 3], [2, 3]), FILES, frozenset({"a/c/2/0"})) == []
    (problem,) = grid_problems("a", _meta([6, 3], [2, 3]), FILES, frozenset())
    assert "1 chunk(s) the manifest neither lists nor records as empty (e.g. a/c/2/0)" in problem


def test_older_manifests_read_absent_chunks_as_fill_up_to_the_limit():
    assert grid_problems("a", _meta([6, 3], [2, 3]), FILES, None) == []
    rows = 1 << 20  # float32 rows of 3 per chunk: 12 MiB
    n = FILL_LIMIT // (rows * 12) + 1  # absent chunks: one more than the fill limit allows
    others = {f"b/{i}": {"size": 1, "sha256": "0" * 64} for i in range(100)}  # a manifest of other arrays too
    (problem,) = grid_problems("a", _meta([n * rows, 3], [rows, 3]), others, None)
    assert f"would read {n * rows * 12} bytes of fill values" in problem


def test_a_vast_grid_is_refused_by_its_count():
    (problem,) = grid_problems("a", _meta([10**9, 68, 2], [4, 68, 2]), FILES, frozenset())
    assert "makes 250000000 chunks, more than the manifest can account for" in problem


def test_a_chunk_cannot_stand_for_more_than_its_codecs_expand_it_to():
    """2 x 3 float32 = 24 bytes per chunk: a 1-byte chunk can decode to 32768, a 0-byte one to nothing."""
    small = {"a/c/0/0": {"size": 1, "sha256": "0" * 64}}
    assert grid_problems("a", _meta([2, 3], [2, 3]), small, frozenset()) == []
    (problem,) = grid_problems("a", _meta([2, 3], [2, 3]), {"a/c/0/0": {"size": 0, "sha256": "0" * 64}},
                               frozenset())
    assert "holds 0 bytes, which cannot decode to the 24 bytes" in problem
    big = MAX_EXPANSION + 1  # bytes per chunk: one more than a 1-byte file can stand for
    (problem,) = grid_problems("a", _meta([big], [big], dtype="uint8"), {"a/c/0": {"size": 1, "sha256": "0" * 64}},
                               frozenset())
    assert f"cannot decode to the {big} bytes" in problem


@pytest.mark.parametrize("codec", [numcodecs.Zstd(level=1), numcodecs.Zstd(level=22), numcodecs.GZip(level=9),
                                   numcodecs.Blosc(cname="zstd", clevel=9), numcodecs.Blosc(cname="lz4", clevel=9)],
                         ids=["zstd-1", "zstd-22", "gzip-9", "blosc-zstd", "blosc-lz4"])
def test_no_allowed_codec_expands_past_the_bound(codec):
    """The most compressible chunk there is (64 MiB of one byte) stays under MAX_EXPANSION."""
    raw = bytes(64 << 20)
    assert len(raw) / len(codec.encode(raw)) < MAX_EXPANSION
