"""Where a store lives: a local folder, a Zarr zip file, or any fsspec URL.

:func:`zarr_store` turns a location into a read-only Zarr store; every Zarr
metadata document read through it is checked by :mod:`.safety` first.
Remote stores are read through a local cache so that repeated epochs do not
download again::

    <cache>/stores/<hash of URL>/<hash of the root zarr.json>/<hash of key>

The root ``zarr.json`` (schema, provenance and the consolidated metadata of
every node) is fetched on each open; it changes with every build, so a rebuilt
store lands in a fresh cache folder and stale chunks are never served. The
cache folders of older versions of the same URL are removed. Cached files are
written to a temporary name and renamed, so concurrent readers (data loader
workers) and interrupted downloads never see a partial file. (fsspec's
``simplecache::`` writes in place and cannot tell a rebuilt store from the
old one, hence this small cache in its stead.)
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import FsspecStore, LocalStore, WrapperStore, ZipStore

from .safety import V2_METADATA_KEYS, check_metadata
from .versioning import check_schema_readable

log = logging.getLogger(__name__)

CACHE_ENV = "MEPIPE_CACHE"
"""Environment variable naming the read cache folder (default ``~/.cache/mepipe``)."""

_LOCAL_PROTOCOLS = {"file", "local"}


def default_cache_dir() -> Path:
    """``$MEPIPE_CACHE``, else ``~/.cache/mepipe``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mepipe")


@dataclass(frozen=True)
class StoreLocation:
    """A store's address and how to read it.

    Attributes
    ----------
    target : str
        Folder path, zip file path, or URL (``https://``, ``s3://``, ``gs://``,
        ``file://``, chained fsspec URLs).
    remote : bool
        True for URLs: read through fsspec, read-only.
    zipped : bool
        True for a Zarr zip store (``*.zip``, local or remote).
    cache : bool
        Keep remote reads in a local cache.
    cache_dir : Path or None
        Cache folder; None means :func:`default_cache_dir`.
    storage_options : dict
        Passed to fsspec (credentials, endpoint, ...).
    """

    target: str
    remote: bool
    zipped: bool
    cache: bool = True
    cache_dir: Path | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def kind(self) -> str:
        """``folder``, ``zip``, ``url`` or ``url-zip``."""
        if self.remote:
            return "url-zip" if self.zipped else "url"
        return "zip" if self.zipped else "folder"

    def __str__(self) -> str:
        return self.target


def locate(location: str | os.PathLike | StoreLocation, *, cache: bool | None = None,
           cache_dir: str | os.PathLike | None = None,
           storage_options: Mapping[str, Any] | None = None) -> StoreLocation:
    """Classify a store address; options given here override those of a :class:`StoreLocation`.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        Anything with ``://`` or ``::`` is an fsspec URL; a path ending in
        ``.zip`` (or naming a zip file) is a zip store; other paths are folders.
    cache, cache_dir, storage_options
        See :class:`StoreLocation`.
    """
    if isinstance(location, StoreLocation):
        loc = location
    else:
        text = os.fspath(location)
        remote = "://" in text or "::" in text
        if remote:
            text = text.rstrip("/")
        zipped = text.lower().endswith(".zip") or (not remote and os.path.isfile(text) and zipfile.is_zipfile(text))
        loc = StoreLocation(text, remote, zipped)
    changes = {k: v for k, v in {"cache": cache, "cache_dir": Path(cache_dir) if cache_dir else None,
                                  "storage_options": dict(storage_options) if storage_options else None}.items()
               if v is not None}
    return StoreLocation(**{**loc.__dict__, **changes})


def zarr_store(location: str | os.PathLike | StoreLocation) -> Store:
    """A read-only Zarr store for a folder, a zip file or a URL, with metadata checks and (remote) a cache.

    Raises
    ------
    FileNotFoundError
        Nothing at the location (the message names it).
    mepipe.featurestore.safety.UnsafeStoreError
        Later, when Zarr reads metadata outside the allow-list.
    """
    loc = locate(location)
    if not loc.remote:
        path = Path(loc.target)
        if loc.zipped:
            if not path.is_file():
                raise FileNotFoundError(f"{loc.target}: no such zip store")
            base: Store = ZipStore(path, mode="r")
        else:
            if not path.is_dir():
                raise FileNotFoundError(f"{loc.target}: no such store folder")
            base = LocalStore(path, read_only=True)
    elif loc.zipped:
        base = ZipStore(local_zip(loc), mode="r")
    else:
        base = _remote_folder(loc)
    return MetadataGuard(base, loc.target)


def filesystem(loc: StoreLocation) -> tuple[Any, str]:
    """The fsspec file system and root path of a URL (no cache)."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(loc.target, **loc.storage_options)
    except (ImportError, ValueError) as err:
        raise ValueError(f"{loc.target}: cannot open this URL ({err}); cloud back-ends are optional extras: "
                         "pip install 'mepipe[s3]' or 'mepipe[gcs]', and 'mepipe[http]' for http(s)") from err


@contextlib.contextmanager
def store_files(location: str | os.PathLike | StoreLocation) -> Iterator[tuple[Any, str]]:
    """Raw, uncached access to a store's files as an fsspec file system and root path.

    Used to checksum and copy the bytes themselves. A remote zip is
    downloaded to a temporary file for the duration of the ``with`` block.
    """
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.zip import ZipFileSystem

    loc = locate(location)
    if not loc.remote and not loc.zipped:
        if not Path(loc.target).is_dir():
            raise FileNotFoundError(f"{loc.target}: no such store folder")
        yield LocalFileSystem(), Path(loc.target).resolve().as_posix()
    elif not loc.remote:
        if not Path(loc.target).is_file():
            raise FileNotFoundError(f"{loc.target}: no such zip store")
        fs = ZipFileSystem(fo=loc.target, skip_instance_cache=True)
        try:
            yield fs, ""
        finally:
            fs.close()
    elif loc.zipped:
        with tempfile.TemporaryDirectory(prefix="mepipe-") as tmp:
            local = _local_file(loc)
            if local is None:
                local = Path(tmp) / "store.zip"
                _download(loc, local)
            fs = ZipFileSystem(fo=str(local), skip_instance_cache=True)
            try:
                yield fs, ""
            finally:
                fs.close()
    else:
        fs, root = filesystem(loc)
        yield fs, root.rstrip("/")


def _download(loc: StoreLocation, dest: Path) -> None:
    fs, path = filesystem(loc)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        fs.get_file(path, str(tmp))
        os.replace(tmp, dest)
    except FileNotFoundError:
        raise FileNotFoundError(f"{loc.target}: no such zip store") from None
    finally:
        tmp.unlink(missing_ok=True)


def _url_dir(loc: StoreLocation) -> Path:
    url_dir = (loc.cache_dir or default_cache_dir()) / "stores" / _digest(loc.target.encode())
    url_dir.mkdir(parents=True, exist_ok=True)
    (url_dir / "url.txt").write_text(_redacted(loc.target) + "\n")
    return url_dir


def _redacted(url: str) -> str:
    """The URL without user, password or query (which may hold a token), for notes on disk."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", "")) if parts.scheme else url


def _version_dir(loc: StoreLocation, version: str) -> Path:
    """The cache folder of one version of a store; older versions of the same URL are removed."""
    url_dir = _url_dir(loc)
    for old in url_dir.iterdir():
        if old.is_dir() and old.name != version:
            log.info("removing the cache of an older version of %s: %s", loc.target, old)
            shutil.rmtree(old, ignore_errors=True)
    out = url_dir / version
    out.mkdir(exist_ok=True)
    return out


def _local_file(loc: StoreLocation) -> Path | None:
    """The file itself for a ``file://`` zip URL (no copy needed); None for other protocols."""
    fs, path = filesystem(loc)
    if not set(_protocols(fs)) & _LOCAL_PROTOCOLS:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"{loc.target}: no such zip store")
    return Path(path)


def local_zip(loc: StoreLocation) -> Path:
    """A local file for a remote zip store, downloaded once per version (its size, date and ETag)."""
    on_disk = _local_file(loc)
    if on_disk is not None:
        return on_disk
    if not loc.cache:
        tmp = Path(tempfile.mkdtemp(prefix="mepipe-"))
        atexit.register(shutil.rmtree, tmp, True)
        _download(loc, tmp / "store.zip")
        return tmp / "store.zip"
    fs, path = filesystem(loc)
    try:
        version = _digest(fs.ukey(path).encode())
    except FileNotFoundError:
        raise FileNotFoundError(f"{loc.target}: no such zip store") from None
    local = _version_dir(loc, version) / "store.zip"
    if not local.exists():
        log.info("downloading %s to %s", loc.target, local)
        _download(loc, local)
    return local


def _remote_folder(loc: StoreLocation) -> Store:
    fs, path = filesystem(loc)
    store = FsspecStore.from_url(loc.target, storage_options=loc.storage_options, read_only=True)
    if not loc.cache or set(_protocols(fs)) & _LOCAL_PROTOCOLS:
        return store
    try:
        root = fs.cat_file(f"{path.rstrip('/')}/zarr.json")
    except FileNotFoundError:
        raise FileNotFoundError(f"{loc.target}: no zarr.json there; not a Zarr store, or a wrong URL") from None
    if _attributes(root).get("state") != "complete":
        log.info("%s: not a complete build; reading without the cache", loc.target)
        return store
    cache = _version_dir(loc, _digest(root))
    _write_atomic(cache / _digest(b"zarr.json"), root)
    return ReadCache(store, cache)


def _attributes(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return attrs if isinstance(attrs, dict) else {}


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        log.debug("could not cache %s: %s", path, err)
    finally:
        tmp.unlink(missing_ok=True)


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


class _Wrapper(WrapperStore[Store]):
    """Routes batched reads through ``get`` so a subclass sees every read."""

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def _get_many(self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
                        ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)


class ReadCache(_Wrapper):
    """Keeps every value read from ``store`` as a file in ``directory``.

    Only for stores that do not change under one cache folder (see the module
    docstring), so absent keys (chunks never written because they hold only
    the fill value) are remembered as absent too.
    """

    def __init__(self, store: Store, directory: str | os.PathLike):
        super().__init__(store)
        self.directory = Path(directory)

    def _with_store(self, store: Store) -> ReadCache:
        return type(self)(store, self.directory)

    def __repr__(self) -> str:
        return f"ReadCache({self._store!r}, {str(self.directory)!r})"

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        path = self.directory / _digest(key.encode())
        absent = path.with_suffix(".absent")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if absent.exists():
                return None
            buf = await self._store.get(key, prototype)
            self.directory.mkdir(parents=True, exist_ok=True)
            if buf is None:
                _write_atomic(absent, b"")
                return None
            data = buf.to_bytes()
            _write_atomic(path, data)
        return prototype.buffer.from_bytes(_byte_slice(data, byte_range))


class MetadataGuard(_Wrapper):
    """Checks each ``zarr.json`` against the allow-list before Zarr parses it.

    The root's schema version is checked first, so a store of a newer schema
    is refused with the mepipe version that reads it. Zarr v2 metadata keys
    read as absent: mepipe stores are v3 only, and a v2 ``.zarray`` could
    name an object dtype with a pickle filter.
    """

    def __init__(self, store: Store, where: str):
        super().__init__(store)
        self.where = where

    def _with_store(self, store: Store) -> MetadataGuard:
        return type(self)(store, self.where)

    def __repr__(self) -> str:
        return f"MetadataGuard({self._store!r})"

    def __str__(self) -> str:
        return self.where

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        name = key.rpartition("/")[2]
        if name in V2_METADATA_KEYS:
            return None
        if name != "zarr.json":
            return await self._store.get(key, prototype, byte_range)
        buf = await self._store.get(key, prototype)
        if buf is None:
            return None
        data = buf.to_bytes()
        if key == "zarr.json":
            check_schema_readable(_attributes(data), self.where)
        check_metadata(data, key, self.where)
        return prototype.buffer.from_bytes(_byte_slice(data, byte_range))
