"""A Zarr zip store at a URL: downloaded once per version, checked whole, then read as a local zip.

A zip's entries sit at offsets inside one file, so over a network it is
fetched whole: into the read cache (one folder per version of the file:
its size, date and ETag, fsspec's ``ukey``), and only after every entry
matched the zip's own manifest, so the cache keeps only good bytes; without
the cache, into a temporary file removed at exit. Writing (a push to a
``.zip`` URL) packs a local zip and uploads it beside the destination;
publishing copies it into place.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..safety import METADATA_LIMIT
from .base import ReadLimitError, part_name
from .cache import digest, version_dir
from .fsspec_url import url_filesystem
from .local import is_local, is_url, url_path
from .retry import FetchError, network_error
from .zipped import ZipBackend

log = logging.getLogger(__name__)


class RemoteZipBackend(ZipBackend):
    """A ``*.zip`` store at any non-local URL (``https://``, ``s3://``, ``memory://``, ...)."""

    name = "url-zip"
    description = "a Zarr zip store at a URL, downloaded once per version"
    atomic_publish = False

    def __init__(self, location, path: Path | None = None):
        super().__init__(location, path=path)
        self._local = path
        self._remote: tuple[Any, str] | None = None

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        return is_url(target) and not is_local(target) and url_path(target).lower().endswith(".zip")

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location, "path": self._local}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"], state["path"])

    def _fs(self) -> tuple[Any, str]:
        if self._remote is None:
            self._remote = url_filesystem(self.location)
        return self._remote

    def check_present(self) -> None:
        self._reader()

    def _open_reader(self) -> None:
        if self._local is None:
            self._local = self.path = self._fetch()
        super()._open_reader()

    def _fetch(self) -> Path:
        """The local copy of the zip: the cached one of its current version, or a fresh download."""
        fs, path = self._fs()
        if not self.location.cache:
            tmp = Path(tempfile.mkdtemp(prefix="mepipe-"))
            atexit.register(shutil.rmtree, tmp, True)
            self._download(tmp / "store.zip", check=False)
            return tmp / "store.zip"
        try:
            version = digest(self._remote_call(fs.ukey, path).encode())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.where}: no such zip store") from None
        local = version_dir(self.location, version) / "store.zip"
        if not local.exists():
            log.info("downloading %s to %s", self.where, local)
            self._download(local, check=True)
        return local

    def _remote_call(self, fn, *args):
        """``fn(*args)`` on the remote file system, its network errors as one sentence naming the URL."""
        try:
            return fn(*args)
        except FileNotFoundError:
            raise
        except Exception as err:
            if not network_error(err):
                raise
            raise FetchError(f"{self.where}: could not be fetched ({type(err).__name__}: {err}; waited at most "
                             f"{self.location.retry.timeout:g} s for each answer)") from None

    def _download(self, dest: Path, check: bool) -> None:
        """Fetch the zip to ``dest`` under a temporary name; with ``check``, keep it only if it matches its manifest."""
        fs, path = self._fs()
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            self._remote_call(fs.get_file, path, str(tmp))
            if check:
                _check_zip(tmp, self.where)
            os.replace(tmp, dest)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.where}: no such zip store") from None
        finally:
            tmp.unlink(missing_ok=True)

    # -- writing: a local zip, uploaded beside the destination, then copied into place ---------------

    def exists_store(self) -> bool:
        fs, path = self._fs()
        return fs.exists(path)

    def staged(self) -> RemoteZipBackend:
        parent, _, leaf = self.location.target.rpartition("/")
        part = type(self)(self.location.moved(f"{parent}/{part_name(leaf)}"))
        part.path = Path(tempfile.mkdtemp(prefix="mepipe-")) / "store.zip"
        part.start_writing()
        return part

    def finish(self) -> None:
        """Close the local zip and upload it to this (temporary) URL."""
        super().finish()
        fs, path = self._fs()
        fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        self._remote_call(fs.put_file, str(self.path), path)
        shutil.rmtree(self.path.parent, ignore_errors=True)

    def publish(self, staged: ZipBackend, names) -> None:
        fs, path = self._fs()
        if fs.exists(path):
            fs.rm(path)
        fs.copy(staged._fs()[1], path)
        staged.discard()

    def discard(self) -> None:
        self.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            shutil.rmtree(self.path.parent, ignore_errors=True)
        fs, path = self._fs()
        if fs.exists(path):
            fs.rm(path)


def _check_zip(path: Path, where: str) -> None:
    """Refuse a downloaded zip whose entries do not match its own manifest, so the cache keeps only good bytes.

    A zip without a manifest is let through: opening it then says why it is refused.
    """
    from ..integrity import IntegrityError
    from ..location import locate
    from ..manifest import ManifestError, parse_manifest

    zipped = ZipBackend(locate(path), path)
    try:
        try:
            manifest = parse_manifest(zipped.read_sync("manifest.json", METADATA_LIMIT), where)
        except FileNotFoundError:
            return
        bad = []
        for name in manifest.files:
            try:
                size, sha256 = manifest.entry(name)
                data = zipped.read_sync(name, size)
            except (FileNotFoundError, ReadLimitError, ManifestError):
                data = None
            if data is None or hashlib.sha256(data).hexdigest() != sha256:
                bad.append(name)
    finally:
        zipped.close()
    if bad:
        raise IntegrityError(f"{where}: the downloaded zip does not match its manifest ({len(bad)} files, e.g. "
                             f"{bad[0]}); it was not kept. Download it again, or ask for a good copy")
