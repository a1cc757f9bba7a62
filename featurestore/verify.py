"""``mepipe store verify``: check every file of a store (folder, zip or URL) against its manifest.

Reads the bytes themselves through the same bounded, contained
:mod:`sources <.sources>` as :func:`~.store.open_store`, never a cache: use it
on a copy you received or pushed. Beyond the per-file checks it makes sure
the manifest covers the store: it must list files, and every node the
consolidated metadata names must have its ``zarr.json`` listed, so a
manifest cut short does not pass on a location that cannot be listed.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from zarr.core.sync import sync

from .integrity import FetchError, IntegrityError, RetryPolicy, read_retrying
from .location import StoreLocation, load_manifest, locate, open_source
from .manifest import MANIFEST_FILE, ManifestError, is_listed
from .safety import METADATA_LIMIT, UnsafeStoreError, max_chunk_bytes, printable, unsafe_entries
from .sources import ReadLimitError


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found; ``ok`` when every list is empty.

    Attributes
    ----------
    location : str
        The store verified.
    store_id : str
        sha256 of its manifest (see :mod:`.manifest`).
    n_files, n_bytes : int
        Files and bytes the manifest lists.
    missing, modified, unexpected : tuple of str
        File names relative to the store root. ``unexpected`` is None when the
        location cannot be listed (an HTTP server without directory listings).
    unsafe : tuple of str
        Metadata outside the allow-list of :mod:`.safety`, files that are not
        regular files of the store (symlinks out, devices), and sizes beyond
        what an array's shape and data type allow.
    unlisted : tuple of str
        Metadata documents the consolidated metadata names but the manifest
        does not list (a manifest cut short).
    seconds : float
        Time taken.
    """

    location: str
    store_id: str
    n_files: int
    n_bytes: int
    missing: tuple[str, ...]
    modified: tuple[str, ...]
    unexpected: tuple[str, ...] | None
    unsafe: tuple[str, ...]
    unlisted: tuple[str, ...]
    seconds: float

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
                             ("unexpected", self.unexpected or ()), ("unsafe", self.unsafe),
                             ("not in the manifest", self.unlisted)):
            lines += [f"  {label}: {n}" for n in names]
        if self.unexpected is None:
            lines.append("  (the location cannot be listed: extra files were not looked for)")
        return "\n".join(printable(line) for line in lines)


def verify(location: str | os.PathLike | StoreLocation, *, workers: int | None = None,
           expect_id: str | None = None) -> VerifyResult:
    """Check every file of a store against its ``manifest.json``.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        Folder, zip file or URL (see :func:`.location.locate`); remote zips are
        downloaded to a temporary file, never the cache.
    workers : int, optional
        Files read at once; default 4 for local stores and 8 for URLs.
    expect_id : str, optional
        Refuse a store whose id is not this (raises :class:`IntegrityError`).

    Raises
    ------
    ManifestError
        The store has no manifest, or an empty or unreadable one.
    IntegrityError
        The manifest could not be fetched, or its id is not ``expect_id``.
    mepipe.featurestore.safety.UnsafeStoreError
        The manifest or a zip entry names a file outside the store.
    """
    started = time.perf_counter()
    loc = locate(location, cache=False)
    source, _ = open_source(loc)
    manifest = load_manifest(loc, source, expect_id)
    if manifest is None:
        raise ManifestError(
            f"{loc.target}: no {MANIFEST_FILE}; a build writes one when it finishes. Rerun `mepipe build` "
            "on the original folder (nothing is recomputed) and pack or push it again")
    bad = manifest.malformed()
    if bad:
        raise ManifestError(f"{loc.target}: {MANIFEST_FILE} has entries without an integer size and a sha256: "
                            + ", ".join(printable(repr(n)) for n in bad[:8]) + (" ..." if len(bad) > 8 else ""))
    files = manifest.files
    outcome, unsafe = sync(_check_all(source, files, loc.retry, workers or (8 if source.remote else 4)))
    metadata = {name: doc for name, (_, doc) in outcome.items() if doc is not None}
    listed = sync(source.names())
    return VerifyResult(
        location=loc.target, store_id=manifest.store_id, n_files=len(files), n_bytes=manifest.n_bytes,
        missing=tuple(sorted(n for n, (s, _) in outcome.items() if s == "missing")),
        modified=tuple(sorted(n for n, (s, _) in outcome.items() if s == "modified")),
        unexpected=None if listed is None else tuple(sorted(n for n in listed - set(files) if is_listed(n))),
        unsafe=tuple(unsafe),
        unlisted=tuple(sorted(_unlisted(metadata, files))),
        seconds=time.perf_counter() - started)


async def _check_all(source: Any, files: dict[str, dict[str, Any]], retry: RetryPolicy, workers: int
                     ) -> tuple[dict[str, tuple[str, dict | None]], list[str]]:
    """Read and hash every listed file, metadata first so that chunk reads are bounded by their arrays.

    Returns per file ``ok``, ``missing``, ``modified`` or ``unsafe`` with the
    parsed document of good metadata, and the lines explaining each ``unsafe``.
    """
    gate = asyncio.Semaphore(workers)
    unsafe: list[str] = []

    async def check(name: str, limit: int) -> tuple[str, tuple[str, dict | None]]:
        entry = files[name]
        async with gate:
            try:
                data = await read_retrying(source, name, limit, retry)
            except FileNotFoundError:
                return name, ("missing", None)
            except ReadLimitError:
                return name, ("modified", None)
            except (FetchError, UnsafeStoreError) as err:
                unsafe.append(f"{name}: {err}")
                return name, ("unsafe", None)
        same = len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
        if name.rpartition("/")[2] != "zarr.json":
            return name, ("ok" if same else "modified", None)
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        problems = unsafe_entries(doc, name.rpartition("zarr.json")[0].rstrip("/")) if isinstance(doc, dict) \
            else [f"{name}: not a JSON object"]
        unsafe.extend(problems)
        if not same:
            return name, ("modified", None)
        return name, ("unsafe", None) if problems else ("ok", doc)

    def refuse(name: str, why: str) -> tuple[str, tuple[str, None]]:
        unsafe.append(f"{name}: {why}")
        return name, ("unsafe", None)

    meta_names = sorted(n for n in files if n.rpartition("/")[2] == "zarr.json")
    outcome = dict(await asyncio.gather(*(
        check(n, files[n]["size"]) if files[n]["size"] <= METADATA_LIMIT
        else _ready(refuse(n, f"{files[n]['size']} bytes listed, more than the metadata limit of {METADATA_LIMIT}"))
        for n in meta_names)))
    metadata = {n: doc for n, (_, doc) in outcome.items() if doc is not None}
    bounds = _chunk_bounds(metadata)
    root_known = "zarr.json" in metadata

    def plan(name: str):
        array, size = _array_of(name, bounds), files[name]["size"]
        if array is not None and size > bounds[array]:
            return _ready(refuse(name, f"{size} bytes listed, more than its array's shape and data type allow "
                                       f"({bounds[array]})"))
        if array is None and root_known:
            return _ready(refuse(name, "not part of any array the metadata describes"))
        return check(name, size)

    outcome.update(await asyncio.gather(*(plan(n) for n in sorted(set(files) - set(meta_names)))))
    return outcome, unsafe


async def _ready(value):
    return value


def _chunk_bounds(metadata: dict[str, dict]) -> dict[str, int]:
    """Array path -> most bytes one chunk may hold, from every metadata document that verified."""
    bounds = {}
    for name, doc in metadata.items():
        node = name.rpartition("zarr.json")[0].rstrip("/")
        if doc.get("node_type") == "array":
            bounds[node] = max_chunk_bytes(doc) or 0
        for child, meta in ((doc.get("consolidated_metadata") or {}).get("metadata") or {}).items():
            if meta.get("node_type") == "array":
                bounds[f"{node}/{child}" if node else child] = max_chunk_bytes(meta) or 0
    return bounds


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
