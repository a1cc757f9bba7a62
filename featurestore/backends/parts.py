"""Staged copies a killed pack or push left behind, told from copies in progress by a lock that dies with its process.

A local staged copy (the ``.mepipe-part-*`` zip or folder beside the
destination, :func:`.base.part_name`) is held under an exclusive ``flock``
(:func:`hold`) from its creation until it is published or discarded; the
kernel drops the lock when its process ends, even by SIGKILL, as it does
the build lock. The next copy to the same destination removes every part of
it whose lock it can take (:func:`sweep`) and leaves the ones another
process still writes. Back-ends that cannot lock (object stores) leave
their parts alone: an upload in progress looks the same as an abandoned one.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from .base import PART_PREFIX


def hold(path: Path) -> int:
    """Lock the staged copy at ``path`` (a file or a folder); returns the descriptor, whose closing releases it."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def release(fd: int | None) -> None:
    """Drop a lock :func:`hold` took (None: nothing held)."""
    if fd is not None:
        os.close(fd)


def sweep(final: Path) -> list[str]:
    """Remove the staged copies of ``final`` that no live process holds; returns their names.

    Only siblings named as :func:`.base.part_name` names a copy of ``final``
    are considered, and never a symlink.
    """
    pattern = re.compile(re.escape(PART_PREFIX) + r"[0-9a-f]{12}-" + re.escape(final.name))
    if not final.parent.is_dir():
        return []
    removed = []
    for part in sorted(final.parent.iterdir()):
        if not pattern.fullmatch(part.name) or part.is_symlink():
            continue
        try:
            fd = os.open(part, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            shutil.rmtree(part) if part.is_dir() else part.unlink()
            removed.append(part.name)
        finally:
            os.close(fd)
    return removed
