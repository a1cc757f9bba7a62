"""A store from another lab is data, never code, paths or terminal commands.

Zarr picks a decoder for each array from the ``data_type`` and ``codecs`` named
in its metadata, and third-party packages can register decoders under any
name (a pickle codec, an object dtype). A store is data we do not control, so
every metadata document is checked against the short list of types and codecs
mepipe writes before Zarr sees it. Likewise file names read from a store (its
manifest, zip entries) must name files inside it (:func:`name_problem`), no
read may be larger than the shape and data type declare (:func:`max_chunk_bytes`,
:data:`METADATA_LIMIT`), and text from a store is escaped before it reaches a
terminal (:func:`printable`).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import DataError

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

METADATA_LIMIT = 64 * 2**20
"""Largest ``zarr.json`` or ``manifest.json`` read, in bytes. The root document
holds the consolidated metadata of every node: about 1 KB per array, so this
leaves room for some 60 000 arrays while a hostile file cannot fill memory."""

_ITEM_BYTES = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2, "int32": 4, "uint32": 4,
               "float32": 4, "int64": 8, "uint64": 8, "float64": 8}
_CODEC_SLACK = 4096
"""Bytes a chunk may exceed its raw size by: the worst-case expansion of
incompressible data under zstd, blosc or gzip is under 1/128 of the input
plus headers, and crc32c adds 4."""


class UnsafeStoreError(DataError, RuntimeError):
    """A store's metadata names a data type or codec outside the allow-list, or a file outside the store."""


def _name(entry: Any) -> str:
    if isinstance(entry, str):
        return entry
    return str(entry.get("name")) if isinstance(entry, Mapping) else repr(entry)


def _array_problems(path: str, node: Mapping[str, Any]) -> list[str]:
    problems = []
    dtype = _name(node.get("data_type"))
    if dtype not in SAFE_DATA_TYPES:
        problems.append(f"{path}: data type {dtype!r}")
    codecs = node.get("codecs", [])
    for codec in codecs if isinstance(codecs, list) else [codecs]:
        if _name(codec) not in SAFE_CODECS:
            problems.append(f"{path}: codec {_name(codec)!r}")
    if _name(node.get("chunk_grid")) not in _SAFE_GRIDS:
        problems.append(f"{path}: chunk grid {_name(node.get('chunk_grid'))!r}")
    elif dtype in SAFE_DATA_TYPES and max_chunk_bytes(node) is None:
        problems.append(f"{path}: no chunk shape and item size to bound a chunk's bytes")
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
    consolidated = doc.get("consolidated_metadata")
    nodes: Any = {}
    if consolidated is not None:
        nodes = consolidated.get("metadata") if isinstance(consolidated, Mapping) else None
        if not isinstance(nodes, Mapping):
            return [*problems, f"{where}: consolidated metadata is not a JSON object"]
    for child, node in nodes.items():
        child_path = f"{path}/{child}" if path else child
        if name_problem(child):
            problems.append(f"{printable(repr(child_path))}: {name_problem(child)}")
        elif not isinstance(node, Mapping):
            problems.append(f"{child_path}: not a JSON object")
        elif node.get("node_type") == "array":
            problems += _array_problems(child_path, node)
    return problems


def read_json(raw: bytes, where: str, name: str, error: type[Exception]) -> Any:
    """A JSON document read from a store, or ``error`` naming it when it is too large or cannot be parsed.

    Parameters
    ----------
    raw : bytes
        The document as stored.
    where, name : str
        The store's location and the document's name, for the message.
    error : exception class
        What to raise (:class:`UnsafeStoreError` for metadata, ``ManifestError`` for a manifest).
    """
    if len(raw) > METADATA_LIMIT:
        raise error(f"{where}: {name} is larger than the {METADATA_LIMIT} bytes allowed for metadata")
    try:
        return json.loads(raw)
    except ValueError as err:
        raise error(f"{where}: {name} is not valid JSON ({err})") from None
    except RecursionError:
        raise error(f"{where}: {name} nests deeper than JSON can be read (a damaged or hostile file); refusing it"
                    ) from None


def check_metadata(raw: bytes, key: str, where: str) -> dict[str, Any]:
    """Raise :class:`UnsafeStoreError` unless the ``zarr.json`` at ``key`` is safe to open; return it parsed.

    Parameters
    ----------
    raw : bytes
        The document as stored.
    key : str
        Its key in the store, e.g. ``clips/001_1_1/crops/zarr.json``.
    where : str
        The store's location, named in the error.
    """
    doc = read_json(raw, where, key, UnsafeStoreError)
    if not isinstance(doc, dict):
        raise UnsafeStoreError(f"{where}: {key} is not a JSON object")
    problems = unsafe_entries(doc, key.rpartition("zarr.json")[0].rstrip("/"))
    if problems:
        raise UnsafeStoreError(
            f"{where}: refusing to open a store whose metadata could run code or is not mepipe's: "
            + "; ".join(problems) + f". mepipe reads only data types {sorted(SAFE_DATA_TYPES)} "
            f"and codecs {sorted(SAFE_CODECS)}")
    return doc


def chunk_raw_bytes(node: Mapping[str, Any]) -> int | None:
    """Bytes of one decoded chunk of an array (``prod(chunk_shape) * itemsize``), from its metadata.

    Parameters
    ----------
    node : mapping
        The array's Zarr v3 metadata (its ``zarr.json``, or its entry in the
        consolidated metadata).

    Returns
    -------
    int or None
        None when the metadata declares no regular chunk shape or data type
        mepipe knows (such a store is refused by :func:`unsafe_entries` anyway).
    """
    grid = node.get("chunk_grid")
    config = grid.get("configuration") if type(grid) is dict else None
    shape = config.get("chunk_shape") if type(config) is dict else None
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        return None
    dtype = node.get("data_type")
    if type(dtype) is dict and dtype.get("name") == "fixed_length_utf32":
        config = dtype.get("configuration")
        item = config.get("length_bytes") if type(config) is dict else None
    else:
        item = _ITEM_BYTES.get(_name(dtype))
    if type(item) is not int or item < 0:
        return None
    return math.prod(shape) * item


def max_chunk_bytes(node: Mapping[str, Any]) -> int | None:
    """The most bytes one stored chunk of an array may hold: its :func:`chunk_raw_bytes` plus codec slack."""
    raw = chunk_raw_bytes(node)
    return None if raw is None else raw + raw // 128 + _CODEC_SLACK


def name_problem(name: str) -> str | None:
    """Why a file name read from a store could name something outside it, or None when it is safe.

    Names are store-relative POSIX paths (``clips/001_1_1/crops/c/0/0/0/0``):
    no absolute names, drive letters, backslashes, NUL, empty, ``.`` or ``..``
    components. Other control characters are allowed (sample ids come from
    annotation sheets) and escaped wherever a name is printed.
    """
    if not isinstance(name, str) or not name:
        return "empty name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute name"
    if "\\" in name:
        return "backslash in name"
    if "\0" in name:
        return "NUL in name"
    parts = name.split("/")
    if ".." in parts:
        return "'..' leads out of the store"
    if "" in parts or "." in parts:
        return "empty or '.' path component"
    return None


_SUSPECT = ("\0/", "\\", "/.", "\0.", "//", "\0\0", "/\0", ":")
"""Substrings of NUL-joined names without which no name can be refused (a superset: ``.hidden`` matches)."""


def unsafe_names(names) -> list[str]:
    """One ``"<name>: <why>"`` line (name escaped) per name that :func:`name_problem` refuses.

    A manifest lists up to some 100 000 names and is checked on every open,
    so the names are first scanned joined by NUL for anything suspect, at
    C speed; only then is each name checked.
    """
    names = list(names)
    if all(isinstance(n, str) for n in names):
        joined = "\0" + "\0".join(names) + "\0"
        if joined.count("\0") == len(names) + 1 and not any(s in joined for s in _SUSPECT):
            return []
    return [f"{printable(repr(n))}: {why}" for n in names if (why := name_problem(n))]


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def printable(text: Any) -> str:
    """``str(text)`` with control, bidi and line-separator characters written as escapes.

    Store attributes, sample ids and file names come from whoever built the
    store; an ESC sequence in them could retitle or rewrite the terminal, so
    everything printed from a store passes through here. Ordinary non-ASCII
    text (accents, CJK) is kept.
    """
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))

