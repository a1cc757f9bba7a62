"""A store folder on a local disk (a path, or a ``file://`` URL naming one)."""
from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

from ..safety import UnsafeStoreError, printable
from .base import StoreBackend, check_name, part_name, too_large
from .local import is_local, local_path


class FolderBackend(StoreBackend):
    """The files of a store folder, read as untrusted data.

    Refuses names that leave the folder, symlinks that resolve outside it
    and anything that is not a regular file (``/dev/zero``, a FIFO), and
    reads at most ``limit + 1`` bytes. Writable: a copy is written to a
    sibling folder and renamed into place (:meth:`publish`).
    """

    name = "folder"
    description = "a store folder on a local disk"
    writable = True
    atomic_publish = True

    def __init__(self, location):
        super().__init__(location)
        self.root = local_path(location.target)
        self._real_root = os.path.realpath(self.root)
        self._plain_dirs: set[str] = {""}

    @classmethod
    def guess_can_open(cls, target: str) -> bool:
        return is_local(target)

    def check_present(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.where}: no such store folder")

    # -- reading --------------------------------------------------------------------------------------

    def read_sync(self, name: str, limit: int) -> bytes:
        """The bytes of ``name``; see the class docstring for what is refused."""
        check_name(self.where, name)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        # O_NONBLOCK: opening a FIFO planted in the store must not hang; it is refused below.
        flags |= getattr(os, "O_NONBLOCK", 0)
        fd = self._open(name, flags)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeStoreError(f"{self.where}: refusing to read {name}: not a regular file (a device, FIFO "
                                       "or socket)")
            if info.st_size > limit:
                raise too_large(self.where, name, limit)
            data = f.read(limit + 1)
        if len(data) > limit:
            raise too_large(self.where, name, limit)
        return data

    def _open(self, name: str, flags: int) -> int:
        """A descriptor of ``name`` opened inside the store (symlinks inside it are followed)."""
        if self._plain_path(name):
            try:
                return os.open(os.path.join(self._real_root, name), flags | getattr(os, "O_NOFOLLOW", 0))
            except OSError as err:
                if err.errno != errno.ELOOP:
                    raise
        return os.open(self._contained(name), flags)

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

    async def size(self, name: str) -> int:
        check_name(self.where, name)
        info = os.stat(self._contained(name))
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeStoreError(f"{self.where}: {name} is not a regular file (a device, FIFO or socket)")
        return info.st_size

    async def listing(self) -> dict[str, int | None]:
        """Every file under the folder with its size (symlinks are listed, not followed)."""
        return await asyncio.to_thread(self._walk)

    def _walk(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for dirpath, _, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for f in files:
                out[(rel / f).as_posix()] = os.lstat(os.path.join(dirpath, f)).st_size
        return out

    # -- writing --------------------------------------------------------------------------------------

    def exists_store(self) -> bool:
        return os.path.lexists(self.root)

    def staged(self) -> FolderBackend:
        part = type(self)(self.location.moved(str(self.root.with_name(part_name(self.root.name)))))
        part.root.mkdir(parents=True)
        return part

    def write(self, name: str, data: bytes) -> None:
        check_name(self.where, name)
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def finish(self) -> None:
        """Nothing to complete: each file was written whole."""

    def publish(self, staged: StoreBackend, names: Sequence[str]) -> None:
        """Swap the staged folder in by renames: the old copy moved aside, the new one in, the old one removed.

        Between the two renames nothing is at the destination (a reader finds
        no store, never a wrong one); a kill there leaves the old copy beside
        it under ``.mepipe-old-*``.
        """
        final = self.root
        final.parent.mkdir(parents=True, exist_ok=True)
        if not final.exists():
            os.replace(staged.root, final)
            return
        old = final.with_name(f".mepipe-old-{uuid.uuid4().hex[:12]}-{final.name}")
        os.replace(final, old)
        os.replace(staged.root, final)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
