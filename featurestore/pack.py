"""Copying a built store out: one Zarr zip file (:func:`pack`) or any fsspec URL (:func:`push`).

Both copy exactly the files of the store's manifest plus the manifest, and
check each file against it on the way, so a store damaged on the builder's
disk is never shipped. ``.mepipe/`` (lock, staging, build report) stays home.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .location import StoreLocation, filesystem, locate
from .manifest import MANIFEST_FILE, Manifest, ManifestError, folder_files, parse_manifest
from .verify import VerifyResult, verify

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
"""Fixed entry dates: the same store packs to the same bytes."""


class PackError(RuntimeError):
    """The store folder does not match its manifest, or the destination is taken."""


@dataclass(frozen=True)
class PackResult:
    """A packed store: the zip, the files in it and the sizes before and after."""

    path: str
    n_files: int
    folder_bytes: int
    zip_bytes: int
    seconds: float


@dataclass(frozen=True)
class PushResult:
    """A pushed store and the verification of the copy (``verified.ok``)."""

    url: str
    n_files: int
    n_bytes: int
    seconds: float
    verified: VerifyResult


def _checked_files(store_dir: Path) -> tuple[list[str], Manifest]:
    """The files to copy, after checking the folder is a complete, readable store matching its manifest."""
    from .store import open_store

    open_store(store_dir)
    try:
        manifest = parse_manifest((store_dir / MANIFEST_FILE).read_bytes(), str(store_dir))
    except FileNotFoundError:
        raise ManifestError(f"{store_dir}: no {MANIFEST_FILE}; rerun `mepipe build` on it (nothing is recomputed, "
                            "the build writes the manifest when it finishes), then pack or push again") from None
    present = set(folder_files(store_dir))
    listed = set(manifest.files)
    if present != listed:
        raise PackError(f"{store_dir} does not match its manifest: missing {sorted(listed - present)}, "
                        f"unexpected {sorted(present - listed)}; run `mepipe store verify {store_dir}`, "
                        "then rebuild or remove the stray files")
    return sorted(listed), manifest


def _read_checked(store_dir: Path, name: str, manifest: Manifest) -> bytes:
    data = (store_dir / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.files[name]["sha256"]:
        raise PackError(f"{store_dir / name} was modified after the build (its sha256 differs from "
                        f"{MANIFEST_FILE}); rebuild the store, or restore the file")
    return data


def pack(store_dir: str | os.PathLike, out_zip: str | os.PathLike, *, overwrite: bool = False) -> PackResult:
    """Write a built store folder as a Zarr zip store.

    Entries are stored uncompressed (``ZIP_STORED``): chunks are compressed
    already, and stored entries can be read in place. The zip is written to
    a temporary name beside ``out_zip`` and renamed when complete.

    Parameters
    ----------
    store_dir : str or PathLike
        A complete store folder with its ``manifest.json``.
    out_zip : str or PathLike
        The zip file to write, conventionally ``<name>.zarr.zip``.
    overwrite : bool
        Replace an existing ``out_zip``.

    Raises
    ------
    PackError
        A file is missing, extra or modified with respect to the manifest, or
        ``out_zip`` exists.
    """
    started = time.perf_counter()
    store_dir, out = Path(store_dir), Path(out_zip)
    if out.exists() and not overwrite:
        raise PackError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    names, manifest = _checked_files(store_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in [*names, MANIFEST_FILE]:
                data = (store_dir / name).read_bytes() if name == MANIFEST_FILE else _read_checked(
                    store_dir, name, manifest)
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return PackResult(path=str(out), n_files=len(names) + 1,
                      folder_bytes=manifest.n_bytes,
                      zip_bytes=out.stat().st_size, seconds=time.perf_counter() - started)


def push(store_dir: str | os.PathLike, url: str | StoreLocation, *, overwrite: bool = False,
         storage_options: dict[str, Any] | None = None) -> PushResult:
    """Copy a built store folder to an fsspec URL, then verify the copy.

    A URL ending in ``.zip`` receives a packed zip; any other URL a store
    folder. Chunks go first, the root ``zarr.json`` and the manifest last, so
    a reader never finds a root that announces files not yet uploaded.

    Parameters
    ----------
    store_dir : str or PathLike
        A complete store folder with its ``manifest.json``.
    url : str or StoreLocation
        Destination, e.g. ``s3://bucket/samm.zarr`` or ``file:///mnt/share/samm.zarr.zip``.
    overwrite : bool
        Replace what is at the URL (removed first, so no stale file survives).
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint).

    Returns
    -------
    PushResult
        Check ``result.verified.ok``; the copy is not removed when it fails.
    """
    started = time.perf_counter()
    store_dir = Path(store_dir)
    loc = locate(url, storage_options=storage_options)
    if not loc.remote:
        raise ValueError(f"{loc.target} is not a URL; push copies to a URL (s3://, gs://, file:///...). "
                         "For a local copy use `mepipe store pack` or copy the folder")
    fs, root = filesystem(loc)
    root = root.rstrip("/")
    if fs.exists(root):
        if not overwrite:
            raise PackError(f"{loc.target} exists; pass overwrite=True (--overwrite) to replace it")
        fs.rm(root, recursive=True)
    if loc.zipped:
        with tempfile.TemporaryDirectory(prefix="mepipe-") as tmp:
            packed = pack(store_dir, Path(tmp) / "store.zip")
            _makedirs(fs, [root.rpartition("/")[0]])
            fs.put_file(packed.path, root)
        n_files, n_bytes = packed.n_files, packed.zip_bytes
    else:
        names, manifest = _checked_files(store_dir)
        for name in names:
            _read_checked(store_dir, name, manifest)
        last = [n for n in names if n == "zarr.json"] + [MANIFEST_FILE]
        first = [n for n in names if n not in last]
        _makedirs(fs, {f"{root}/{n}".rpartition("/")[0] for n in names})
        for batch in (first, last):
            fs.put([str(store_dir / n) for n in batch], [f"{root}/{n}" for n in batch])
        n_files = len(names) + 1
        n_bytes = manifest.n_bytes
    return PushResult(url=loc.target, n_files=n_files, n_bytes=n_bytes, seconds=time.perf_counter() - started,
                      verified=verify(loc))


def _makedirs(fs: Any, dirs) -> None:
    for d in sorted(dirs):
        if d:
            fs.makedirs(d, exist_ok=True)
