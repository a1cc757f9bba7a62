"""A store folder served over HTTP(S): bounded streamed reads, time-outs, quoted names, credentials kept private.

Reads are GET requests on aiohttp, through the session of fsspec's
``HTTPFileSystem`` (which also parses directory listings). Each request
gives up after ``retry.timeout`` seconds without an answer (connecting, or
between two received blocks); :func:`.retry.read_retrying` caps one file's
attempts at ``retry.cap`` seconds. Store-relative names are percent-quoted
into the URL, so sample ids holding ``#``, ``?``, ``%`` or spaces name
their files, not a fragment or a query. The body is streamed and the read
stops past the caller's limit (fsspec's ``cat_file`` would read any body a
server sends).

Credentials are never part of a URL mepipe shows or records: user and
password given in the URL are taken out by :func:`..location.locate` and
sent as HTTP basic authentication (aiohttp drops it on a redirect to another host); without them, aiohttp looks the host up
in ``~/.netrc`` (or the file ``$NETRC`` names).
"""
from __future__ import annotations

import asyncio
import base64
import weakref
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import DataError, UsageError
from .base import StoreBackend, check_name, too_large
from .retry import RemoteTimeout


def _aiohttp():
    try:
        import aiohttp
    except ImportError:
        raise UsageError("reading stores over HTTP needs aiohttp: pip install 'mepipe[http]'") from None
    return aiohttp


def http_client_options(location, given: dict[str, Any]) -> dict[str, Any]:
    """aiohttp session options for a location: netrc lookups, its time-out, its credentials (if any)."""
    aiohttp = _aiohttp()
    timeout = location.retry.timeout
    out = {"trust_env": True, **given,
           "timeout": aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)}
    if location.credentials:
        token = base64.b64encode(":".join(location.credentials).encode()).decode()
        out["headers"] = {**out.get("headers", {}), "Authorization": f"Basic {token}"}
    return out


class AccessDenied(DataError, PermissionError):
    """The server refused the request (HTTP 401 or 403): credentials are missing or wrong."""


class HttpStatusError(OSError):
    """Any other HTTP error status; ``status`` tells :func:`.retry.is_transient` whether to retry."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HttpBackend(StoreBackend):
    """A store folder at an ``http://`` or ``https://`` URL (read-only)."""

    name = "http"
    description = "a store folder served over HTTP(S) (read-only)"
    remote = True

    def __init__(self, location):
        super().__init__(location)
        import yarl

        self.root = str(yarl.URL(location.target.rstrip("/")))
        self._fs: Any = None

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        return "::" not in target and urlsplit(target).scheme.lower() in ("http", "https")

    def _filesystem(self) -> Any:
        """fsspec's asynchronous HTTP file system with this store's time-out and credentials (made once)."""
        if self._fs is None:
            from fsspec.implementations.http import HTTPFileSystem

            options = dict(self.location.storage_options)
            client = http_client_options(self.location, options.pop("client_kwargs", {}))
            self._fs = HTTPFileSystem(asynchronous=True, client_kwargs=client, skip_instance_cache=True, **options)
        return self._fs

    def _url(self, name: str) -> Any:
        import yarl

        return yarl.URL(f"{self.root}/{quote(name, safe='/')}", encoded=True)

    def _stalled(self, name: str) -> RemoteTimeout:
        return RemoteTimeout(f"{self.where}/{name}: no answer for {self.location.retry.timeout:g} s")

    async def _session(self) -> Any:
        """The aiohttp session (made in the running event loop; closed when the back-end is collected)."""
        fs = self._filesystem()
        if fs._session is None:
            session = await fs.set_session()
            weakref.finalize(self, fs.close_session, asyncio.get_running_loop(), session)
        return fs._session

    async def _request(self, method: str, name: str):
        check_name(self.where, name)
        session = await self._session()
        return session.request(method, self._url(name), **self._fs.kwargs)

    def _check_status(self, status: int, name: str) -> None:
        if status == 404:
            raise FileNotFoundError(f"{self.where}/{name}: not found")
        if status in (401, 403):
            raise AccessDenied(f"{self.where}/{name}: HTTP {status}, the server wants credentials it accepts; give "
                               "them in the URL (https://user:password@host/...) or in ~/.netrc (mepipe never "
                               "records them)")
        if status >= 400:
            raise HttpStatusError(status, f"{self.where}/{name}: HTTP {status}")

    async def read(self, name: str, limit: int) -> bytes:
        aiohttp = _aiohttp()
        try:
            async with await self._request("GET", name) as r:
                self._check_status(r.status, name)
                if r.content_length is not None and r.content_length > limit:
                    raise too_large(self.where, name, limit)
                parts, n = [], 0
                async for block in r.content.iter_chunked(1 << 20):
                    n += len(block)
                    if n > limit:
                        raise too_large(self.where, name, limit)
                    parts.append(block)
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as err:
            if isinstance(err, RemoteTimeout):
                raise
            raise self._stalled(name) from None
        return b"".join(parts)

    async def size(self, name: str) -> int:
        aiohttp = _aiohttp()
        try:
            async with await self._request("HEAD", name) as r:
                self._check_status(r.status, name)
                if r.content_length is not None:
                    return r.content_length
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
            raise self._stalled(name) from None
        return len(await self.read(name, 1 << 62))

    async def listing(self) -> dict[str, int | None] | None:
        """Every file under the URL (sizes unknown), or None when the server gives no directory listings.

        Listings give links, which are percent-encoded; the names are
        decoded so that ``clips/a b`` matches the manifest's ``clips/a b``.
        """
        try:
            await self._session()
            found = await asyncio.wait_for(self._fs._find(self.root), self.location.retry.cap)
        except (FileNotFoundError, NotImplementedError, ValueError, OSError, asyncio.TimeoutError):
            return None
        except Exception as err:  # aiohttp's errors: a server that cannot be listed is not an error here
            if isinstance(err, _aiohttp().ClientError):
                return None
            raise
        prefix = unquote(self.root) + "/"
        names: dict[str, int | None] = {}
        for p in map(unquote, map(str, found)):
            if p.startswith(prefix) and len(p) > len(prefix):
                names[p[len(prefix):]] = None
        return names or None
