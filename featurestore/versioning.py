"""Which stores this mepipe can read."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import DataError
from .schema import READER_MIN_VERSION, SCHEMA_VERSION


class IncompatibleStoreError(DataError, RuntimeError):
    """The store was written with a schema this mepipe does not read."""


def check_schema_readable(attrs: Mapping[str, Any], where: Any) -> int:
    """Return the store's schema version, or raise saying what to do about it.

    A newer schema names the mepipe release that reads it; an older one
    (built before the current layout) must be rebuilt.
    """
    version = attrs.get("schema_version")
    if version is None:
        raise IncompatibleStoreError(f"{where} is not a mepipe store (its root has no schema_version)")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise IncompatibleStoreError(
            f"{where}: schema_version {version!r} is not a non-negative integer; the root zarr.json is damaged "
            "or was not written by mepipe")
    if version > SCHEMA_VERSION:
        needs = attrs.get("reader_min_version") or READER_MIN_VERSION.get(version, "a newer release")
        raise IncompatibleStoreError(
            f"{where} uses store schema {version}; this mepipe reads schema {SCHEMA_VERSION}. "
            f"Upgrade to mepipe >= {needs} to read it")
    if version < SCHEMA_VERSION:
        raise IncompatibleStoreError(
            f"{where} uses store schema {version}, written by an older mepipe; this mepipe reads schema "
            f"{SCHEMA_VERSION}. Rebuild it with `mepipe build` into a new --store folder (or delete this one first)")
    return version
