"""Reading a store's files as untrusted data: bounded, inside the store, and only regular files.

A *source* reads one file of a store by its store-relative name (the names
of ``manifest.json``, which are also Zarr keys) and never returns more than
the caller's limit:

- :class:`FolderSource` refuses names that leave the folder, symlinks that
  resolve outside it and anything that is not a regular file (``/dev/zero``,
  a FIFO), and reads at most ``limit + 1`` bytes.
- :class:`ZipSource` refuses a zip with an entry named outside the store or
  a symlink entry when it is opened, each by name, and reads entries bounded.
- :class:`UrlSource` reads through fsspec; over HTTP the body is streamed and
  the read stops past the limit (fsspec's ``cat_file`` would read any body a
  server sends, and ignores ``Range`` on servers that do).

Sources raise ``FileNotFoundError`` for an absent file, :class:`ReadLimitError`
for one that is too large and :class:`~.safety.UnsafeStoreError` for one that
is not a file of the store. They do not retry or check content; that is
:mod:`.integrity`'s job.
"""
from __future__ import annotations

import asyncio
import errno
import os
import stat
import struct
import threading
import weakref
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .safety import UnsafeStoreError, name_problem, printable, unsafe_names


class ReadLimitError(RuntimeError):
    """A file holds more bytes than its manifest entry, shape and data type, or the metadata limit allow."""


def _too_large(where: str, name: str, limit: int) -> ReadLimitError:
    return ReadLimitError(f"{where}: {name} holds more than the {limit} bytes allowed for it; refusing to read "
                          "on (a damaged or hostile store)")


def _checked_name(where: str, name: str) -> None:
    why = name_problem(name)
    if why:
        raise UnsafeStoreError(f"{where}: refusing to read {printable(repr(name))}: {why}")


class FolderSource:
    """The files of a store folder on a local disk.

    Parameters
    ----------
    root : str or PathLike
        The store folder.
    where : str
        How the store is named in messages.
    """

    remote = False

    def __init__(self, root: str | os.PathLike, where: str):
        self.root = Path(root)
        self.where = where
        self._real_root = os.path.realpath(self.root)
        self._plain_dirs: set[str] = {""}

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r})"

    def read_sync(self, name: str, limit: int) -> bytes:
        """The bytes of ``name``; see the module docstring for what is refused."""
        _checked_name(self.where, name)
        path = os.path.join(self._real_root, name)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        # O_NONBLOCK: opening a FIFO planted in the store must not hang; it is refused below.
        flags |= getattr(os, "O_NONBLOCK", 0)
        if self._plain_path(name):
            try:
                fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
            except OSError as err:
                if err.errno != errno.ELOOP:
                    raise
                fd = os.open(self._contained(name), flags)
        else:
            fd = os.open(self._contained(name), flags)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeStoreError(f"{self.where}: refusing to read {name}: not a regular file (a device, FIFO "
                                       "or socket)")
            if info.st_size > limit:
                raise _too_large(self.where, name, limit)
            data = f.read(limit + 1)
        if len(data) > limit:
            raise _too_large(self.where, name, limit)
        return data

    def _plain_path(self, name: str) -> bool:
        """Whether every folder on the way to ``name`` is a real folder, no symlink (remembered per folder).

        Then opening with ``O_NOFOLLOW`` keeps the read inside the store at the
        cost of one ``lstat`` per new folder, where ``realpath`` would stat
        every component of the absolute path on every read.
        """
        parent = name.rpartition("/")[0]
        if parent in self._plain_dirs:
            return True
        walked = ""
        for part in parent.split("/"):
            walked = f"{walked}/{part}" if walked else part
            if walked in self._plain_dirs:
                continue
            try:
                mode = os.lstat(os.path.join(self._real_root, walked)).st_mode
            except FileNotFoundError:
                return False
            if not stat.S_ISDIR(mode):
                return False
            self._plain_dirs.add(walked)
        return True

    def _contained(self, name: str) -> str:
        """The real path of ``name``, which must lie inside the store (symlinks inside it are followed)."""
        real = os.path.realpath(os.path.join(self._real_root, name))
        if not real.startswith(self._real_root + os.sep):
            raise UnsafeStoreError(f"{self.where}: refusing to read {name}: it is a symlink leading out of the store "
                                   f"(to {printable(real)})")
        return real

    async def read(self, name: str, limit: int) -> bytes:
        return await asyncio.to_thread(self.read_sync, name, limit)

    async def names(self) -> set[str]:
        """Every file under the folder (store-relative names), symlinks included but not followed."""
        out = set()
        for dirpath, _, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            out.update((rel / f).as_posix() for f in files)
        return out


def zip_problems(zf: zipfile.ZipFile) -> list[str]:
    """Entries of a zip store that name something outside it, or are symlinks; one line per entry."""
    problems = unsafe_names(i.filename.rstrip("/") for i in zf.infolist())
    problems += [f"{printable(repr(i.filename))}: symlink entry" for i in zf.infolist()
                 if stat.S_ISLNK(i.external_attr >> 16)]
    return problems


class ZipSource:
    """The entries of a Zarr zip store (a local file).

    Raises
    ------
    UnsafeStoreError
        On opening, naming every entry with an unsafe name or a symlink entry.
    """

    remote = False

    def __init__(self, path: str | os.PathLike, where: str):
        self.path = Path(path)
        self.where = where
        self._open()

    def _open(self) -> None:
        try:
            self._zf = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as err:
            raise UnsafeStoreError(f"{self.where}: not a readable zip file ({err})") from None
        problems = zip_problems(self._zf)
        if problems:
            self._zf.close()
            raise UnsafeStoreError(f"{self.where}: refusing a zip store whose entries lead out of the store: "
                                   + "; ".join(problems))
        self._entries = {i.filename: i for i in self._zf.infolist() if not i.is_dir()}
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._closer = weakref.finalize(self, os.close, self._fd)
        self._data_start: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "where": self.where}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def __repr__(self) -> str:
        return f"ZipSource({str(self.path)!r})"

    def close(self) -> None:
        self._zf.close()
        self._closer()

    def read_sync(self, name: str, limit: int) -> bytes:
        _checked_name(self.where, name)
        entry = self._entries.get(name)
        if entry is None:
            raise FileNotFoundError(f"{self.where}: no entry {name}")
        if entry.file_size > limit:
            raise _too_large(self.where, name, limit)
        if entry.compress_type == zipfile.ZIP_STORED:
            return self._read_stored(entry)
        try:
            with self._lock, self._zf.open(entry) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise ReadLimitError(f"{self.where}: entry {name} is damaged ({err})") from None
        if len(data) > limit:
            raise _too_large(self.where, name, limit)
        return data

    def _read_stored(self, entry: zipfile.ZipInfo) -> bytes:
        """An uncompressed entry's bytes, read in place without zipfile's CRC pass.

        The caller hashes what it reads (the manifest check), so the CRC would
        check the same bytes twice; ``pread`` needs no lock, so reads run in
        parallel. (mepipe packs every entry stored.)
        """
        start = self._data_start.get(entry.filename)
        if start is None:
            header = os.pread(self._fd, 30, entry.header_offset)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise ReadLimitError(f"{self.where}: entry {entry.filename} has a damaged local header")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = self._data_start[entry.filename] = entry.header_offset + 30 + name_len + extra_len
        data = os.pread(self._fd, entry.compress_size, start)
        if len(data) != entry.file_size:
            raise ReadLimitError(f"{self.where}: entry {entry.filename} is cut short")
        return data

    async def read(self, name: str, limit: int) -> bytes:
        # In the event loop, as Zarr's ZipStore reads: entries are local, and one lock serialises them anyway.
        return self.read_sync(name, limit)

    async def names(self) -> set[str]:
        return set(self._entries)


class UrlSource:
    """The files of a store folder at an fsspec URL, read with an asynchronous file system.

    Parameters
    ----------
    fs : fsspec.asyn.AsyncFileSystem
        An asynchronous file system (Zarr's ``FsspecStore.fs``), so that
        reads run on Zarr's event loop.
    root : str
        The store's root path in ``fs``.
    where : str
        The URL, for messages.
    """

    remote = True

    def __init__(self, fs: Any, root: str, where: str):
        self.fs = fs
        self.root = root.rstrip("/")
        self.where = where

    def __repr__(self) -> str:
        return f"UrlSource({self.where!r})"

    @property
    def _http(self) -> bool:
        from fsspec.implementations.http import HTTPFileSystem

        return isinstance(self.fs, HTTPFileSystem)

    async def read(self, name: str, limit: int) -> bytes:
        _checked_name(self.where, name)
        path = f"{self.root}/{name}"
        if self._http:
            return await self._read_http(path, name, limit)
        data = await self.fs._cat_file(path, start=0, end=limit + 1)
        if len(data) > limit:
            raise _too_large(self.where, name, limit)
        return data

    async def _read_http(self, url: str, name: str, limit: int) -> bytes:
        session = await self.fs.set_session()
        async with session.get(self.fs.encode_url(url), **self.fs.kwargs) as r:
            if r.status == 404:
                raise FileNotFoundError(url)
            r.raise_for_status()
            if r.content_length is not None and r.content_length > limit:
                raise _too_large(self.where, name, limit)
            parts, n = [], 0
            async for block in r.content.iter_chunked(1 << 20):
                n += len(block)
                if n > limit:
                    raise _too_large(self.where, name, limit)
                parts.append(block)
        return b"".join(parts)

    async def names(self) -> set[str] | None:
        """Every file under the URL, or None when it cannot be listed (HTTP without directory listings).

        HTTP listings give links, which are percent-encoded; the names are
        decoded so that ``clips/a b`` matches the manifest's ``clips/a b``.
        """
        try:
            found = await self.fs._find(self.root)
        except (FileNotFoundError, NotImplementedError, ValueError, OSError):
            return None
        prefix = unquote(self.root) + "/" if self._http else self.root + "/"
        names = set()
        for p in map(str, found):
            p = unquote(p) if self._http else p
            if p.startswith(prefix) and len(p) > len(prefix):
                names.add(p[len(prefix):])
        return names or None
