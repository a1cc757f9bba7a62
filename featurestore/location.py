"""Where a store lives: a local folder, a Zarr zip file, or any fsspec URL.

:func:`zarr_store` turns a location into a read-only Zarr store whose every
read is checked against the store's manifest (:mod:`.integrity`), read
through a bounded, contained :mod:`source <.sources>`. Remote stores are
read through a local cache so that repeated epochs do not download again::

    <cache>/stores/<hash of URL>/<store id>/manifest.json
    <cache>/stores/<hash of URL>/<store id>/<hash of key>

The manifest is fetched on each open (one request) and names the store
version: a rebuilt store has another id, lands in a fresh cache folder, and
stale files are never served; the folders of older versions of the same URL
are removed. When the caller pins the id (``expect_id``) and its manifest is
cached, nothing is fetched until a file is missing from the cache. Cached
files hold only bytes that matched the manifest, are written to a temporary
name and renamed (concurrent data-loader workers and interrupted downloads
never see a partial file), and are checked again when read. A remote zip is
downloaded once per version (size, date, ETag) and checked in full before it
enters the cache.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zarr.abc.store import Store
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, ZipStore

from .integrity import (
    ChunkCache,
    FetchError,
    IncompleteStoreError,
    IntegrityError,
    RetryPolicy,
    VerifiedStore,
    read_retrying,
    write_atomic,
)
from .manifest import MANIFEST_FILE, Manifest, ManifestError, check_store_id, parse_manifest, store_id_of
from .safety import METADATA_LIMIT
from .sources import FolderSource, ReadLimitError, UrlSource, ZipSource

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
    retry : RetryPolicy
        How remote reads are retried on transient errors.
    """

    target: str
    remote: bool
    zipped: bool
    cache: bool = True
    cache_dir: Path | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False)
    retry: RetryPolicy = RetryPolicy()

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
           storage_options: Mapping[str, Any] | None = None, retry: RetryPolicy | None = None) -> StoreLocation:
    """Classify a store address; options given here override those of a :class:`StoreLocation`.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        Anything with ``://`` or ``::`` is an fsspec URL; a path ending in
        ``.zip`` (or naming a zip file) is a zip store; other paths are folders.
    cache, cache_dir, storage_options, retry
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
                                  "storage_options": dict(storage_options) if storage_options else None,
                                  "retry": retry}.items()
               if v is not None}
    return StoreLocation(**{**loc.__dict__, **changes})


def zarr_store(location: str | os.PathLike | StoreLocation, *, expect_id: str | None = None,
               allow_incomplete: bool = False) -> VerifiedStore:
    """A read-only Zarr store for a folder, a zip file or a URL, every read checked against the manifest.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        See :func:`locate`.
    expect_id : str, optional
        Refuse the store unless its id (sha256 of its manifest) is this.
    allow_incomplete : bool
        Read a store whose build has not finished, unverified (it has no valid
        manifest yet); refused when ``expect_id`` is given.

    Raises
    ------
    FileNotFoundError
        Nothing at the location (the message names it).
    IncompleteStoreError
        The build has not finished and ``allow_incomplete`` is False.
    ManifestError
        A complete store without a manifest.
    IntegrityError
        The id is not ``expect_id``, or the root metadata does not match the manifest.
    mepipe.featurestore.safety.UnsafeStoreError
        Names leading out of the store, or metadata outside the allow-list.
    """
    loc = locate(location)
    source, base = open_source(loc)
    manifest = load_manifest(loc, source, expect_id)
    if manifest is not None:
        cache = ChunkCache(_version_dir(loc, manifest.store_id)) if _cached_remote(loc) else None
        store = VerifiedStore(base, source, loc.target, manifest, cache, loc.retry)
        try:
            root = sync(store.read_bytes("zarr.json"))
        except IntegrityError:
            # A root that no longer matches may be a rebuild in progress over an old manifest.
            state = None
            if expect_id is None:
                with contextlib.suppress(Exception):
                    state = _peek_root(loc, source, base).get("state")
            if state in (None, "complete"):
                raise
            return _incomplete(loc, source, base, allow_incomplete, state)
        if root is None:
            raise ManifestError(f"{loc.target}: the manifest does not list zarr.json; not a mepipe store")
        state = store.root_attrs.get("state")
        if state == "complete":
            return store
        if expect_id is not None:
            raise IncompleteStoreError(f"{loc.target}: its build is {state or 'unknown'}, not complete")
        return _incomplete(loc, source, base, allow_incomplete, state)
    if expect_id is not None:
        raise IntegrityError(f"{loc.target}: no {MANIFEST_FILE}, so its id cannot be checked against "
                             f"{expect_id}")
    state = _peek_root(loc, source, base).get("state")
    if state == "complete":
        raise ManifestError(
            f"{loc.target}: no {MANIFEST_FILE}, so its reads cannot be checked; a build writes one when it "
            "finishes. Rerun `mepipe build` on the original folder (nothing is recomputed) and pack or push it "
            "again")
    return _incomplete(loc, source, base, allow_incomplete, state)


def _incomplete(loc: StoreLocation, source: Any, base: Store, allow: bool, state: str | None) -> VerifiedStore:
    if not allow:
        raise IncompleteStoreError(
            f"{loc.target}: its build is {state or 'unknown'} (not complete); rerun `mepipe build` on it "
            "to finish, or open with allow_incomplete=True to read what was written (unverified)")
    return VerifiedStore(base, source, loc.target, None, None, loc.retry)


def _peek_root(loc: StoreLocation, source: Any, base: Store) -> dict[str, Any]:
    """The root attributes, read unverified (bounded and safety-checked) to learn the build state."""
    peek = VerifiedStore(base, source, loc.target, None, None, loc.retry)
    if sync(peek.read_bytes("zarr.json")) is None:
        raise FileNotFoundError(f"{loc.target}: no zarr.json there; not a Zarr store, or a wrong URL")
    return peek.root_attrs


def open_source(loc: StoreLocation) -> tuple[Any, Store]:
    """The bounded reader of a store's files and the Zarr store used to list them.

    A ``file://`` URL is read as the local folder or zip it names; a remote
    zip is downloaded (once per version, into the cache unless disabled).
    """
    if loc.remote:
        fs, path = filesystem(loc)
        if is_local(fs):
            loc = StoreLocation(path, False, loc.zipped)
        elif loc.zipped:
            local = local_zip(loc)
            return ZipSource(local, loc.target), ZipStore(local, mode="r")
        else:
            store = FsspecStore.from_url(loc.target, storage_options=loc.storage_options, read_only=True)
            return UrlSource(store.fs, store.path, loc.target), store
    path = Path(loc.target)
    if loc.zipped:
        if not path.is_file():
            raise FileNotFoundError(f"{loc.target}: no such zip store")
        return ZipSource(path, loc.target), ZipStore(path, mode="r")
    if not path.is_dir():
        raise FileNotFoundError(f"{loc.target}: no such store folder")
    return FolderSource(path, loc.target), LocalStore(path, read_only=True)


def _cached_remote(loc: StoreLocation) -> bool:
    """Remote store folders are read through the cache (zips are cached whole by :func:`local_zip`)."""
    if not (loc.remote and loc.cache and not loc.zipped):
        return False
    fs, _ = filesystem(loc)
    return not is_local(fs)


def load_manifest(loc: StoreLocation, source: Any, expect_id: str | None = None) -> Manifest | None:
    """The store's checked manifest, or None when it has none.

    Remote manifests are kept in the cache folder of their store id; with a
    pinned id whose manifest is cached, nothing is fetched.

    Raises
    ------
    IntegrityError
        The id is not ``expect_id``, or the manifest could not be fetched.
    ManifestError, UnsafeStoreError
        See :func:`.manifest.parse_manifest`.
    """
    cached = _cached_remote(loc)
    if cached and expect_id:
        path = _url_dir(loc) / expect_id.strip().lower() / MANIFEST_FILE
        try:
            raw = path.read_bytes() if path.stat().st_size <= METADATA_LIMIT else b""
        except OSError:
            raw = b""
        if raw and store_id_of(raw) == expect_id.strip().lower():
            return parse_manifest(raw, loc.target)
    try:
        raw = sync(read_retrying(source, MANIFEST_FILE, METADATA_LIMIT, loc.retry))
    except FileNotFoundError:
        return None
    except FetchError as err:
        raise IntegrityError(f"{loc.target}: {MANIFEST_FILE} could not be fetched: {err}") from None
    except ReadLimitError as err:
        raise ManifestError(str(err)) from None
    manifest = parse_manifest(raw, loc.target)
    check_store_id(manifest, expect_id, loc.target)
    if cached:
        write_atomic(_version_dir(loc, manifest.store_id) / MANIFEST_FILE, raw)
    return manifest


def filesystem(loc: StoreLocation) -> tuple[Any, str]:
    """The fsspec file system and root path of a URL (no cache)."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(loc.target, **loc.storage_options)
    except (ImportError, ValueError) as err:
        raise ValueError(f"{loc.target}: cannot open this URL ({err}); cloud back-ends are optional extras: "
                         "pip install 'mepipe[s3]' or 'mepipe[gcs]', and 'mepipe[http]' for http(s)") from err


def _download(loc: StoreLocation, dest: Path, check: bool = False) -> None:
    """Fetch a remote zip to ``dest`` under a temporary name; with ``check``, only if it matches its manifest."""
    fs, path = filesystem(loc)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        fs.get_file(path, str(tmp))
        if check:
            _check_zip(tmp, loc.target)
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
    if not is_local(fs):
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
        _download(loc, local, check=True)
    return local


def _check_zip(path: Path, where: str) -> None:
    """Refuse a downloaded zip whose entries do not match its own manifest, so the cache keeps only good bytes.

    A zip without a manifest is let through: opening it then says why it is refused.
    """
    source = ZipSource(path, where)
    try:
        try:
            manifest = parse_manifest(source.read_sync(MANIFEST_FILE, METADATA_LIMIT), where)
        except FileNotFoundError:
            return
        bad = []
        for name in manifest.files:
            try:
                size, sha256 = manifest.entry(name)
                data = source.read_sync(name, size)
            except (FileNotFoundError, ReadLimitError, ManifestError):
                data = None
            if data is None or hashlib.sha256(data).hexdigest() != sha256:
                bad.append(name)
    finally:
        source.close()
    if bad:
        raise IntegrityError(f"{where}: the downloaded zip does not match its manifest ({len(bad)} files, e.g. "
                             f"{bad[0]}); it was not kept. Download it again, or ask for a good copy")


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def is_local(fs: Any) -> bool:
    """Whether an fsspec file system is the local disk (``file://``): real paths, real renames."""
    return bool(set(_protocols(fs)) & _LOCAL_PROTOCOLS)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]
