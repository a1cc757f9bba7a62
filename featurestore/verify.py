"""``mepipe store verify``: check every file of a store (any back-end) against its manifest.

Reads the bytes themselves through the store's :mod:`back-end <.backends>`,
bounded and contained as :func:`~.store.open_store` reads them, never
through a cache: use it on a copy you received or pushed. Beyond the
per-file checks it makes sure the manifest covers the store: it must list
files, every node the consolidated metadata names must have its
``zarr.json`` listed, and every chunk of every array must be listed or
recorded empty (:mod:`.chunkgrid`). Where the location cannot be listed
(HTTP without directory listings), each chunk position the manifest does
not list is looked up, so a file left out of the manifest is still found.
A file that cannot be fetched stops the check (one sentence naming it).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from zarr.core.sync import sync

from .backends import FetchError, ReadLimitError, RetryPolicy, StoreBackend, open_backend, read_retrying
from .chunkgrid import arrays_in, chunk_keys, grid_problems
from .integrity import IntegrityError
from .location import StoreLocation, load_manifest, locate
from .manifest import MANIFEST_FILE, Manifest, ManifestError, is_listed
from .safety import METADATA_LIMIT, UnsafeStoreError, max_chunk_bytes, printable, read_json, unsafe_entries


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found; ``ok`` when every list is empty.

    Attributes
    ----------
    location : str
        The store verified (without credentials).
    store_id : str
        sha256 of its manifest (see :mod:`.manifest`).
    n_files, n_bytes : int
        Files and bytes the manifest lists.
    missing, modified, unexpected : tuple of str
        File names relative to the store root. Where the location cannot be
        listed (``listed`` is False), ``unexpected`` holds only the chunk
        files found at positions the manifest does not list.
    unsafe : tuple of str
        Metadata outside the allow-list of :mod:`.safety`, files that are not
        regular files of the store (symlinks out, devices), sizes beyond
        what an array's shape and data type allow, and arrays the manifest
        cannot account for (:mod:`.chunkgrid`).
    unlisted : tuple of str
        Metadata documents the consolidated metadata names but the manifest
        does not list (a manifest cut short).
    seconds : float
        Time taken.
    listed : bool
        Whether the whole location was listed to look for unexpected files.
    """

    location: str
    store_id: str
    n_files: int
    n_bytes: int
    missing: tuple[str, ...]
    modified: tuple[str, ...]
    unexpected: tuple[str, ...]
    unsafe: tuple[str, ...]
    unlisted: tuple[str, ...]
    seconds: float
    listed: bool = True

    @property
    def ok(self) -> bool:
        return not (self.missing or self.modified or self.unexpected or self.unsafe or self.unlisted)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        """Human-readable result, one line per problem file; store text is escaped for the terminal."""
        lines = [f"{self.location}: {'OK' if self.ok else 'FAILED'}, {self.n_files} files "
                 f"({self.n_bytes / 1e6:.1f} MB) checked in {self.seconds:.2f} s",
                 f"store id {self.store_id}"]
        for label, names in (("missing", self.missing), ("modified", self.modified),
                             ("unexpected", self.unexpected), ("unsafe", self.unsafe),
                             ("not in the manifest", self.unlisted)):
            lines += [f"  {label}: {n}" for n in names]
        if not self.listed:
            lines.append("  (the location cannot be listed: only chunk positions the manifest leaves out were looked "
                         "up for unexpected files)")
        return "\n".join(printable(line) for line in lines)


def verify(location: str | os.PathLike | StoreLocation, *, workers: int | None = None,
           expect_id: str | None = None) -> VerifyResult:
    """Check every file of a store against its ``manifest.json``.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        Any location a back-end reads (see :func:`.location.locate`); remote
        zips are downloaded to a temporary file, never the cache.
    workers : int, optional
        Files read at once; default 4 for local stores and 8 for remote ones.
    expect_id : str, optional
        Refuse a store whose id is not this (raises :class:`IntegrityError`).

    Raises
    ------
    ManifestError
        The store has no manifest, or an empty or unreadable one.
    IntegrityError
        The manifest or a file could not be fetched (within the location's
        time-outs), or the id is not ``expect_id``.
    mepipe.featurestore.safety.UnsafeStoreError
        The manifest or a zip entry names a file outside the store.
    """
    started = time.perf_counter()
    loc = locate(location, cache=False)
    backend = open_backend(loc)
    manifest = load_manifest(loc, backend, expect_id)
    if manifest is None:
        raise ManifestError(
            f"{loc.where}: no {MANIFEST_FILE}; a build writes one when it finishes. Rerun `mepipe build` "
            "on the original folder (nothing is recomputed) and pack or push it again")
    bad = manifest.malformed()
    if bad:
        raise ManifestError(f"{loc.where}: {MANIFEST_FILE} has entries without an integer size and a sha256: "
                            + ", ".join(printable(repr(n)) for n in bad[:8]) + (" ..." if len(bad) > 8 else ""))
    files = manifest.files
    workers = workers or (8 if backend.remote else 4)
    outcome, unsafe, metadata = sync(_check_all(backend, manifest, loc.retry, workers))
    listing = sync(backend.listing())
    if listing is None:
        unexpected = sync(_present_unlisted(backend, metadata, manifest, workers))
    else:
        unexpected = sorted(n for n in set(listing) - set(files) if is_listed(n))
    return VerifyResult(
        location=loc.where, store_id=manifest.store_id, n_files=len(files), n_bytes=manifest.n_bytes,
        missing=tuple(sorted(n for n, s in outcome.items() if s == "missing")),
        modified=tuple(sorted(n for n, s in outcome.items() if s == "modified")),
        unexpected=tuple(unexpected), unsafe=tuple(dict.fromkeys(unsafe)), unlisted=tuple(sorted(_unlisted(metadata, files))),
        seconds=time.perf_counter() - started, listed=listing is not None)


async def _all_or_none(coros) -> list:
    """``asyncio.gather`` that cancels the other reads when one fails (a stalled server stops the check)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def _check_all(backend: StoreBackend, manifest: Manifest, retry: RetryPolicy, workers: int
                     ) -> tuple[dict[str, str], list[str], dict[str, dict]]:
    """Read and hash every listed file, metadata first so that chunk reads are bounded by their arrays.

    Returns per file ``ok``, ``missing``, ``modified`` or ``unsafe``, the
    lines explaining each ``unsafe``, and the parsed metadata documents that verified and are allow-listed.
    """
    files = manifest.files
    gate = asyncio.Semaphore(workers)
    unsafe: list[str] = []
    metadata: dict[str, dict] = {}

    async def check(name: str, limit: int) -> tuple[str, str]:
        entry = files[name]
        async with gate:
            try:
                data = await read_retrying(backend, name, limit, retry)
            except FileNotFoundError:
                return name, "missing"
            except ReadLimitError:
                return name, "modified"
            except UnsafeStoreError as err:
                unsafe.append(f"{name}: {err}")
                return name, "unsafe"
            except FetchError as err:
                raise IntegrityError(f"{backend.where}: {name} could not be fetched: {err}. The check stopped "
                                     "there; try again later") from None
        same = len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
        if name.rpartition("/")[2] != "zarr.json":
            return name, "ok" if same else "modified"
        node = name.rpartition("zarr.json")[0].rstrip("/")
        try:
            doc = read_json(data, backend.where, name, UnsafeStoreError)
            problems = unsafe_entries(doc, node) if isinstance(doc, dict) else [f"{name}: not a JSON object"]
        except UnsafeStoreError as err:
            problems = [str(err)]
        unsafe.extend(problems)
        if not same:
            return name, "modified"
        if problems:
            return name, "unsafe"
        metadata[name] = doc
        grid = [p for path, meta in arrays_in(node, doc) for p in grid_problems(path, meta, files, manifest.empty_chunks)]
        unsafe.extend(grid)
        return name, "unsafe" if grid else "ok"

    def refuse(name: str, why: str) -> tuple[str, str]:
        unsafe.append(f"{name}: {why}")
        return name, "unsafe"

    meta_names = sorted(n for n in files if n.rpartition("/")[2] == "zarr.json")
    outcome = dict(await _all_or_none(
        check(n, files[n]["size"]) if files[n]["size"] <= METADATA_LIMIT
        else _ready(refuse(n, f"{files[n]['size']} bytes listed, more than the metadata limit of {METADATA_LIMIT}"))
        for n in meta_names))
    bounds = {path: max_chunk_bytes(meta) or 0 for name, doc in metadata.items()
              for path, meta in arrays_in(name.rpartition("zarr.json")[0].rstrip("/"), doc)}
    root_known = "zarr.json" in metadata

    def plan(name: str):
        array, size = _array_of(name, bounds), files[name]["size"]
        if array is not None and size > bounds[array]:
            return _ready(refuse(name, f"{size} bytes listed, more than its array's shape and data type allow "
                                       f"({bounds[array]})"))
        if array is None and root_known:
            return _ready(refuse(name, "not part of any array the metadata describes"))
        return check(name, size)

    outcome.update(await _all_or_none(plan(n) for n in sorted(set(files) - set(meta_names))))
    return outcome, unsafe, metadata


async def _present_unlisted(backend: StoreBackend, metadata: dict[str, dict], manifest: Manifest, workers: int
                            ) -> list[str]:
    """Chunk files found at the grid positions the manifest does not list (where the location cannot be listed)."""
    gate = asyncio.Semaphore(workers)
    arrays = {path: meta for name, doc in metadata.items()
              for path, meta in arrays_in(name.rpartition("zarr.json")[0].rstrip("/"), doc)
              if not grid_problems(path, meta, manifest.files, manifest.empty_chunks)}
    absent = sorted({key for path, meta in arrays.items() for key in chunk_keys(path, meta)
                     if key not in manifest.files})

    async def there(key: str) -> bool:
        async with gate:
            return await backend.exists(key)

    found = await _all_or_none(there(k) for k in absent)
    return [k for k, present in zip(absent, found) if present]


async def _ready(value):
    return value


def _array_of(name: str, bounds: dict[str, int]) -> str | None:
    parts = name.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if "/".join(parts[:i]) in bounds:
            return "/".join(parts[:i])
    return None


def _unlisted(metadata: dict[str, dict], files: dict[str, Any]) -> list[str]:
    """``zarr.json`` of nodes named in consolidated metadata that the manifest leaves out."""
    out = []
    for name, doc in metadata.items():
        node = name.rpartition("zarr.json")[0].rstrip("/")
        for child in ((doc.get("consolidated_metadata") or {}).get("metadata") or {}):
            key = f"{node}/{child}/zarr.json" if node else f"{child}/zarr.json"
            if key not in files:
                out.append(key)
    if "zarr.json" not in files:
        out.append("zarr.json")
    return out
