"""The contract every storage back-end implements: a store's files by name, bounded and inside the store.

A back-end is one place a store can live (a folder, a zip file, an HTTP
server, an fsspec file system, a local read cache in front of a remote
one). The store code (:mod:`..integrity`, :mod:`..verify`, :mod:`..pack`,
:mod:`..info`, :mod:`..location`) asks it only for what this class
declares and never asks which kind it has, the way xarray's readers talk to
a ``BackendEntrypoint`` and fsspec's users to an ``AbstractFileSystem``
(``cat_file``, ``info``, ``exists``, ``find``). A new back-end is a
subclass and a :func:`~.registry.register_backend` call.

Reading (every back-end)
    :meth:`~StoreBackend.read` returns one whole file, never more than the
    caller's limit (the manifest's size, or what an array's shape allows);
    names are store-relative and checked, and nothing outside the store is
    read (a symlink out, ``/dev/zero``, a FIFO). The unit of reading is the
    file because the unit of checking is the file: a manifest hashes whole
    chunks, so a window of a frame-chunked array reads exactly its chunks,
    each one request or ``pread``, and nothing else (no listing, no re-open).
Writing (back-ends with ``writable``)
    A copy is written to :meth:`~StoreBackend.staged` (a temporary sibling
    of the destination), finished, verified by the caller, then
    :meth:`~StoreBackend.publish`-ed over the destination; until then
    whatever was there stays.

Errors: ``FileNotFoundError`` for an absent file, :class:`ReadLimitError`
for one larger than the limit, :class:`~..safety.UnsafeStoreError` for one
that is not a file of the store, :class:`ReadOnlyBackendError` for writing
where one cannot. Remote back-ends raise their transport's errors, which
:func:`.retry.read_retrying` retries or turns into one sentence.

References
----------
xarray, "How to add a new backend": https://docs.xarray.dev/en/stable/internals/how-to-add-new-backend.html
fsspec, ``AbstractFileSystem``: https://filesystem-spec.readthedocs.io/en/latest/api.html
"""
from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DataError, UsageError
from ..safety import UnsafeStoreError, name_problem, printable

if TYPE_CHECKING:
    from ..location import StoreLocation

PART_PREFIX = ".mepipe-part-"
"""Temporary copies are named ``.mepipe-part-<token>-<name>``, beside the destination."""

LAST_NAMES = ("zarr.json", "manifest.json")
"""Written last in every copy, in this order: the root metadata, then the manifest that makes it a store."""


class ReadLimitError(DataError, RuntimeError):
    """A file holds more bytes than its manifest entry, shape and data type, or the metadata limit allow."""


class ReadOnlyBackendError(UsageError, ValueError):
    """Writing was asked of a back-end that only reads (HTTP, a cache)."""


def too_large(where: str, name: str, limit: int) -> ReadLimitError:
    """The error for a file past its limit, naming the store and the file."""
    return ReadLimitError(f"{where}: {name} holds more than the {limit} bytes allowed for it; refusing to read "
                          "on (a damaged or hostile store)")


def check_name(where: str, name: str) -> None:
    """Refuse a store-relative name that could lead outside the store (see :func:`..safety.name_problem`)."""
    why = name_problem(name)
    if why:
        raise UnsafeStoreError(f"{where}: refusing to read {printable(repr(name))}: {why}")


def part_name(leaf: str) -> str:
    """A temporary name beside ``leaf`` that keeps its suffix (``.zip`` decides how a location is read)."""
    return f"{PART_PREFIX}{uuid.uuid4().hex[:12]}-{leaf}"


def publish_order(names: Sequence[str]) -> list[str]:
    """Store files in the order a copy is written: chunks first, the root ``zarr.json`` and the manifest last.

    A reader of a half-written copy finds no manifest, so no store, never a wrong one.
    """
    return [n for n in names if n not in LAST_NAMES] + [n for n in LAST_NAMES if n in names]


class StoreBackend(ABC):
    """One store at one location: its files by store-relative name (see the module docstring).

    Class attributes
    ----------------
    name : str
        The registry name (``folder``, ``zip``, ``http``, ...), shown by ``info``.
    remote : bool
        Reads may fail for a while and then succeed (networks): they are
        retried with back-off, given time-outs, and kept in the read cache.
    writable : bool
        The back-end implements the writing half of the contract.
    atomic_publish : bool
        :meth:`publish` swaps the new copy in by renames, so no second
        verification of the result is needed.

    Attributes
    ----------
    where : str
        The location for messages and records: a path, or a URL without
        user, password or query.
    location : StoreLocation
        What the back-end was opened from (to open the same store again).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    remote: ClassVar[bool] = False
    writable: ClassVar[bool] = False
    atomic_publish: ClassVar[bool] = False

    def __init__(self, location: StoreLocation):
        self.location = location
        self.where = location.where

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"

    # -- choosing and opening (xarray's BackendEntrypoint) --------------------------------------------

    @classmethod
    @abstractmethod
    def guess_can_open(cls, target: str) -> bool:
        """Whether this back-end reads the store at ``target`` (a path or URL, without credentials)."""

    @classmethod
    def open(cls, location: StoreLocation) -> StoreBackend:
        """The store at ``location``, for reading; ``FileNotFoundError`` (naming it) when nothing is there."""
        backend = cls(location)
        backend.check_present()
        return backend

    @classmethod
    def for_writing(cls, location: StoreLocation) -> StoreBackend:
        """A handle on ``location`` to write a store to; nothing need be there yet."""
        if not cls.writable:
            raise ReadOnlyBackendError(f"{location.where}: the {cls.name} back-end only reads; copy the store to "
                                       "a folder, a .zip, or a URL of a file system that can be written")
        return cls(location)

    def check_present(self) -> None:
        """Raise ``FileNotFoundError`` naming the location when no store is there (cheap; default: none)."""

    # -- reading --------------------------------------------------------------------------------------

    @abstractmethod
    async def read(self, name: str, limit: int) -> bytes:
        """The bytes of file ``name``, at most ``limit`` of them (else :class:`ReadLimitError`)."""

    @abstractmethod
    async def size(self, name: str) -> int:
        """Bytes of file ``name`` as stored; ``FileNotFoundError`` when it is absent."""

    async def exists(self, name: str) -> bool:
        """Whether file ``name`` is there."""
        try:
            await self.size(name)
        except FileNotFoundError:
            return False
        return True

    @abstractmethod
    async def listing(self) -> dict[str, int | None] | None:
        """Every file of the store with its stored size (None where unknown), or None when it cannot be listed."""

    def close(self) -> None:
        """Release open files or sessions (reads reopen them)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for data-loader workers: the location only; files and sessions reopen on first use."""
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])

    # -- writing (``writable`` back-ends) --------------------------------------------------------------

    def exists_store(self) -> bool:
        """Whether anything is at this location (a copy would replace it)."""
        raise self._read_only()

    def staged(self) -> StoreBackend:
        """An empty, writable copy beside this location under a temporary name (:data:`PART_PREFIX`)."""
        raise self._read_only()

    def write(self, name: str, data: bytes) -> None:
        """Write file ``name`` of a staged copy."""
        raise self._read_only()

    def finish(self) -> None:
        """Complete a staged copy after its last :meth:`write` (a zip writes its directory, an upload ends)."""
        raise self._read_only()

    def publish(self, staged: StoreBackend, names: Sequence[str]) -> None:
        """Put the verified ``staged`` copy (files ``names``, in :func:`publish_order`) in this location's place."""
        raise self._read_only()

    def discard(self) -> None:
        """Remove this copy, if anything of it is there (a staged copy that failed or was published by copying)."""
        raise self._read_only()

    def _read_only(self) -> ReadOnlyBackendError:
        return ReadOnlyBackendError(f"{self.where}: the {self.name} back-end only reads")
