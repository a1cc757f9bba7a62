"""Every read checked: bytes reach Zarr only after they match the store's manifest.

:class:`VerifiedStore` is the one Zarr store every reader goes through
(:func:`.location.zarr_store`), whatever the store's location: each key
Zarr asks for is looked up in ``manifest.json``; a listed one is read from
the store's :mod:`back-end <.backends>` bounded by its recorded size,
hashed, and compared before Zarr decodes it, and an unlisted chunk reads as
fill values only where the manifest accounts for it (:mod:`.chunkgrid`:
an array whose metadata declares chunks the manifest neither lists nor
records as empty, or a chunk shape its files cannot decode to, is refused
before anything is allocated). A mismatch, a missing file, or a fetch that keeps
failing raises :class:`IntegrityError` naming the store, the clip, the
feature and the file; it never reads as fill values. Every metadata document
is also checked against the allow-list of :mod:`.safety`, and no chunk may be
larger than its array's shape and data type allow.

Remote reads are retried with exponential back-off on transient errors
(connection resets, time-outs, HTTP 5xx/408/429, and a 404 for a file the
manifest lists) within a time cap, then raised (:mod:`.backends.retry`).
The read cache (:class:`~.backends.cache.CachingBackend`) is a back-end
like the others.

A store whose build has not finished has no valid manifest; it is read
unverified only when the caller asks (``allow_incomplete``), with the same
bounds and metadata checks.

Cost (``benchmarks/verified_reads.py``, demo store): hashing 135 MB of
chunks took about 0.09 s of a 1.2 s pass (sha256 with the CPU's SHA
extensions), and the sources skip work Zarr's stores do (zipfile's CRC pass
over stored entries), so verified reads measured within a few per cent of
plain Zarr reads; a verified open costs some 50 ms more (parsing the
manifest and checking the 1 MB root metadata once).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from .backends import FetchError, ReadLimitError, RetryPolicy, StoreBackend, read_retrying
from .backends.retry import network_error
from .chunkgrid import arrays_in, grid_problems
from .errors import DataError
from .layout import CLIPS_GROUP, DATASET_GROUP, SAMPLES_GROUP
from .manifest import Manifest, ManifestError
from .safety import METADATA_LIMIT, V2_METADATA_KEYS, check_metadata, max_chunk_bytes
from .versioning import check_schema_readable

__all__ = ["IncompleteStoreError", "IntegrityError", "RetryPolicy", "VerifiedStore", "describe_key"]

log = logging.getLogger(__name__)

METADATA_NAME = "zarr.json"


class IntegrityError(DataError, RuntimeError):
    """Bytes read from a store do not match its manifest, are missing, or could not be fetched."""


class IncompleteStoreError(DataError, RuntimeError):
    """The store's last build has not finished."""


def _byte_slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start:byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset:]
    if isinstance(byte_range, SuffixByteRequest):
        return data[max(0, len(data) - byte_range.suffix):]
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _node_of(key: str) -> str:
    """The node (group or array path) a metadata key belongs to."""
    return key.rpartition(METADATA_NAME)[0].rstrip("/")


def describe_key(key: str, array: str | None = None) -> str:
    """What a store key holds, in words: ``clip 001_1_1, feature crops``, ``sample table``, ``root metadata``.

    Layout-agnostic within mepipe's groups: under ``clips/<sample>/...`` the
    clip is the second component and the feature the third, whether a
    feature is an array ``clips/<s>/<f>`` or a group ``clips/<s>/<f>/<f>``
    (with, say, a ``frame`` coordinate array beside it, then named too).
    """
    if array is not None:
        node = array
    elif key.endswith(METADATA_NAME):
        node = _node_of(key)
    else:
        node = key.rsplit("/c/", 1)[0] if "/c/" in key else key.rpartition("/")[0]
    parts = node.split("/") if node else []
    if not parts:
        return "root metadata"
    if parts[0] == CLIPS_GROUP and len(parts) >= 2:
        out = f"clip {parts[1]}" + (f", feature {parts[2]}" if len(parts) >= 3 else "")
        return out + (f" ({parts[-1]} array)" if len(parts) >= 4 and parts[-1] != parts[2] else "")
    if parts[0] == SAMPLES_GROUP:
        return "sample table" + (f", column {parts[-1]}" if len(parts) >= 2 else "")
    if parts[0] == DATASET_GROUP and len(parts) >= 2:
        return f"dataset array {parts[1]}"
    return f"node {node}"


class VerifiedStore(Store):
    """A read-only Zarr store whose every read is checked against the manifest (see the module docstring).

    Parameters
    ----------
    backend : StoreBackend
        Where the store's files are read from (bounded, inside the store);
        it also lists them when there is no manifest.
    manifest : Manifest or None
        The store's checked manifest; None reads unverified (a build in progress,
        opened with ``allow_incomplete``).
    retry : RetryPolicy, optional
        Patience with a remote back-end; default the location's.
    """

    def __init__(self, backend: StoreBackend, manifest: Manifest | None, retry: RetryPolicy | None = None):
        super().__init__(read_only=True)
        self.backend = backend
        self.where = backend.where
        self.manifest = manifest
        self.retry = retry or backend.location.retry
        self._bounds: dict[str, int] = {}
        self._metadata: dict[str, bytes] = {}
        self.root_attrs: dict[str, Any] | None = None
        """The root's attributes, once its ``zarr.json`` has been read (and checked)."""

    def __repr__(self) -> str:
        return f"VerifiedStore({self.where!r}, {'id ' + self.store_id if self.store_id else 'unverified'})"

    def __str__(self) -> str:
        return self.where

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VerifiedStore) and other.backend.location == self.backend.location
                and other.store_id == self.store_id)

    def with_read_only(self, read_only: bool = False) -> VerifiedStore:
        if not read_only:
            raise ValueError(f"{self.where}: stores are opened read-only")
        return self

    @property
    def store_id(self) -> str | None:
        """The store id (sha256 of the manifest), or None when reading unverified."""
        return self.manifest.store_id if self.manifest is not None else None

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        data = await self.read_bytes(key)
        return None if data is None else prototype.buffer.from_bytes(_byte_slice(data, byte_range))

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(key, prototype, br) for key, br in key_ranges)))

    async def exists(self, key: str) -> bool:
        if self.manifest is not None:
            return key in self.manifest.files
        return await self.backend.exists(key)

    async def read_bytes(self, key: str) -> bytes | None:
        """The checked bytes at ``key``; None when the store has no such file (Zarr reads fill values then)."""
        name = key.rpartition("/")[2]
        if name in V2_METADATA_KEYS:
            return None
        is_metadata = name == METADATA_NAME
        if is_metadata and key in self._metadata:
            return self._metadata[key]
        if self.manifest is None:
            data = await self._read_unverified(key, is_metadata)
        else:
            try:
                entry = self.manifest.entry(key)
            except ManifestError as err:
                raise IntegrityError(f"{self.where}: {err}") from None
            if entry is None:
                await self._check_absent(key, is_metadata)
                return None
            data = await self._read_verified(key, *entry, is_metadata)
        if is_metadata and data is not None:
            self._accept_metadata(key, data)
            if self.manifest is not None:
                self._metadata[key] = data
        return data

    async def _check_absent(self, key: str, is_metadata: bool) -> None:
        """Refuse to read fill values for a chunk that is there but missing from a manifest without a record of
        empty chunks (a manifest that records them accounts for every chunk; see :mod:`.chunkgrid`)."""
        if is_metadata or self.manifest.empty_chunks is not None or self._array_of(key) is None:
            return
        try:
            present = await self.backend.exists(key)
        except Exception as err:
            if not network_error(err):
                raise
            raise self._fail(key, f"is not in the manifest and could not be looked up ({err})") from None
        if present:
            raise self._fail(key, "is there but not in the manifest, so it cannot be checked (it would read as "
                                  "fill values); the manifest lost its entry or the file was added. Run "
                                  "`mepipe store verify` on it")

    def _array_of(self, key: str) -> str | None:
        parts = key.split("/")
        for i in range(len(parts) - 1, 0, -1):
            prefix = "/".join(parts[:i])
            if prefix in self._bounds:
                return prefix
        return None

    def _fail(self, key: str, problem: str) -> IntegrityError:
        return IntegrityError(f"{self.where}: {describe_key(key, self._array_of(key))}: {key} {problem}")

    def _limit(self, key: str, is_metadata: bool) -> int:
        if is_metadata:
            return METADATA_LIMIT
        array = self._array_of(key)
        if array is None:
            raise self._fail(key, "belongs to no array whose metadata was read, so its size cannot be bounded")
        return self._bounds[array]

    async def _read_verified(self, key: str, size: int, sha256: str, is_metadata: bool) -> bytes:
        limit = self._limit(key, is_metadata)
        if size > limit:
            allowed = "the metadata limit" if is_metadata else "its shape and data type allow"
            raise self._fail(key, f"is listed in the manifest with {size} bytes, more than {allowed} ({limit}); "
                                  "refusing the store")
        try:
            data = await self._fetch(key, size)
        except FileNotFoundError:
            raise self._fail(key, "is missing, though the manifest lists it; the copy is incomplete. Fetch or "
                                  "push the store again, or run `mepipe store verify` on it") from None
        except ReadLimitError:
            raise self._fail(key, f"is larger than the {size} bytes the manifest lists; the copy is damaged or "
                                  "was edited. Run `mepipe store verify` on it") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise self._fail(key, "does not match the manifest (its sha256 differs); the copy is damaged or was "
                                  "edited. Fetch the store again, or run `mepipe store verify` on it")
        return data

    async def _read_unverified(self, key: str, is_metadata: bool) -> bytes | None:
        limit = self._limit(key, is_metadata)
        try:
            return await self._fetch(key, limit)
        except FileNotFoundError:
            return None
        except ReadLimitError:
            allowed = "the metadata limit" if is_metadata else "its shape and data type allow"
            raise self._fail(key, f"is larger than {allowed} ({limit} bytes)") from None

    async def _fetch(self, key: str, limit: int) -> bytes:
        try:
            return await read_retrying(self.backend, key, limit, self.retry, retry_missing=self.manifest is not None)
        except FetchError as err:
            raise self._fail(key, f"could not be fetched: {err}") from None

    def _accept_metadata(self, key: str, data: bytes) -> None:
        """Safety-check a metadata document, learn the chunk bounds of its arrays and hold them to the manifest."""
        doc = check_metadata(data, key, self.where)
        node = _node_of(key)
        if not node:
            attrs = doc.get("attributes")
            attrs = attrs if isinstance(attrs, dict) else {}
            check_schema_readable(attrs, self.where)
            self.root_attrs = attrs
        for path, meta in arrays_in(node, doc):
            self._bounds[path] = max_chunk_bytes(meta) or 0
            if self.manifest is not None:
                problems = grid_problems(path, meta, self.manifest.files, self.manifest.empty_chunks)
                if problems:
                    raise IntegrityError(f"{self.where}: {describe_key('', path)}: refusing an array the manifest "
                                         "cannot account for: " + "; ".join(problems))

    # -- listing: in verified mode the manifest is the list of files ---------------------------------

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def set_partial_values(self, key_start_values) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def _names(self) -> list[str]:
        if self.manifest is not None:
            return sorted(self.manifest.files)
        return sorted(await self.backend.listing() or ())

    async def _listed(self, prefix: str) -> AsyncIterator[str]:
        for name in await self._names():
            if name.startswith(prefix):
                yield name

    def list(self) -> AsyncIterator[str]:
        return self._listed("")

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        return self._listed(prefix)

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        async def children() -> AsyncIterator[str]:
            start = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
            seen = set()
            for name in await self._names():
                if name.startswith(start):
                    child = name[len(start):].split("/", 1)[0]
                    if child not in seen:
                        seen.add(child)
                        yield child
        return children()

    async def is_empty(self, prefix: str) -> bool:
        async for _ in self.list_prefix(prefix):
            return False
        return True
