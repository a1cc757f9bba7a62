"""Single-chunk Zarr v3 arrays and groups written as plain files, byte for byte as Zarr writes them.

A build writes every feature of every clip as a group holding one or two
single-chunk arrays. Through Zarr each group costs about 10 ms of CPU
(store-existence checks, metadata parsing and a round trip to Zarr's
event-loop thread per call), more than the align kernel spends on a
30-frame clip of 2040x1088 frames. The files themselves are few and
simple: a ``zarr.json`` per node and one chunk, ``c/0/.../0``, holding the
array's C-order little-endian bytes compressed by Zarr's default codecs.

The metadata of each (dtype, dimension names, attributes) combination is
made once per process by Zarr itself (:meth:`DirectArray.of`), so its
defaults (codecs, fill value, key encoding) are Zarr's; only the shape is
filled in per array. The chunk is encoded with those codecs when they are
the ``bytes`` + ``zstd`` pair of Zarr's defaults, and skipped when every
value equals the fill value, as Zarr does (``write_empty_chunks`` is off by
default). Anything else (other dtypes or codecs) is not :meth:`supported
<DirectArray.supports>` and goes through Zarr. ``tests/test_zarr_files.py``
checks that both ways give the same files.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.buffer.cpu import NDBuffer
from zarr.core.group import GroupMetadata
from zarr.storage import MemoryStore

ZARR_JSON = "zarr.json"

_KINDS = "biuf"
"""dtype kinds written directly: bool, signed and unsigned integers, floats."""


def group_json(attrs: Mapping[str, Any]) -> bytes:
    """The ``zarr.json`` bytes of a Zarr v3 group with ``attrs``."""
    return GroupMetadata(attributes=dict(attrs), zarr_format=3).to_buffer_dict(
        zarr.core.buffer.default_buffer_prototype())[ZARR_JSON].to_bytes()


def _dumps(metadata: dict[str, Any]) -> bytes:
    return json.dumps(metadata, indent=zarr.config.get("json_indent"), allow_nan=True).encode()


@dataclasses.dataclass(frozen=True)
class DirectArray:
    """How to write single-chunk arrays of one dtype, dimension names and attributes.

    Attributes
    ----------
    metadata : dict
        Zarr's metadata document for such an array; ``shape`` and the chunk
        shape are replaced per array.
    fill_value : numpy scalar
        Zarr's fill value for the dtype.
    endian : str or None
        The ``bytes`` codec's byte order (None for one-byte dtypes).
    zstd : ZstdCodec or None
        The compressor, when it is Zarr's zstd; None when the codecs are
        anything else, which :meth:`supports` then refuses.
    """

    metadata: dict[str, Any]
    fill_value: Any
    endian: str | None
    zstd: ZstdCodec | None

    @staticmethod
    def supports(arr: np.ndarray) -> bool:
        """Whether arrays like ``arr`` are written directly (numeric or bool, at least one dimension)."""
        return arr.dtype.kind in _KINDS and arr.ndim >= 1

    @classmethod
    def of(cls, dtype: np.dtype, dims: tuple[str, ...], attrs: Mapping[str, Any]) -> DirectArray:
        """The writer of arrays with this dtype, dimension names and attributes (Zarr's metadata, made once)."""
        return _direct_array(np.dtype(dtype).str, tuple(dims), json.dumps(dict(attrs)))

    def usable(self) -> bool:
        return self.zstd is not None

    def _all_fill(self, data: np.ndarray) -> bool:
        """Whether every value is the fill value, as Zarr decides it (then no chunk is written).

        With a fill value of all-zero bits (Zarr's default for every kind
        written here; a float 0.0 fill Zarr compares bit for bit, so -0.0
        is not it) that is "no non-zero byte", without the boolean array
        of Zarr's comparison, which cost as much as compressing the crops.
        """
        if not np.asarray(self.fill_value).tobytes().strip(b"\0"):
            return not data.reshape(-1).view(np.uint8).any()
        return NDBuffer.from_numpy_array(data).all_equal(self.fill_value)

    def write(self, folder: Path, arr: np.ndarray) -> None:
        """Write ``arr`` as a single-chunk array in the new folder ``folder`` (its ``zarr.json`` and chunk)."""
        shape = list(arr.shape)
        metadata = dict(self.metadata, shape=shape,
                        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [max(1, n) for n in shape]}})
        folder.mkdir()
        (folder / ZARR_JSON).write_bytes(_dumps(metadata))
        data = np.ascontiguousarray(arr)
        if not arr.size or self._all_fill(data):
            return
        if self.endian is not None and data.dtype.itemsize > 1:
            data = data.astype(data.dtype.newbyteorder("<" if self.endian == "little" else ">"), copy=False)
        chunk = folder.joinpath("c", *["0"] * arr.ndim)
        chunk.parent.mkdir(parents=True)
        chunk.write_bytes(zstd_compressor(self.zstd.level, self.zstd.checksum).encode(data.tobytes()))


@lru_cache(maxsize=8)
def zstd_compressor(level: int, checksum: bool) -> numcodecs.Zstd:
    """numcodecs' Zstd with these settings: what Zarr's ``ZstdCodec`` compresses and decompresses chunks with."""
    return numcodecs.Zstd(level=level, checksum=checksum)


@lru_cache(maxsize=256)
def _direct_array(dtype: str, dims: tuple[str, ...], attrs_json: str) -> DirectArray:
    """Zarr's metadata for a (1,)*ndim array of this kind, and whether its codecs are bytes + zstd."""
    ndim = len(dims)
    z = zarr.create_array(MemoryStore(), shape=(1,) * ndim, chunks=(1,) * ndim, dtype=np.dtype(dtype),
                          dimension_names=list(dims), attributes=json.loads(attrs_json), zarr_format=3)
    meta = z.metadata
    codecs = list(meta.codecs)
    serial = codecs[0] if codecs and isinstance(codecs[0], BytesCodec) else None
    zstd = codecs[1] if len(codecs) == 2 and isinstance(codecs[1], ZstdCodec) and serial is not None else None
    endian = serial.endian.value if serial is not None and serial.endian is not None else None
    return DirectArray(meta.to_dict(), meta.fill_value, endian, zstd)


def read_single_chunk(folder: Path) -> np.ndarray | None:
    """The array a single-chunk ``bytes`` + ``zstd`` array folder holds, read without Zarr; None if it is not one.

    The reading counterpart of :meth:`DirectArray.write`, for the build's
    own reads of what it has just written (:meth:`StoreWriter.read_feature
    <mepipe.featurestore.writer.StoreWriter.read_feature>`). Anything else
    (other dtypes or codecs, several chunks, a chunk left out because it
    held only the fill value) returns None and is read through Zarr.
    """
    try:
        meta = json.loads((folder / ZARR_JSON).read_bytes())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    shape = tuple(meta.get("shape", ()))
    codecs = meta.get("codecs", [])
    names = [c.get("name") for c in codecs]
    dtype = meta.get("data_type")
    if (meta.get("node_type") != "array" or not shape or names != ["bytes", "zstd"] or not isinstance(dtype, str)
            or meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape") != [max(1, n) for n in shape]
            or meta.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}}):
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    if dt.kind not in _KINDS:
        return None
    endian = codecs[0].get("configuration", {}).get("endian")
    if dt.itemsize > 1:
        dt = dt.newbyteorder("<" if endian == "little" else ">")
    chunk = folder.joinpath("c", *["0"] * len(shape))
    if not chunk.is_file():
        return None
    out = np.empty(shape, dtype=dt)
    if out.size:
        codec = ZstdCodec(**codecs[1].get("configuration", {}))
        zstd_compressor(codec.level, codec.checksum).decode(chunk.read_bytes(), out=out)
    return out.astype(dt.newbyteorder("="), copy=False)
