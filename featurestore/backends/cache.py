"""The local read cache: a back-end in front of a remote one, holding only bytes that matched the manifest.

Remote stores are read through it so that repeated epochs do not download
again (like fsspec's ``simplecache::``, but checked)::

    <cache>/stores/<hash of URL>/url.txt                  the URL, without credentials or query
    <cache>/stores/<hash of URL>/<store id>/manifest.json
    <cache>/stores/<hash of URL>/<store id>/<hash of key>

A cache folder belongs to one version (store id) of a store: a rebuilt
store has another id and lands in a fresh folder, and the folders of older
versions of the same URL are removed. Files are written under a temporary
name and renamed (concurrent data-loader workers and interrupted downloads
never see a partial file), only after they matched the manifest, and are
checked again when read back, so a damaged cache heals by fetching again.
The URL's hash is of the URL without credentials, so the same store reached
with a password or a netrc entry shares one cache.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .base import StoreBackend

log = logging.getLogger(__name__)

CACHE_ENV = "MEPIPE_CACHE"
"""Environment variable naming the read cache folder (default ``~/.cache/mepipe``)."""


def default_cache_dir() -> Path:
    """``$MEPIPE_CACHE``, else ``~/.cache/mepipe``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mepipe")


def digest(data: bytes) -> str:
    """A short hex digest, for file and folder names in the cache."""
    return hashlib.sha256(data).hexdigest()[:24]


def url_dir(location) -> Path:
    """The cache folder of one URL (created, with a note of the URL without secrets)."""
    out = (location.cache_dir or default_cache_dir()) / "stores" / digest(location.target.encode())
    out.mkdir(parents=True, exist_ok=True)
    (out / "url.txt").write_text(location.where + "\n")
    return out


def version_dir(location, version: str) -> Path:
    """The cache folder of one version of a store; older versions of the same URL are removed."""
    parent = url_dir(location)
    for old in parent.iterdir():
        if old.is_dir() and old.name != version:
            log.info("removing the cache of an older version of %s: %s", location.where, old)
            shutil.rmtree(old, ignore_errors=True)
    out = parent / version
    out.mkdir(exist_ok=True)
    return out


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` under a temporary name and rename it, so readers never see part of it.

    A cache that cannot be written (full disk, read-only) is only logged: the
    read it would speed up has already succeeded.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        log.debug("could not cache %s: %s", path, err)
    finally:
        tmp.unlink(missing_ok=True)


class CachingBackend(StoreBackend):
    """A remote back-end seen through the cache folder of one store version.

    Parameters
    ----------
    inner : StoreBackend
        The remote store.
    directory : Path
        The cache folder of the store's version (:func:`version_dir`).
    manifest : Manifest
        Its checked manifest: a file enters the cache only with its listed size and sha256.
    """

    name = "cache"
    description = "a local read cache in front of a remote back-end (not chosen by URL)"
    remote = True

    def __init__(self, inner: StoreBackend, directory: Path, manifest: Any):
        super().__init__(inner.location)
        self.inner = inner
        self.directory = Path(directory)
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"CachingBackend({self.inner!r}, {str(self.directory)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self.inner, "directory": self.directory, "manifest": self.manifest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["inner"], state["directory"], state["manifest"])

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        return False

    def _path(self, name: str) -> Path:
        return self.directory / digest(name.encode())

    def _entry(self, name: str) -> tuple[int, str] | None:
        e = self.manifest.files.get(name)
        return (e["size"], e["sha256"]) if isinstance(e, dict) and "size" in e and "sha256" in e else None

    async def read(self, name: str, limit: int) -> bytes:
        entry = self._entry(name)
        path = self._path(name)
        if entry is not None:
            try:
                if path.stat().st_size == entry[0] <= limit:
                    data = path.read_bytes()
                    if hashlib.sha256(data).hexdigest() == entry[1]:
                        return data
                    log.warning("%s: the cached copy of %s was damaged; fetching it again", self.where, name)
                    path.unlink(missing_ok=True)
            except OSError:
                pass
        data = await self.inner.read(name, limit)
        if entry is not None and len(data) == entry[0] and hashlib.sha256(data).hexdigest() == entry[1]:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return data

    async def size(self, name: str) -> int:
        return await self.inner.size(name)

    async def exists(self, name: str) -> bool:
        return await self.inner.exists(name)

    async def listing(self) -> dict[str, int | None] | None:
        return await self.inner.listing()
