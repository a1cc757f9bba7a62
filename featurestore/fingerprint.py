"""Fingerprints of source files: cheap (name, size, mtime) digests and content hashes.

``stat`` digests are what every build compares (cheap, but blind to a file
rewritten in place with its size and mtime restored); ``content`` digests
hash the bytes (``mepipe build --fingerprint content``). The stage that
decodes a clip's sources hashes the bytes it decoded with :class:`ContentDigest`,
and the planner hashes the files on disk with :func:`content_digest`: the two
agree exactly when the sources are byte for byte those the stored features
were computed from.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

FINGERPRINT_MODES = ("stat", "content")
"""How a build decides that a clip's sources are unchanged (``--fingerprint``)."""


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


class ContentDigest:
    """A digest of a clip's source files, fed one file at a time in clip order.

    Each file contributes its name and the sha256 of its bytes, so renaming,
    reordering or changing any byte changes the digest.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, path: str | os.PathLike, data: bytes) -> None:
        self._h.update(f"{Path(path).name}\0{hashlib.sha256(data).hexdigest()}\n".encode())

    def update_file(self, path: str | os.PathLike) -> None:
        """Add a file too large to hold in memory (a video) by streaming it."""
        self._h.update(f"{Path(path).name}\0{file_sha256(path)}\n".encode())

    def update_missing(self, path: str | os.PathLike) -> None:
        self._h.update(f"{Path(path).name}\0missing\n".encode())

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:32]


def content_digest(paths: Iterable[str | os.PathLike]) -> str:
    """The :class:`ContentDigest` of files on disk, in the given order; a missing file counts as such."""
    digest = ContentDigest()
    for p in paths:
        try:
            digest.update_file(p)
        except FileNotFoundError:
            digest.update_missing(p)
    return digest.hexdigest()
