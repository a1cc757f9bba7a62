"""A store folder at any other fsspec URL (``s3://``, ``gs://``, ``memory://``, chained URLs, ...).

Reads run on fsspec's asynchronous interface (an asynchronous instance of
the file system, or fsspec's wrapper around a synchronous one, as Zarr's
``FsspecStore`` makes them), each bounded and given ``retry.timeout``
seconds. Writes (a push) use the synchronous instance: a copy is uploaded
beside the destination and, since object stores cannot rename, copied into
place with the manifest last once it verifies.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError
from .base import LAST_NAMES, StoreBackend, check_name, part_name, publish_order, too_large
from .http import http_client_options
from .local import is_local, is_url
from .retry import RemoteTimeout


def url_filesystem(location, *, asynchronous: bool = False) -> tuple[Any, str]:
    """The fsspec file system and root path of a URL location, with its options and credentials.

    Raises
    ------
    UsageError
        The URL's protocol is unknown, or its package is not installed
        (cloud back-ends are optional extras).
    """
    from fsspec.core import url_to_fs

    options = dict(location.storage_options)
    if urlsplit(location.target).scheme.lower() in ("http", "https"):
        options["client_kwargs"] = http_client_options(location, options.get("client_kwargs", {}))
    elif location.credentials:
        options.setdefault("username", location.credentials[0])
        options.setdefault("password", location.credentials[1])
    try:
        fs, path = url_to_fs(location.target, **options, **({"asynchronous": True} if asynchronous else {}))
    except (ImportError, ValueError) as err:
        raise UsageError(f"{location.where}: cannot open this URL ({err}); cloud back-ends are optional extras: "
                         "pip install 'mepipe[s3]' or 'mepipe[gcs]', and 'mepipe[http]' for http(s)") from None
    if asynchronous and not fs.async_impl:
        from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

        fs = AsyncFileSystemWrapper(fs, asynchronous=True)
    return fs, path.rstrip("/")


class FsspecBackend(StoreBackend):
    """A store folder at an fsspec URL whose file system has no back-end of its own here."""

    name = "fsspec"
    description = "a store folder at any fsspec URL (s3://, gs://, memory://, ...)"
    remote = True
    writable = True
    _afs: Any = None
    _fs: Any = None
    root = ""
    """The store's path in its file system, once the file system is made."""

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        return is_url(target) and not is_local(target)

    def _async(self) -> Any:
        if self._afs is None:
            self._afs, self.root = url_filesystem(self.location, asynchronous=True)
        return self._afs

    def _sync(self) -> Any:
        if self._fs is None:
            self._fs, self.root = url_filesystem(self.location)
        return self._fs

    def check_present(self) -> None:
        self._sync()

    def _path(self, name: str) -> str:
        check_name(self.where, name)
        return f"{self.root}/{name}"

    async def _timed(self, name: str, call):
        try:
            return await asyncio.wait_for(call, self.location.retry.timeout)
        except asyncio.TimeoutError:
            raise RemoteTimeout(f"{self.where}/{name}: no answer for {self.location.retry.timeout:g} s") from None

    async def read(self, name: str, limit: int) -> bytes:
        fs = self._async()
        data = await self._timed(name, fs._cat_file(self._path(name), start=0, end=limit + 1))
        if len(data) > limit:
            raise too_large(self.where, name, limit)
        return data

    async def size(self, name: str) -> int:
        fs = self._async()
        info = await self._timed(name, fs._info(self._path(name)))
        if info.get("type") == "directory":
            raise FileNotFoundError(f"{self.where}/{name}: a directory, not a file")
        return int(info["size"])

    async def listing(self) -> dict[str, int | None] | None:
        fs = self._async()
        try:
            found = await self._timed("", fs._find(self.root, detail=True))
        except (FileNotFoundError, NotImplementedError, OSError):
            return None
        prefix = self.root + "/"
        return {p[len(prefix):]: info.get("size") for p, info in found.items()
                if p.startswith(prefix) and len(p) > len(prefix)} or None

    # -- writing --------------------------------------------------------------------------------------

    def exists_store(self) -> bool:
        return self._sync().exists(self.root)

    def staged(self) -> FsspecBackend:
        self._sync()
        parent, _, leaf = self.location.target.rstrip("/").rpartition("/")
        return type(self)(self.location.moved(f"{parent}/{part_name(leaf)}"))

    def write(self, name: str, data: bytes) -> None:
        fs = self._sync()
        path = self._path(name)
        fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        fs.pipe_file(path, data)

    def finish(self) -> None:
        """Nothing to complete: each file was uploaded whole."""

    def publish(self, staged: StoreBackend, names: Sequence[str]) -> None:
        """Copy the staged files into place, the manifest last; the old copy is removed first.

        Object stores cannot rename, so between the removal and the last
        copy a reader finds no manifest at the destination, hence no store,
        never a wrong one. The caller verifies the result again.
        """
        fs = self._sync()
        staged._sync()
        if fs.exists(self.root):
            fs.rm(self.root, recursive=True)
        order = publish_order(list(names))
        for name in order:
            fs.makedirs(f"{self.root}/{name}".rpartition("/")[0], exist_ok=True)
        last = [n for n in order if n in LAST_NAMES]
        for batch in ([n for n in order if n not in LAST_NAMES], last):
            fs.copy([f"{staged.root}/{n}" for n in batch], [f"{self.root}/{n}" for n in batch])
        staged.discard()

    def discard(self) -> None:
        fs = self._sync()
        if fs.exists(self.root):
            fs.rm(self.root, recursive=True)

