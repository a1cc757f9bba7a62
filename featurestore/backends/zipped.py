"""A Zarr zip store on a local disk (``*.zip``, or any zip file; a path or a ``file://`` URL)."""
from __future__ import annotations

import os
import stat
import struct
import threading
import weakref
import zipfile
import zlib
from collections.abc import Sequence

from ..safety import UnsafeStoreError, printable, unsafe_names
from .base import ReadLimitError, StoreBackend, check_name, part_name, too_large
from .local import is_local, local_path, url_path

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
"""Fixed entry dates: the same store packs to the same bytes."""


def zip_problems(zf: zipfile.ZipFile) -> list[str]:
    """Entries of a zip store that name something outside it, or are symlinks; one line per entry."""
    problems = unsafe_names(i.filename.rstrip("/") for i in zf.infolist())
    problems += [f"{printable(repr(i.filename))}: symlink entry" for i in zf.infolist()
                 if stat.S_ISLNK(i.external_attr >> 16)]
    return problems


class ZipBackend(StoreBackend):
    """The entries of a Zarr zip store.

    The zip is opened on first use; an entry named outside the store or a
    symlink entry refuses the whole zip then (:class:`~..safety.UnsafeStoreError`
    naming each). Entries are read bounded; stored (uncompressed) entries,
    which mepipe writes, are read in place with ``pread``. Writable: a copy
    is written as a zip beside the destination and renamed over it.
    """

    name = "zip"
    description = "a Zarr zip store on a local disk"
    writable = True
    atomic_publish = True

    def __init__(self, location, path=None):
        super().__init__(location)
        self.path = local_path(location.target) if path is None else path
        self._zf: zipfile.ZipFile | None = None
        self._writer: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        if not is_local(target):
            return False
        if url_path(target).lower().endswith(".zip"):
            return True
        path = local_path(target)
        return path.is_file() and zipfile.is_zipfile(path)

    def check_present(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.where}: no such zip store")
        self._reader()

    def _reader(self) -> zipfile.ZipFile:
        if self._zf is None:
            with self._lock:
                if self._zf is None:
                    self._open_reader()
        return self._zf

    def _open_reader(self) -> None:
        try:
            zf = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.where}: no such zip store") from None
        except zipfile.BadZipFile as err:
            raise UnsafeStoreError(f"{self.where}: not a readable zip file ({err})") from None
        problems = zip_problems(zf)
        if problems:
            zf.close()
            raise UnsafeStoreError(f"{self.where}: refusing a zip store whose entries lead out of the store: "
                                   + "; ".join(problems))
        self._entries = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._closer = weakref.finalize(self, os.close, self._fd)
        self._data_start: dict[str, int] = {}
        self._zf = zf

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
            self._closer()
            self._zf = None

    # -- reading --------------------------------------------------------------------------------------

    def _entry(self, name: str) -> zipfile.ZipInfo:
        check_name(self.where, name)
        self._reader()
        entry = self._entries.get(name)
        if entry is None:
            raise FileNotFoundError(f"{self.where}: no entry {name}")
        return entry

    def read_sync(self, name: str, limit: int) -> bytes:
        entry = self._entry(name)
        if entry.file_size > limit:
            raise too_large(self.where, name, limit)
        if entry.compress_type == zipfile.ZIP_STORED:
            return self._read_stored(entry)
        try:
            with self._lock, self._zf.open(entry) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise ReadLimitError(f"{self.where}: entry {name} is damaged ({err})") from None
        if len(data) > limit:
            raise too_large(self.where, name, limit)
        return data

    def _read_stored(self, entry: zipfile.ZipInfo) -> bytes:
        """An uncompressed entry's bytes, read in place without zipfile's CRC pass.

        The caller hashes what it reads (the manifest check), so the CRC would
        check the same bytes twice; ``pread`` needs no lock, so reads run in
        parallel.
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
        # In the event loop, as Zarr's ZipStore reads: entries are local and stored ones need no lock.
        return self.read_sync(name, limit)

    async def size(self, name: str) -> int:
        return self._entry(name).file_size

    async def listing(self) -> dict[str, int | None]:
        """Every entry with its size in the zip."""
        self._reader()
        return {name: info.compress_size for name, info in self._entries.items()}

    # -- writing --------------------------------------------------------------------------------------

    def exists_store(self) -> bool:
        return os.path.lexists(self.path)

    def staged(self) -> ZipBackend:
        part = type(self)(self.location.moved(str(self.path.with_name(part_name(self.path.name)))))
        part.path.parent.mkdir(parents=True, exist_ok=True)
        part.start_writing()
        return part

    def start_writing(self) -> None:
        """Create the zip file (entries stored uncompressed: chunks are compressed already)."""
        self._writer = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def write(self, name: str, data: bytes) -> None:
        check_name(self.where, name)
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.external_attr = 0o644 << 16
        self._writer.writestr(info, data, compress_type=zipfile.ZIP_STORED)

    def finish(self) -> None:
        self._writer.close()
        self._writer = None

    def publish(self, staged: StoreBackend, names: Sequence[str]) -> None:
        """Rename the staged zip over this one: one atomic step."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, self.path)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.close()
        self.path.unlink(missing_ok=True)
