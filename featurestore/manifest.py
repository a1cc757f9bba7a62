"""The checksum manifest of a built store, and the store's identity.

``<store>/manifest.json`` lists the sha256 and size of every chunk and
metadata file, so it travels with the store (folder, zip or URL) and every
read can be checked against it (:mod:`.integrity`). Not listed: ``.mepipe/``
(lock, staging, build report: private to the builder's folder) and the
manifest itself.

The **store id** is the sha256 of the manifest's bytes. Pack and push copy
the manifest byte for byte, so a folder, its zip and its pushed copy share
one id, and any change to any listed file (or to the manifest) gives another.
A reader that pins the id (``open_store(..., expect_id=...)``) therefore
reads exactly the content it was given, even if a file and the manifest are
edited together.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError
from .chunkgrid import empty_chunk_keys
from .layout import PRIVATE_DIR
from .safety import UnsafeStoreError, printable, read_json, unsafe_names

MANIFEST_FILE = "manifest.json"
METADATA_NAME = "zarr.json"
MANIFEST_FORMAT = "mepipe-manifest/1"


class ManifestError(DataError, RuntimeError):
    """A store has no manifest, or an unreadable or empty one."""


def is_listed(name: str) -> bool:
    """Whether a file (path relative to the store root) belongs in the manifest."""
    return name != MANIFEST_FILE and name != PRIVATE_DIR and not name.startswith(PRIVATE_DIR + "/")


def folder_files(store_path: str | os.PathLike) -> list[str]:
    """Relative POSIX names of the files a manifest of this store folder lists, sorted."""
    root = Path(store_path)
    names = []
    for dirpath, dirnames, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d != PRIVATE_DIR]
        names += [(rel / f).as_posix() for f in files]
    return sorted(n for n in names if is_listed(n))


def build_manifest(store_path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a store folder as plain data (see :func:`write_manifest`).

    Besides each file's size and sha256 it records the chunks the build left
    out because they held only the fill value (``empty_chunks``), so that a
    reader can tell them from chunks that went missing (:mod:`.chunkgrid`).
    """
    root = Path(store_path)
    files, arrays = {}, []
    for name in folder_files(root):
        data = (root / name).read_bytes()
        files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if name.rpartition("/")[2] == METADATA_NAME and b'"array"' in data:
            try:
                doc = read_json(data, str(root), name, ValueError)
            except ValueError:  # a reader refuses it; the manifest still hashes it
                doc = None
            if isinstance(doc, dict) and doc.get("node_type") == "array":
                arrays.append((name.rpartition(METADATA_NAME)[0].rstrip("/"), doc))
    try:
        empty = empty_chunk_keys(files, iter(arrays))
    except ValueError as err:
        raise ManifestError(f"{root}: {err}; no manifest was written") from None
    return {"format": MANIFEST_FORMAT, "algorithm": "sha256", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_files": len(files), "n_bytes": sum(f["size"] for f in files.values()), "files": files,
            "empty_chunks": empty}


def write_manifest(store_path: str | os.PathLike) -> Path:
    """Write ``<store>/manifest.json`` for a finished store folder, atomically.

    Call it last in a build, after the consolidated metadata is written:
    any later change to a listed file shows up in :func:`.verify.verify`
    and fails the reads of :func:`.store.open_store`.

    Returns
    -------
    Path
        The manifest file.
    """
    root = Path(store_path)
    if not (root / "zarr.json").is_file():
        raise FileNotFoundError(f"{root}: no zarr.json; not a store folder")
    out = root / MANIFEST_FILE
    tmp = root / PRIVATE_DIR / f"{MANIFEST_FILE}.{uuid.uuid4().hex}.part"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(json.dumps(build_manifest(root), indent=1, sort_keys=True))
    os.replace(tmp, out)
    return out


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked ``manifest.json``.

    Attributes
    ----------
    store_id : str
        sha256 (hex) of the manifest's bytes: the store's identity.
    files : mapping
        Store-relative file name -> ``{"size": int, "sha256": str}``.
    created : str or None
        When the build wrote it (as recorded; not part of any check).
    raw : bytes
        The document as read, for copying it byte for byte.
    empty_chunks : frozenset of str or None
        Chunk keys the build left out as all fill value; None for a manifest
        written before they were recorded (see :mod:`.chunkgrid`).
    """

    store_id: str
    files: Mapping[str, Mapping[str, Any]]
    created: str | None
    raw: bytes
    empty_chunks: frozenset[str] | None = None

    @property
    def n_bytes(self) -> int:
        """Bytes the well-formed entries list."""
        return sum(e["size"] for e in self.files.values() if _well_formed(e))

    def entry(self, name: str) -> tuple[int, str] | None:
        """``(size, sha256)`` of a listed file; None if it is not listed.

        Entries are checked here, when used, rather than all at parse time:
        a manifest may list 100 000 files and is parsed on every open.

        Raises
        ------
        ManifestError
            The entry has no integer size and sha256.
        """
        e = self.files.get(name)
        if e is None:
            return None
        if not _well_formed(e):
            raise ManifestError(f"{MANIFEST_FILE}: the entry of {printable(repr(name))} has no integer size and "
                                "sha256; the manifest is damaged")
        return e["size"], e["sha256"]

    def malformed(self) -> list[str]:
        """Names whose entries :meth:`entry` would refuse."""
        return [n for n, e in self.files.items() if not _well_formed(e)]


def _well_formed(e: Any) -> bool:
    # A sha256 that is not hex can never match a digest, so its length is all that needs checking.
    return (type(e) is dict and type(e.get("size")) is int and e["size"] >= 0 and type(e.get("sha256")) is str
            and len(e["sha256"]) == 64)


def store_id_of(raw: bytes) -> str:
    """The store id of a manifest's bytes (see the module docstring)."""
    return hashlib.sha256(raw).hexdigest()


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """Check and return a manifest read from ``where``.

    Raises
    ------
    ManifestError
        Not JSON, not a mepipe manifest, or no files at all. (Entries are
        checked when used: :meth:`Manifest.entry`.)
    mepipe.featurestore.safety.UnsafeStoreError
        A file name that would lead outside the store (each named).
    """
    doc = read_json(raw, where, MANIFEST_FILE, ManifestError)
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        raise ManifestError(f"{where}: {MANIFEST_FILE} is not a {MANIFEST_FORMAT} manifest")
    files: dict[str, Any] = doc["files"]
    if not files:
        raise ManifestError(f"{where}: {MANIFEST_FILE} lists no files, so nothing could be checked; a build "
                            "writes a full one when it finishes")
    unsafe = unsafe_names(files)
    unsafe += [f"{printable(repr(n))}: not a store file (the manifest and .mepipe/ are never listed)"
               for n in files if not is_listed(n)]
    if unsafe:
        raise UnsafeStoreError(f"{where}: {MANIFEST_FILE} names files outside the store, refusing it: "
                               + "; ".join(unsafe))
    empty = doc.get("empty_chunks")
    if empty is not None and not (isinstance(empty, list) and all(isinstance(n, str) for n in empty)):
        raise ManifestError(f"{where}: {MANIFEST_FILE} has an empty_chunks entry that is not a list of names; the "
                            "manifest is damaged")
    unsafe = unsafe_names(empty or ())
    if unsafe:
        raise UnsafeStoreError(f"{where}: {MANIFEST_FILE} records empty chunks outside the store, refusing it: "
                               + "; ".join(unsafe))
    created = doc.get("created")
    return Manifest(store_id=store_id_of(raw), files=files, created=created if isinstance(created, str) else None,
                    raw=raw, empty_chunks=None if empty is None else frozenset(empty))


def check_store_id(manifest: Manifest, expect_id: str | None, where: str) -> None:
    """Refuse a store whose id is not ``expect_id`` (no check when it is None)."""
    if expect_id is not None and manifest.store_id != expect_id.strip().lower():
        from .integrity import IntegrityError

        raise IntegrityError(f"{where}: store id {manifest.store_id} is not the expected {printable(expect_id)}; "
                             "its content differs from the store you pinned (rebuilt, edited or another store)")
