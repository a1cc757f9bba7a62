"""Copying a built store out: one Zarr zip file (:func:`pack`) or any writable URL (:func:`push`).

Both are one copy (:func:`copy_store`) from the store's back-end to the
destination's: exactly the files of the store's manifest plus the manifest,
each read as the read path reads (bounded by its manifest size, inside the
store, regular files only) and checked against its sha256 on the way, so a
store damaged, forged or booby-trapped on the builder's disk is never
shipped. ``.mepipe/`` (lock, staging, build report) stays home.

Neither ever leaves a copy that could be taken as good before it is: the
new copy is written to the destination back-end's staged copy (a temporary
sibling named ``.mepipe-part-<token>-<name>``), verified, and only then
published, so ``--overwrite`` keeps the old copy until the new one verifies
and a kill at any moment leaves the destination as it was (plus temporary
debris). Back-ends that cannot rename (object stores: a "move" is a copy)
copy the verified copy into place with the manifest last, and the result is
verified again before success is reported.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zarr.core.sync import sync

from .backends import StoreBackend, ZipBackend, open_backend, publish_order, writable_backend
from .backends.local import is_url
from .errors import DataError, UsageError
from .location import StoreLocation, load_manifest, locate
from .manifest import MANIFEST_FILE, Manifest, ManifestError, is_listed
from .verify import VerifyResult, verify


class PackError(DataError, RuntimeError):
    """The store does not match its manifest, or the destination is taken."""


@dataclass(frozen=True)
class PackResult:
    """A packed store: the zip, the files in it and the sizes before and after."""

    path: str
    n_files: int
    folder_bytes: int
    zip_bytes: int
    seconds: float
    store_id: str


@dataclass(frozen=True)
class PushResult:
    """A pushed store and the verification of the copy (``verified.ok``)."""

    url: str
    n_files: int
    n_bytes: int
    seconds: float
    verified: VerifyResult


def _checked_source(location: StoreLocation, expect_id: str | None) -> tuple[StoreBackend, Manifest]:
    """The store's back-end and manifest, after checking it is a complete store whose files match the manifest."""
    from .store import open_store

    open_store(location, expect_id=expect_id)
    source = open_backend(location)
    manifest = load_manifest(location, source, expect_id)
    if manifest is None:
        raise ManifestError(f"{location.where}: no {MANIFEST_FILE}; rerun `mepipe build` on it (nothing is "
                            "recomputed, the build writes the manifest when it finishes), then pack or push again")
    present = sync(source.listing())
    if present is not None:
        present_names = {n for n in present if is_listed(n)}
        listed = set(manifest.files)
        if present_names != listed:
            raise PackError(f"{location.where} does not match its manifest: missing {sorted(listed - present_names)}, "
                            f"unexpected {sorted(present_names - listed)}; run `mepipe store verify "
                            f"{location.where}`, then rebuild or remove the stray files")
    return source, manifest


def _read_checked(source: StoreBackend, name: str, manifest: Manifest) -> bytes:
    """One file of the store, read bounded by its manifest size and checked against its sha256."""
    size, sha256 = manifest.entry(name)
    data = sync(source.read(name, size))
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise PackError(f"{source.where}: {name} was modified after the build (its sha256 differs from "
                        f"{MANIFEST_FILE}); rebuild the store, or restore the file")
    return data


def copy_store(source_location: str | os.PathLike | StoreLocation, dest: StoreBackend, *, overwrite: bool = False,
               expect_id: str | None = None) -> tuple[Manifest, VerifyResult]:
    """Copy a complete store to ``dest`` (a writable back-end): stage, verify, publish.

    Returns
    -------
    (Manifest, VerifyResult)
        The store's manifest, and the verification of the published copy.

    Raises
    ------
    PackError
        A file is missing, extra or modified with respect to the manifest,
        the destination exists (without ``overwrite``), or the staged copy
        did not verify (the destination is left as it was).
    mepipe.featurestore.safety.UnsafeStoreError
        A file of the store is a symlink out of it, a device or a FIFO.
    mepipe.featurestore.backends.ReadLimitError
        A file is larger than its manifest entry.
    """
    if dest.exists_store() and not overwrite:
        raise PackError(f"{dest.where} exists; pass overwrite=True (--overwrite) to replace it")
    source, manifest = _checked_source(locate(source_location), expect_id)
    names = publish_order([*sorted(manifest.files), MANIFEST_FILE])
    staged = dest.staged()
    try:
        for name in names:
            staged.write(name, manifest.raw if name == MANIFEST_FILE else _read_checked(source, name, manifest))
        staged.finish()
        checked = verify(staged.location)
        if not checked.ok or checked.store_id != manifest.store_id:
            raise PackError(f"the copy written for {dest.where} did not verify, so it was not published and "
                            f"{dest.where} was left as it was:\n{checked.summary()}")
        dest.publish(staged, names)
    finally:
        staged.discard()
    verified = dataclasses.replace(checked, location=dest.where) if dest.atomic_publish else verify(dest.location)
    return manifest, verified


def pack(store_dir: str | os.PathLike, out_zip: str | os.PathLike, *, overwrite: bool = False,
         expect_id: str | None = None) -> PackResult:
    """Write a built store as a Zarr zip store on the local disk.

    Entries are stored uncompressed (``ZIP_STORED``): chunks are compressed
    already, and stored entries can be read in place. The zip is written to
    a temporary name beside ``out_zip``, verified, and renamed over it.

    Parameters
    ----------
    store_dir : str or PathLike
        A complete store with its ``manifest.json`` (usually a folder; any location a back-end reads).
    out_zip : str or PathLike
        The zip file to write, conventionally ``<name>.zarr.zip``.
    overwrite : bool
        Replace an existing ``out_zip`` (kept until the new zip verifies).
    expect_id : str, optional
        Refuse a store whose id is not this.

    Raises
    ------
    PackError
        See :func:`copy_store`.
    """
    started = time.perf_counter()
    out = Path(out_zip)
    manifest, _ = copy_store(store_dir, ZipBackend.for_writing(locate(out, backend=ZipBackend.name)),
                             overwrite=overwrite, expect_id=expect_id)
    return PackResult(path=str(out), n_files=len(manifest.files) + 1, folder_bytes=manifest.n_bytes,
                      zip_bytes=out.stat().st_size, seconds=time.perf_counter() - started,
                      store_id=manifest.store_id)


def push(store_dir: str | os.PathLike, url: str | StoreLocation, *, overwrite: bool = False,
         storage_options: dict[str, Any] | None = None, expect_id: str | None = None) -> PushResult:
    """Copy a built store to a URL: upload under a temporary name, verify, publish.

    A URL ending in ``.zip`` receives a packed zip; any other URL a store
    folder. Within a copy, chunks go first and the root ``zarr.json`` and the
    manifest last. See the module docstring for how the copy is published.

    Parameters
    ----------
    store_dir : str or PathLike
        A complete store with its ``manifest.json``.
    url : str or StoreLocation
        Destination, e.g. ``s3://bucket/samm.zarr`` or ``file:///mnt/share/samm.zarr.zip``.
    overwrite : bool
        Replace what is at the URL; the old copy stays until the new one verifies.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint).
    expect_id : str, optional
        Refuse a store whose id is not this.

    Returns
    -------
    PushResult
        ``result.verified`` checks the published copy.

    Raises
    ------
    PackError
        See :func:`copy_store`.
    """
    started = time.perf_counter()
    loc = locate(url, storage_options=storage_options)
    if not is_url(loc.target):
        raise UsageError(f"{loc.where} is not a URL; push copies to a URL (s3://, gs://, file:///...). "
                         "For a local copy use `mepipe store pack` or copy the folder")
    manifest, verified = copy_store(store_dir, writable_backend(loc), overwrite=overwrite, expect_id=expect_id)
    return PushResult(url=loc.where, n_files=len(manifest.files) + 1, n_bytes=manifest.n_bytes + len(manifest.raw),
                      seconds=time.perf_counter() - started, verified=verified)
