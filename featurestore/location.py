"""Where a store lives, and opening it for reading: its address, its back-end, its checked manifest.

:func:`locate` turns what a user typed (a folder, a zip file, a URL) into a
:class:`StoreLocation`: user and password are taken out of URLs (kept in
memory to authenticate, never shown or recorded: :attr:`StoreLocation.where`
is the address as every message and record gives it). The registry of
:mod:`back-ends <.backends>` decides which back-end reads it;
:func:`zarr_store` opens it as a read-only Zarr store whose every read is
checked against the store's manifest (:mod:`.integrity`).

Remote back-ends are read through the local read cache
(:class:`~.backends.cache.CachingBackend`), one folder per store version:
the manifest is fetched on each open (one request) and names the version,
so a rebuilt store lands in a fresh folder and stale files are never
served. When the caller pins the id (``expect_id``) and its manifest is
cached, nothing is fetched until a file is missing from the cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from zarr.core.sync import sync

from .backends import (CachingBackend, FetchError, ReadLimitError, RetryPolicy, StoreBackend, backend_class,
                       open_backend, read_retrying)
from .backends.cache import CACHE_ENV, default_cache_dir, url_dir, version_dir, write_atomic
from .backends.local import is_url
from .integrity import IncompleteStoreError, IntegrityError, VerifiedStore
from .manifest import MANIFEST_FILE, Manifest, ManifestError, check_store_id, parse_manifest, store_id_of
from .safety import METADATA_LIMIT

__all__ = ["CACHE_ENV", "StoreLocation", "default_cache_dir", "locate", "public_address", "redact", "zarr_store"]


def redact(address: str) -> str:
    """``address`` as it may be shown or recorded: a URL without user, password, query or fragment.

    Each part of a chained fsspec URL (``a::b``) is redacted; paths are returned unchanged.
    """
    if not is_url(address):
        return address
    bare = re.sub(r"//[^/?#]*@", "//", address)
    return "::".join(part.partition("?")[0].partition("#")[0] for part in bare.split("::"))


def _host(parts: SplitResult) -> str:
    """The network location without user info (an IPv6 address in brackets, the port if given)."""
    host = parts.hostname or ""
    return (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")


_REMEMBERED: dict[tuple[str, str], tuple[str, str]] = {}
"""User and password given in a URL, by scheme and host, for this process only (never written anywhere):
an address shown or recorded without them (a run's stores, reopened for its folds) reaches the same
server with them."""


def _credentials(address: str) -> tuple[str, tuple[str, str] | None]:
    """A URL without its user info, and the user info (decoded) given in it or earlier for its host."""
    if not is_url(address) or "::" in address:
        return address, None
    parts = urlsplit(address)
    host = _host(parts)
    key = (parts.scheme.lower(), host.lower())
    if parts.username is None and parts.password is None:
        return address, _REMEMBERED.get(key)
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    _REMEMBERED[key] = (unquote(parts.username or ""), unquote(parts.password or ""))
    return bare, _REMEMBERED[key]


def public_address(location: str | os.PathLike | StoreLocation) -> str:
    """A store's address as it may be printed and recorded: a path as given, a URL without user,
    password or query (credentials in it are kept for this process, see :func:`locate`)."""
    return locate(location).where


@dataclass(frozen=True)
class StoreLocation:
    """A store's address and how to read it.

    Attributes
    ----------
    target : str
        Folder path, zip file path, or URL (``https://``, ``s3://``, ``gs://``,
        ``file://``, chained fsspec URLs), without user info.
    cache : bool
        Keep remote reads in a local cache.
    cache_dir : Path or None
        Cache folder; None means :func:`default_cache_dir`.
    storage_options : dict
        Passed to fsspec (credentials, endpoint, ...); never shown.
    retry : RetryPolicy
        How remote reads are retried, and for how long each may wait.
    backend : str or None
        The back-end to read it with, by registry name; None lets the
        registry choose by ``target``.
    credentials : (str, str) or None
        User and password taken out of the URL; never shown or recorded.
    """

    target: str
    cache: bool = True
    cache_dir: Path | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy.from_env)
    backend: str | None = None
    credentials: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        """The address as messages and records give it (:func:`redact`)."""
        return redact(self.target)

    @property
    def kind(self) -> str:
        """The name of the back-end that reads it (``folder``, ``zip``, ``http``, ``url-zip``, ...)."""
        return backend_class(self).name

    def moved(self, target: str) -> StoreLocation:
        """The same options at another address (a temporary copy beside this one)."""
        return dataclasses.replace(self, target=target)

    def __str__(self) -> str:
        return self.where


def locate(location: str | os.PathLike | StoreLocation, *, cache: bool | None = None,
           cache_dir: str | os.PathLike | None = None, storage_options: Mapping[str, Any] | None = None,
           retry: RetryPolicy | None = None, backend: str | None = None) -> StoreLocation:
    """A store address as a :class:`StoreLocation`; options given here override those it has.

    Parameters
    ----------
    location : str, PathLike or StoreLocation
        A path or a URL (anything with ``://`` or ``::``); user and password
        in a URL are moved to :attr:`StoreLocation.credentials`, and kept
        for later URLs of the same scheme and host in this process.
    cache, cache_dir, storage_options, retry, backend
        See :class:`StoreLocation`.
    """
    if isinstance(location, StoreLocation):
        loc = location
    else:
        text = os.fspath(location)
        if is_url(text):
            text = text.rstrip("/")
        target, credentials = _credentials(text)
        loc = StoreLocation(target, credentials=credentials)
    changes = {k: v for k, v in {"cache": cache, "cache_dir": Path(cache_dir) if cache_dir else None,
                                  "storage_options": dict(storage_options) if storage_options else None,
                                  "retry": retry, "backend": backend}.items()
               if v is not None}
    return dataclasses.replace(loc, **changes)


def zarr_store(location: str | os.PathLike | StoreLocation, *, expect_id: str | None = None,
               allow_incomplete: bool = False) -> VerifiedStore:
    """A read-only Zarr store for a store at any location, every read checked against the manifest.

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
        The id is not ``expect_id``, or the metadata does not match the manifest.
    mepipe.featurestore.safety.UnsafeStoreError
        Names leading out of the store, or metadata outside the allow-list.
    """
    loc = locate(location)
    backend = open_backend(loc)
    manifest = load_manifest(loc, backend, expect_id)
    if manifest is None:
        if expect_id is not None:
            raise IntegrityError(f"{loc.where}: no {MANIFEST_FILE}, so its id cannot be checked against "
                                 f"{expect_id}")
        state = _peek_root(backend).get("state")
        if state == "complete":
            raise ManifestError(
                f"{loc.where}: no {MANIFEST_FILE}, so its reads cannot be checked; a build writes one when it "
                "finishes. Rerun `mepipe build` on the original folder (nothing is recomputed) and pack or push it "
                "again")
        return _incomplete(loc, backend, allow_incomplete, state)
    if backend.remote and loc.cache:
        backend = CachingBackend(backend, version_dir(loc, manifest.store_id), manifest)
    store = VerifiedStore(backend, manifest, loc.retry)
    try:
        root = sync(store.read_bytes("zarr.json"))
    except IntegrityError:
        # A root that no longer matches may be a rebuild in progress over an old manifest.
        state = None
        if expect_id is None:
            with contextlib.suppress(Exception):
                state = _peek_root(backend).get("state")
        if state in (None, "complete"):
            raise
        return _incomplete(loc, backend, allow_incomplete, state)
    if root is None:
        raise ManifestError(f"{loc.where}: the manifest does not list zarr.json; not a mepipe store")
    state = store.root_attrs.get("state")
    if state == "complete":
        return store
    if expect_id is not None:
        raise IncompleteStoreError(f"{loc.where}: its build is {state or 'unknown'}, not complete")
    return _incomplete(loc, backend, allow_incomplete, state)


def _incomplete(loc: StoreLocation, backend: StoreBackend, allow: bool, state: str | None) -> VerifiedStore:
    if not allow:
        raise IncompleteStoreError(
            f"{loc.where}: its build is {state or 'unknown'} (not complete); rerun `mepipe build` on it "
            "to finish, or open with allow_incomplete=True to read what was written (unverified)")
    return VerifiedStore(backend, None, loc.retry)


def _peek_root(backend: StoreBackend) -> dict[str, Any]:
    """The root attributes, read unverified (bounded and safety-checked) to learn the build state."""
    peek = VerifiedStore(backend, None)
    if sync(peek.read_bytes("zarr.json")) is None:
        raise FileNotFoundError(f"{backend.where}: no zarr.json there; not a Zarr store, or a wrong URL")
    return peek.root_attrs


def load_manifest(loc: StoreLocation, backend: StoreBackend, expect_id: str | None = None) -> Manifest | None:
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
    cached = backend.remote and loc.cache
    if cached and expect_id:
        path = url_dir(loc) / expect_id.strip().lower() / MANIFEST_FILE
        try:
            raw = path.read_bytes() if path.stat().st_size <= METADATA_LIMIT else b""
        except OSError:
            raw = b""
        if raw and store_id_of(raw) == expect_id.strip().lower():
            return parse_manifest(raw, loc.where)
    try:
        raw = sync(read_retrying(backend, MANIFEST_FILE, METADATA_LIMIT, loc.retry))
    except FileNotFoundError:
        return None
    except FetchError as err:
        raise IntegrityError(f"{loc.where}: {MANIFEST_FILE} could not be fetched: {err}") from None
    except ReadLimitError as err:
        raise ManifestError(str(err)) from None
    manifest = parse_manifest(raw, loc.where)
    check_store_id(manifest, expect_id, loc.where)
    if cached:
        write_atomic(version_dir(loc, manifest.store_id) / MANIFEST_FILE, raw)
    return manifest
