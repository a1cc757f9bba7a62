"""Copying a built store out: one Zarr zip file (:func:`pack`) or any fsspec URL (:func:`push`).

Both copy exactly the files of the store's manifest plus the manifest, and
check each file against it on the way, so a store damaged on the builder's
disk is never shipped. ``.mepipe/`` (lock, staging, build report) stays home.

Neither ever leaves a copy that could be taken as good before it is: the
new copy is written under a temporary name beside the destination
(``.mepipe-part-<token>-<name>``), verified, and only then renamed into
place, so ``--overwrite`` keeps the old copy until the new one verifies and
a kill at any moment leaves the destination as it was (plus temporary
debris). Back-ends that cannot rename (object stores: a "move" is a copy)
get the verified temporary copy copied into place with the manifest last,
and the result verified again before success is reported.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError
from .location import StoreLocation, filesystem, is_local, locate
from .manifest import MANIFEST_FILE, Manifest, ManifestError, folder_files, parse_manifest
from .verify import VerifyResult, verify

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
"""Fixed entry dates: the same store packs to the same bytes."""


class PackError(DataError, RuntimeError):
    """The store folder does not match its manifest, or the destination is taken."""


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


def _checked_files(store_dir: Path, expect_id: str | None = None) -> tuple[list[str], Manifest]:
    """The files to copy, after checking the folder is a complete, readable store matching its manifest."""
    from .store import open_store

    open_store(store_dir, expect_id=expect_id)
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
    if hashlib.sha256(data).hexdigest() != manifest.entry(name)[1]:
        raise PackError(f"{store_dir / name} was modified after the build (its sha256 differs from "
                        f"{MANIFEST_FILE}); rebuild the store, or restore the file")
    return data


def pack(store_dir: str | os.PathLike, out_zip: str | os.PathLike, *, overwrite: bool = False,
         expect_id: str | None = None) -> PackResult:
    """Write a built store folder as a Zarr zip store.

    Entries are stored uncompressed (``ZIP_STORED``): chunks are compressed
    already, and stored entries can be read in place. The zip is written to
    a temporary name beside ``out_zip``, verified, and renamed over it.

    Parameters
    ----------
    store_dir : str or PathLike
        A complete store folder with its ``manifest.json``.
    out_zip : str or PathLike
        The zip file to write, conventionally ``<name>.zarr.zip``.
    overwrite : bool
        Replace an existing ``out_zip`` (kept until the new zip verifies).
    expect_id : str, optional
        Refuse a store folder whose id is not this.

    Raises
    ------
    PackError
        A file is missing, extra or modified with respect to the manifest,
        ``out_zip`` exists, or the written zip does not verify.
    """
    started = time.perf_counter()
    store_dir, out = Path(store_dir), Path(out_zip)
    if out.exists() and not overwrite:
        raise PackError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    names, manifest = _checked_files(store_dir, expect_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(_part_name(out.name))
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in names:
                _add_entry(zf, name, _read_checked(store_dir, name, manifest))
            _add_entry(zf, MANIFEST_FILE, manifest.raw)
        _require_verified(verify(tmp), manifest, out)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return PackResult(path=str(out), n_files=len(names) + 1, folder_bytes=manifest.n_bytes,
                      zip_bytes=out.stat().st_size, seconds=time.perf_counter() - started,
                      store_id=manifest.store_id)


def _add_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def _part_name(name: str) -> str:
    """A temporary name beside ``name`` that keeps its suffix (``.zip`` decides how a location is read)."""
    return f".mepipe-part-{uuid.uuid4().hex[:12]}-{name}"


def _require_verified(result: VerifyResult, manifest: Manifest, final: Any) -> None:
    if not result.ok or result.store_id != manifest.store_id:
        raise PackError(f"the copy written for {final} did not verify, so it was not published and {final} was "
                        f"left as it was:\n{result.summary()}")


def push(store_dir: str | os.PathLike, url: str | StoreLocation, *, overwrite: bool = False,
         storage_options: dict[str, Any] | None = None, expect_id: str | None = None) -> PushResult:
    """Copy a built store folder to an fsspec URL: upload under a temporary name, verify, publish.

    A URL ending in ``.zip`` receives a packed zip; any other URL a store
    folder. Within a copy, chunks go first and the root ``zarr.json`` and the
    manifest last. See the module docstring for how the copy is published.

    Parameters
    ----------
    store_dir : str or PathLike
        A complete store folder with its ``manifest.json``.
    url : str or StoreLocation
        Destination, e.g. ``s3://bucket/samm.zarr`` or ``file:///mnt/share/samm.zarr.zip``.
    overwrite : bool
        Replace what is at the URL; the old copy stays until the new one verifies.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint).
    expect_id : str, optional
        Refuse a store folder whose id is not this.

    Returns
    -------
    PushResult
        ``result.verified`` checks the published copy.

    Raises
    ------
    PackError
        The destination exists (without ``overwrite``), or the uploaded copy
        did not verify (the destination is left as it was).
    """
    started = time.perf_counter()
    store_dir = Path(store_dir)
    loc = locate(url, storage_options=storage_options)
    if not loc.remote:
        raise ValueError(f"{loc.target} is not a URL; push copies to a URL (s3://, gs://, file:///...). "
                         "For a local copy use `mepipe store pack` or copy the folder")
    fs, root = filesystem(loc)
    root = root.rstrip("/")
    if fs.exists(root) and not overwrite:
        raise PackError(f"{loc.target} exists; pass overwrite=True (--overwrite) to replace it")
    names, manifest = _checked_files(store_dir, expect_id)
    parent, _, leaf = root.rpartition("/")
    part_leaf = _part_name(leaf)
    part = f"{parent}/{part_leaf}" if parent else part_leaf
    part_loc = locate(f"{loc.target.rpartition('/')[0]}/{part_leaf}", storage_options=storage_options)
    try:
        if loc.zipped:
            with tempfile.TemporaryDirectory(prefix="mepipe-") as tmp:
                packed = pack(store_dir, Path(tmp) / "store.zip")
                _makedirs(fs, [parent])
                fs.put_file(packed.path, part)
            n_files, n_bytes = packed.n_files, packed.zip_bytes
        else:
            _upload_folder(fs, store_dir, names, part)
            n_files, n_bytes = len(names) + 1, manifest.n_bytes
        checked = verify(part_loc)
        _require_verified(checked, manifest, loc.target)
        if is_local(fs):
            _rename_into_place(Path(part), Path(root))
            verified = dataclasses.replace(checked, location=loc.target)
        else:
            _copy_into_place(fs, part, root, loc.zipped, names)
            verified = verify(loc)
    finally:
        if fs.exists(part):
            fs.rm(part, recursive=True)
    return PushResult(url=loc.target, n_files=n_files, n_bytes=n_bytes, seconds=time.perf_counter() - started,
                      verified=verified)


def _upload_folder(fs: Any, store_dir: Path, names: list[str], dest: str) -> None:
    """Upload a store folder's files to ``dest``, chunks first, the root ``zarr.json`` and the manifest last."""
    last = [n for n in names if n == "zarr.json"] + [MANIFEST_FILE]
    first = [n for n in names if n not in last]
    _makedirs(fs, {f"{dest}/{n}".rpartition("/")[0] for n in names})
    for batch in (first, last):
        fs.put([str(store_dir / n) for n in batch], [f"{dest}/{n}" for n in batch])


def _rename_into_place(part: Path, final: Path) -> None:
    """Swap a verified copy in by renames: the old copy is moved aside, the new one in, the old one removed.

    A file (zip) replaces the old one in one atomic rename. For a folder,
    between the two renames nothing is at ``final`` (a reader finds no
    store, never a wrong one); a kill there leaves the old copy beside it
    under ``.mepipe-old-*``.
    """
    if not final.exists() or part.is_file():
        os.replace(part, final)
        return
    old = final.with_name(f".mepipe-old-{uuid.uuid4().hex[:12]}-{final.name}")
    os.replace(final, old)
    os.replace(part, final)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def _copy_into_place(fs: Any, part: str, final: str, zipped: bool, names: list[str]) -> None:
    """For back-ends without rename: copy the verified copy to ``final``, the manifest last.

    The old copy is removed only now that the new one has verified; until
    the manifest lands a reader finds no store at ``final``, never a wrong one.
    """
    if fs.exists(final):
        fs.rm(final, recursive=True)
    if zipped:
        fs.copy(part, final)
        return
    last = [n for n in names if n == "zarr.json"] + [MANIFEST_FILE]
    first = [n for n in names if n not in last]
    _makedirs(fs, {f"{final}/{n}".rpartition("/")[0] for n in names})
    for batch in (first, last):
        fs.copy([f"{part}/{n}" for n in batch], [f"{final}/{n}" for n in batch])


def _makedirs(fs: Any, dirs) -> None:
    for d in sorted(dirs):
        if d:
            fs.makedirs(d, exist_ok=True)
