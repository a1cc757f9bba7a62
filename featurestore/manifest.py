"""A checksum manifest of a built store, and verifying a copy against it.

``<store>/manifest.json`` lists the sha256 and size of every chunk and
metadata file, so it travels with the store (folder, zip or URL). Not listed:
``.mepipe/`` (lock, staging, build report: private to the builder's folder)
and the manifest itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .layout import PRIVATE_DIR
from .location import StoreLocation, local_zip, locate, store_files
from .safety import unsafe_entries

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "mepipe-manifest/1"


class ManifestError(RuntimeError):
    """A store has no manifest, or an unreadable one."""


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
    """The manifest of a store folder as plain data (see :func:`write_manifest`)."""
    root = Path(store_path)
    files = {}
    for name in folder_files(root):
        data = (root / name).read_bytes()
        files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {"format": MANIFEST_FORMAT, "algorithm": "sha256", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_files": len(files), "n_bytes": sum(f["size"] for f in files.values()), "files": files}


def write_manifest(store_path: str | os.PathLike) -> Path:
    """Write ``<store>/manifest.json`` for a finished store folder, atomically.

    Call it last in a build, after the consolidated metadata is written:
    any later change to a listed file shows up in :func:`verify`.

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


def parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    """Check and return a manifest document read from ``where``."""
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise ManifestError(f"{where}: {MANIFEST_FILE} is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        raise ManifestError(f"{where}: {MANIFEST_FILE} is not a {MANIFEST_FORMAT} manifest")
    return doc


def read_manifest(location: str | os.PathLike | StoreLocation) -> dict[str, Any] | None:
    """The manifest of a store (folder, zip or URL), or None if it has none."""
    loc = locate(location)
    if loc.remote and loc.zipped:
        with zipfile.ZipFile(local_zip(loc)) as zf:
            if MANIFEST_FILE not in zf.namelist():
                return None
            raw = zf.read(MANIFEST_FILE)
    else:
        with store_files(loc) as (fs, root):
            try:
                raw = fs.cat_file(_join(root, MANIFEST_FILE))
            except FileNotFoundError:
                return None
    return parse_manifest(raw, loc.target)


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found; ``ok`` when every list is empty.

    Attributes
    ----------
    location : str
        The store verified.
    n_files, n_bytes : int
        Files and bytes the manifest lists.
    missing, modified, unexpected : tuple of str
        File names relative to the store root. ``unexpected`` is None when the
        location cannot be listed (an HTTP server without directory listings).
    unsafe : tuple of str
        Metadata outside the allow-list of :mod:`.safety`.
    seconds : float
        Time taken.
    """

    location: str
    n_files: int
    n_bytes: int
    missing: tuple[str, ...]
    modified: tuple[str, ...]
    unexpected: tuple[str, ...] | None
    unsafe: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not (self.missing or self.modified or self.unexpected or self.unsafe)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        """Human-readable result, one line per problem file."""
        head = (f"{self.location}: {'OK' if self.ok else 'FAILED'}, {self.n_files} files "
                f"({self.n_bytes / 1e6:.1f} MB) checked in {self.seconds:.2f} s")
        lines = [head]
        for label, names in (("missing", self.missing), ("modified", self.modified),
                             ("unexpected", self.unexpected or ()), ("unsafe metadata", self.unsafe)):
            lines += [f"  {label}: {n}" for n in names]
        if self.unexpected is None:
            lines.append("  (the location cannot be listed: extra files were not looked for)")
        return "\n".join(lines)


def _join(root: str, name: str) -> str:
    return f"{root}/{name}" if root else name


def _listing(fs: Any, root: str) -> set[str] | None:
    try:
        found = fs.find(root) if root else fs.find("")
    except (FileNotFoundError, NotImplementedError, ValueError, OSError):
        return None
    prefix = root.rstrip("/") + "/" if root else ""
    names = {str(p)[len(prefix):] if str(p).startswith(prefix) else str(p) for p in found}
    return {n.lstrip("/") for n in names} or None


def verify(location: str | os.PathLike | StoreLocation, *, workers: int | None = None) -> VerifyResult:
    """Check every file of a store against its ``manifest.json``.

    Reads the bytes themselves, never a cache: use it on a copy you received
    or pushed. Metadata files are also checked against the allow-list of
    :mod:`.safety`.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        Folder, zip file or URL (see :func:`.location.locate`).
    workers : int, optional
        Parallel reads; default 1 for local stores and 8 for URLs.

    Raises
    ------
    ManifestError
        The store has no manifest (built before manifests, or not a store).
    """
    started = time.perf_counter()
    loc = locate(location)
    with store_files(loc) as (fs, root):
        try:
            manifest = parse_manifest(fs.cat_file(_join(root, MANIFEST_FILE)), loc.target)
        except FileNotFoundError:
            raise ManifestError(
                f"{loc.target}: no {MANIFEST_FILE}; a build writes one when it finishes. Rerun `mepipe build` "
                "on the original folder (nothing is recomputed) and pack or push it again") from None
        expected: dict[str, dict[str, Any]] = manifest["files"]
        listed = _listing(fs, root)

        def check(name: str) -> tuple[str, str | None, list[str]]:
            try:
                data = fs.cat_file(_join(root, name))
            except FileNotFoundError:
                return name, "missing", []
            entry = expected[name]
            same = len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
            status = None if same else "modified"
            if name.rpartition("/")[2] != "zarr.json":
                return name, status, []
            try:
                return name, status, unsafe_entries(json.loads(data), name.rpartition("zarr.json")[0].rstrip("/"))
            except (ValueError, AttributeError):
                return name, status, [f"{name}: not a JSON object"]

        n_workers = workers or (8 if loc.remote else 1)
        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(check, sorted(expected)))
    return VerifyResult(
        location=loc.target, n_files=len(expected), n_bytes=sum(int(e["size"]) for e in expected.values()),
        missing=tuple(n for n, status, _ in results if status == "missing"),
        modified=tuple(n for n, status, _ in results if status == "modified"),
        unexpected=None if listed is None else tuple(sorted(n for n in listed - set(expected) if is_listed(n))),
        unsafe=tuple(p for _, _, problems in results for p in problems),
        seconds=time.perf_counter() - started)
