"""An array's chunk grid held against the manifest: which files it is made of, and what they can stand for.

A Zarr array of shape ``S`` in chunks of ``C`` has ``prod(ceil(S / C))``
chunks, each one file named by the array's chunk key encoding. A chunk that
holds only the fill value is not written (Zarr's default, and mepipe's
writer's), and a reader sees fill values where a chunk is absent. So a
store whose metadata was enlarged (or whose manifest lost an entry) would
read as zeros, and a shape of 10^9 frames would be allocated before any
chunk is read. Two facts of the manifest prevent both:

- **Every grid position is accounted for.** A build records the chunks it
  left out because they held only the fill value (``empty_chunks`` in the
  manifest, :func:`empty_chunk_keys`); every position of every array must
  be a listed file or a recorded empty chunk (:func:`grid_problems`).
  Manifests written before this record are read leniently: an unlisted
  position reads as fill values only while no file is there
  (:meth:`~.integrity.VerifiedStore.read_bytes` asks the back-end), and
  only up to :data:`FILL_LIMIT` bytes.
- **A chunk cannot stand for more than its codecs can expand it to.** A
  listed chunk of ``n`` bytes decodes to at most :data:`MAX_EXPANSION`
  times ``n`` bytes under the codecs mepipe allows, so a chunk shape beyond
  that is refused before anything is allocated.

References
----------
Zarr v3 core specification, "Chunk grids" and "Chunk key encoding":
https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html
Zstandard format, RFC 8878, section 3.1.1.2 (blocks of at most 128 KiB; an
RLE block is a 3-byte header and 1 byte): https://www.rfc-editor.org/rfc/rfc8878
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

from .safety import chunk_raw_bytes

MAX_EXPANSION = 32768
"""Most bytes one stored byte decodes to under the allowed codecs: a Zstandard block of
128 KiB takes at least 4 bytes (RLE), deflate's limit is about 1032:1, and
``bytes``, ``transpose`` and ``crc32c`` do not expand."""

FILL_LIMIT = 1 << 30
"""Most bytes of fill values (absent chunks) one array may read as, whatever its manifest records."""

MAX_ABSENT = 1 << 16
"""Most absent chunks one array may have: positions are enumerated to check them, so a grid of 10^9
positions is refused by its count, before any is enumerated."""


def _room(files: Mapping[str, Any], empty: frozenset[str] | None, raw: int) -> int:
    """Most chunks an array may have: every file, every recorded empty chunk, and what the limits allow absent."""
    return len(files) + len(empty or ()) + min(FILL_LIMIT // max(raw, 1), MAX_ABSENT)


def arrays_in(node: str, doc: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(path, metadata)`` of the array a ``zarr.json`` describes and of the arrays in its consolidated metadata.

    Parameters
    ----------
    node : str
        The path of the node the document belongs to ("" for the root).
    doc : mapping
        The parsed document (already checked by :func:`.safety.check_metadata`).
    """
    if doc.get("node_type") == "array":
        yield node, doc
    consolidated = doc.get("consolidated_metadata")
    children = consolidated.get("metadata") if isinstance(consolidated, Mapping) else None
    for child, meta in (children.items() if isinstance(children, Mapping) else ()):
        if isinstance(meta, Mapping) and meta.get("node_type") == "array":
            yield (f"{node}/{child}" if node else child), meta


def _grid(meta: Mapping[str, Any]) -> tuple[list[int], list[int], list[int]] | None:
    """Shape, chunk shape and chunks per dimension; None when malformed. (Checked per array on every open,
    so plain ``dict`` and ``int`` type tests: parsed JSON holds nothing else.)"""
    shape = meta.get("shape")
    grid = meta.get("chunk_grid")
    config = grid.get("configuration") if type(grid) is dict else None
    chunks = config.get("chunk_shape") if type(config) is dict else None
    if type(shape) is not list or type(chunks) is not list or len(shape) != len(chunks):
        return None
    for s, c in zip(shape, chunks):
        if type(s) is not int or type(c) is not int or s < 0 or c < 1:
            return None
    return shape, chunks, [-(-s // c) for s, c in zip(shape, chunks)]


def grid_count(meta: Mapping[str, Any]) -> int | None:
    """Chunks in the array's regular grid; None when its shape or chunk shape is malformed."""
    grid = _grid(meta)
    return None if grid is None else math.prod(grid[2])


def chunk_keys(path: str, meta: Mapping[str, Any]) -> Iterator[str]:
    """The store keys of every chunk of an array, in C order (see the spec's chunk key encodings)."""
    grid = _grid(meta)
    if grid is not None:
        yield from _keys(path, meta, grid[2])


def _keys(path: str, meta: Mapping[str, Any], counts: list[int]) -> Iterator[str]:
    encoding = meta.get("chunk_key_encoding")
    encoding = encoding if type(encoding) is dict else {}
    config = encoding.get("configuration")
    v2 = encoding.get("name") == "v2"
    separator = (config.get("separator") if type(config) is dict else None) or ("." if v2 else "/")
    head = f"{path}/" if v2 else f"{path}/c{separator}"
    if not counts:  # a 0-d array: one chunk
        yield head + "0" if v2 else head[:-len(separator)]
        return
    ranges = [range(n) for n in counts] if any(n != 1 for n in counts) else [("0",)] * len(counts)
    for index in itertools.product(*ranges):
        yield head + separator.join(map(str, index))


def empty_chunk_keys(files: Mapping[str, Any], arrays: Iterator[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The chunk keys of ``arrays`` that are not among ``files``: chunks left out as all fill value, sorted.

    Raises
    ------
    ValueError
        An array declares more chunks than the files and :data:`FILL_LIMIT` could account for
        (enlarged metadata), so they are not enumerated.
    """
    out = []
    for path, meta in arrays:
        n, raw = grid_count(meta), chunk_raw_bytes(meta)
        if n is not None and raw is not None and n > _room(files, None, raw):
            raise ValueError(f"{path}: its shape {meta['shape']} makes {n} chunks, more than its files and the "
                             "limits on absent chunks could hold")
        out += [key for key in chunk_keys(path, meta) if key not in files]
    return sorted(out)


def grid_problems(path: str, meta: Mapping[str, Any], files: Mapping[str, Any], empty: frozenset[str] | None
                  ) -> list[str]:
    """Why the array at ``path`` cannot be what the manifest holds; empty when it can.

    Parameters
    ----------
    path : str
        The array's path in the store.
    meta : mapping
        Its metadata.
    files : mapping
        The manifest's entries (name -> ``{"size", "sha256"}``).
    empty : frozenset of str or None
        The manifest's recorded empty chunks; None for a manifest written
        before they were recorded (then unlisted chunks count as fill values).
    """
    grid = _grid(meta)
    raw = chunk_raw_bytes(meta)
    if grid is None or raw is None:
        return [f"{path}: no valid shape and chunk shape"]
    shape, chunks, counts = grid
    n = math.prod(counts)
    if n > _room(files, empty, raw):
        return [f"{path}: its shape {shape} in chunks of {chunks} makes {n} chunks, more than the manifest can "
                f"account for; the metadata was enlarged"]
    problems, unaccounted, fill = [], [], 0
    for key in _keys(path, meta, counts):
        entry = files.get(key)
        if entry is None:
            if empty is None or key in empty:
                fill += raw
            else:
                unaccounted.append(key)
            continue
        size = entry.get("size") if type(entry) is dict else None
        if type(size) is int and size >= 0 and raw > MAX_EXPANSION * size:
            problems.append(f"{path}: chunk {key} holds {size} bytes, which cannot decode to the {raw} bytes its "
                            f"chunk shape {chunks} declares; the metadata was enlarged")
    if unaccounted:
        problems.append(f"{path}: its shape {shape} has {len(unaccounted)} chunk(s) the manifest neither lists nor "
                        f"records as empty (e.g. {unaccounted[0]}); the metadata was enlarged or the manifest "
                        "lost entries")
    if fill > FILL_LIMIT:
        problems.append(f"{path}: its shape {shape} would read {fill} bytes of fill values from absent chunks, more "
                        f"than the {FILL_LIMIT} allowed; the metadata was enlarged")
    return problems
