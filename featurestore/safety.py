"""Nothing in a store may run code when it is read: an allow-list for Zarr metadata.

Zarr picks a decoder for each array from the ``data_type`` and ``codecs`` named
in its metadata, and third-party packages can register decoders under any
name (a pickle codec, an object dtype). A store from another lab is data we do
not control, so every metadata document is checked against the short list of
types and codecs mepipe writes before Zarr sees it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SAFE_DATA_TYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "fixed_length_utf32",
})
"""Plain numeric and fixed-width string types: no object or variable-length arrays."""

SAFE_CODECS = frozenset({"bytes", "transpose", "zstd", "blosc", "gzip", "crc32c"})
"""Codecs that only move or (de)compress bytes."""

_SAFE_GRIDS = frozenset({"regular"})
_SAFE_KEY_ENCODINGS = frozenset({"default", "v2"})
V2_METADATA_KEYS = frozenset({".zarray", ".zgroup", ".zattrs", ".zmetadata"})
"""Zarr v2 metadata names; mepipe stores are v3 only, so these are never read."""


class UnsafeStoreError(RuntimeError):
    """A store's metadata names a data type or codec outside the allow-list."""


def _name(entry: Any) -> str:
    return entry if isinstance(entry, str) else str((entry or {}).get("name"))


def _array_problems(path: str, node: Mapping[str, Any]) -> list[str]:
    problems = []
    dtype = _name(node.get("data_type"))
    if dtype not in SAFE_DATA_TYPES:
        problems.append(f"{path}: data type {dtype!r}")
    for codec in node.get("codecs", []):
        if _name(codec) not in SAFE_CODECS:
            problems.append(f"{path}: codec {_name(codec)!r}")
    if _name(node.get("chunk_grid")) not in _SAFE_GRIDS:
        problems.append(f"{path}: chunk grid {_name(node.get('chunk_grid'))!r}")
    if _name(node.get("chunk_key_encoding", "default")) not in _SAFE_KEY_ENCODINGS:
        problems.append(f"{path}: chunk key encoding {_name(node.get('chunk_key_encoding'))!r}")
    if node.get("storage_transformers"):
        problems.append(f"{path}: storage transformers {node['storage_transformers']!r}")
    return problems


def unsafe_entries(doc: Mapping[str, Any], path: str = "") -> list[str]:
    """Everything in one ``zarr.json`` document outside the allow-list.

    Parameters
    ----------
    doc : mapping
        The parsed ``zarr.json`` of a group or an array.
    path : str
        The node's path inside the store ("" for the root), used in messages.

    Returns
    -------
    list of str
        One ``"<node>: <what>"`` line per problem; empty when the node and every
        node in its consolidated metadata are safe.
    """
    where = path or "/"
    if doc.get("zarr_format") != 3:
        return [f"{where}: zarr_format {doc.get('zarr_format')!r} (mepipe stores are Zarr v3)"]
    problems = _array_problems(where, doc) if doc.get("node_type") == "array" else []
    consolidated = doc.get("consolidated_metadata") or {}
    for child, node in (consolidated.get("metadata") or {}).items():
        child_path = f"{path}/{child}" if path else child
        if node.get("node_type") == "array":
            problems += _array_problems(child_path, node)
    return problems


def check_metadata(raw: bytes, key: str, where: str) -> None:
    """Raise :class:`UnsafeStoreError` unless the ``zarr.json`` at ``key`` is safe to open.

    Parameters
    ----------
    raw : bytes
        The document as stored.
    key : str
        Its key in the store, e.g. ``clips/001_1_1/crops/zarr.json``.
    where : str
        The store's location, named in the error.
    """
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise UnsafeStoreError(f"{where}: {key} is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise UnsafeStoreError(f"{where}: {key} is not a JSON object")
    problems = unsafe_entries(doc, key.rpartition("zarr.json")[0].rstrip("/"))
    if problems:
        raise UnsafeStoreError(
            f"{where}: refusing to open a store whose metadata could run code or is not mepipe's: "
            + "; ".join(problems) + f". mepipe reads only data types {sorted(SAFE_DATA_TYPES)} "
            f"and codecs {sorted(SAFE_CODECS)}")
