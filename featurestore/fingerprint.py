"""Fingerprints of source files: cheap (name, size, mtime) digests and content hashes."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def stat_digest(paths: Iterable[str | os.PathLike]) -> str:
    """Digest of file names, sizes and modification times, in the given order.

    Cheap enough for every frame of every clip on each build; a touched or
    replaced frame changes it. Missing files are part of the digest too.
    """
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{p.name}\0missing\n".encode())
    return h.hexdigest()[:32]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash of one file (for annotation sheets and other small inputs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
