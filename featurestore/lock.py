"""One build per store at a time: an advisory lock that dies with its process."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .errors import DataError


class StoreLockedError(DataError, RuntimeError):
    """Another build holds the store."""


class BuildLock:
    """Exclusive ``flock`` on ``<store>/.mepipe/lock`` for the life of a build.

    The kernel releases the lock when the holder dies (even by SIGKILL), so a
    killed build never leaves a stale lock; the file's content only says who
    held it last, for the error message.
    """

    def __init__(self, store_path: str | os.PathLike):
        self.path = Path(store_path) / ".mepipe" / "lock"
        self._fd: int | None = None

    def acquire(self) -> "BuildLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace")
            os.close(fd)
            try:
                info = json.loads(holder)
                who = f"pid {info['pid']} on {info['host']} since {info['since']}"
            except (ValueError, KeyError):
                who = "another process"
            raise StoreLockedError(
                f"store {self.path.parent.parent} is being built by {who}; wait for that build to end "
                f"or stop it, then rerun (a killed build releases the lock by itself)") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "BuildLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
