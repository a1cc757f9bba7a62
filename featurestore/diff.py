"""Comparing two stores on what made them: versions, parameters, inputs, clips, features.

Everything compared is metadata (the build records, the sample table,
per-clip and per-feature attributes), so a diff of two remote stores
downloads no chunk.
Build host, user and times are shown but are not differences: two builds of
the same inputs with the same code are the same store. The annotation sheet
is compared by checksum, not path.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from .layout import CLIPS_GROUP, DATASET_GROUP
from .location import StoreLocation, locate
from .provenance import BuildRecord
from .safety import printable
from .store import FeatureStore, open_store

_SECTIONS = {
    "store": "store",
    "stage": "stage parameters and versions",
    "annotations": "annotation sheet",
    "quirk": "quirks and errata applied",
    "clip": "clips only in one store",
    "feature": "features only in one store",
    "cache_key": "per-clip stage cache keys",
    "source": "per-clip source fingerprints",
    "array": "arrays (content key, shape or dtype)",
    "sample": "sample table",
}


@dataclass(frozen=True)
class Difference:
    """One thing that differs.

    Attributes
    ----------
    section : str
        One of ``store``, ``stage``, ``annotations``, ``quirk``, ``clip``,
        ``feature``, ``cache_key``, ``source``, ``array``, ``sample``.
    key : str
        What differs within the section, e.g. ``align.params.size``,
        ``001_1_1/align`` or ``001_1_1/crops``.
    a, b
        The values in each store; None where one store lacks it.
    """

    section: str
    key: str
    a: Any
    b: Any


@dataclass(frozen=True)
class StoreDiff:
    """The differences between stores ``a`` and ``b``; empty when they agree."""

    a: str
    b: str
    context_a: dict[str, Any]
    context_b: dict[str, Any]
    differences: tuple[Difference, ...]

    @property
    def identical(self) -> bool:
        return not self.differences

    def in_section(self, section: str) -> list[Difference]:
        return [d for d in self.differences if d.section == section]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "identical": self.identical, "context_a": self.context_a,
                "context_b": self.context_b, "differences": [asdict(d) for d in self.differences]}

    def format(self, max_items: int = 8) -> str:
        """Human-readable: per section, grouped by stage, feature or column; every line escaped for the terminal."""
        lines = [f"a: {self.a}  ({_context_line(self.context_a)})",
                 f"b: {self.b}  ({_context_line(self.context_b)})"]
        if self.identical:
            lines.append("no differences in versions, parameters, inputs, clips or features")
            return "\n".join(printable(line) for line in lines)
        for section, title in _SECTIONS.items():
            diffs = self.in_section(section)
            if not diffs:
                continue
            lines.append(f"{title}:")
            if section in ("cache_key", "source", "array", "sample"):
                groups: dict[str, list[str]] = defaultdict(list)
                for d in diffs:
                    clip, _, what = d.key.partition("/")
                    groups[what or "clip"].append(clip)
                for what, clips in groups.items():
                    more = f", … {len(clips) - max_items} more" if len(clips) > max_items else ""
                    lines.append(f"  {what}: {len(clips)} clips differ ({', '.join(clips[:max_items])}{more})")
            elif section in ("clip", "feature", "quirk"):
                for d in diffs[:max_items * 4]:
                    lines.append(f"  only in {'a' if d.a is not None else 'b'}: {d.key}")
            else:
                lines += [f"  {d.key}: {_show(d.a)} -> {_show(d.b)}" for d in diffs]
        return "\n".join(printable(line) for line in lines)


def _show(value: Any) -> str:
    return "(absent)" if value is None else repr(value)


def _context_line(ctx: dict[str, Any]) -> str:
    build = ctx["build"]
    return (f"id {ctx['store_id']}, mepipe {ctx['mepipe_version']}, schema {ctx['schema_version']}, "
            f"dataset {ctx['dataset']}, built {build['finished']} by {build['user'] or '?'} on {build['host']}")


def _context(record: BuildRecord, store: FeatureStore) -> dict[str, Any]:
    return {"store_id": store.store_id, "state": store.attrs.get("state"), "mepipe_version": record.mepipe_version,
            "schema_version": record.schema_version, "dataset": record.dataset, "build": asdict(record.build)}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _compare(section: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    return [Difference(section, k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _nodes(store: FeatureStore) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Clip group attributes by sample, and per-feature facts by ``sample/feature`` (or ``dataset/name``).

    A feature's facts are its group's cache key and its array's shape and dtype.
    """
    clips: dict[str, dict[str, Any]] = {}
    arrays: dict[str, dict[str, Any]] = defaultdict(dict)
    for path, node in store.nodes():
        parts = path.split("/")
        if parts[0] == CLIPS_GROUP:
            rel = parts[1:]  # [sample], [sample, feature] or [sample, feature, array]
            if len(rel) == 1:
                clips[rel[0]] = dict(node.attrs)
                continue
        elif parts[0] == DATASET_GROUP:
            rel = parts  # [dataset], [dataset, feature] or [dataset, feature, array]
        else:
            continue
        owner = "/".join(rel[:2])
        if len(rel) == 2:
            arrays[owner]["cache_key"] = node.attrs.get("cache_key")
        elif len(rel) == 3 and rel[2] == rel[1]:  # the feature's own array, not its frame coordinate
            arrays[owner].update(shape=list(node.shape), dtype=str(node.dtype))
    return clips, dict(arrays)


def _per_clip(section: str, a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], field: str,
              common: list[str]) -> list[Difference]:
    out = []
    for clip in common:
        va, vb = a.get(clip, {}).get(field), b.get(clip, {}).get(field)
        if isinstance(va, dict) or isinstance(vb, dict):
            va, vb = va or {}, vb or {}
            out += [Difference(section, f"{clip}/{k}", va.get(k), vb.get(k))
                    for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
        elif va != vb:
            out.append(Difference(section, clip, va, vb))
    return out


def _samples(store) -> dict[str, dict[str, Any]]:
    df = store.samples.astype(object).where(store.samples.notna(), None)
    return {str(row["sample"]): {k: v for k, v in row.items() if k != "sample"} for row in df.to_dict("records")}


def diff_stores(a: str | os.PathLike | StoreLocation, b: str | os.PathLike | StoreLocation, *,
                expect_a: str | None = None, expect_b: str | None = None) -> StoreDiff:
    """Compare two complete stores (folders, zips or URLs) on their provenance and contents' keys.

    Parameters
    ----------
    a, b : str, PathLike or StoreLocation
        The stores.
    expect_a, expect_b : str, optional
        Their expected store ids; a store with another id is refused.

    Returns
    -------
    StoreDiff
        ``identical`` when versions, dataset, every stage's version and
        parameters, shared parameters, sheet checksum, quirks, clips,
        features, cache keys, source fingerprints, array keys/shapes/dtypes
        and the sample table all agree.
    """
    loc_a, loc_b = locate(a), locate(b)
    sa, sb = open_store(loc_a, expect_id=expect_a), open_store(loc_b, expect_id=expect_b)
    ra, rb = _record(sa), _record(sb)
    diffs: list[Difference] = []
    diffs += _compare("store", {"mepipe_version": ra.mepipe_version, "schema_version": ra.schema_version,
                                "dataset": ra.dataset},
                      {"mepipe_version": rb.mepipe_version, "schema_version": rb.schema_version, "dataset": rb.dataset})
    diffs += _compare("stage", _flatten({**ra.to_attrs()["stages"], "shared": ra.shared_params}, ""),
                      _flatten({**rb.to_attrs()["stages"], "shared": rb.shared_params}, ""))
    diffs += _compare("annotations", {"sha256": ra.annotations.sha256 if ra.annotations else None},
                      {"sha256": rb.annotations.sha256 if rb.annotations else None})
    qa, qb = set(ra.quirks), set(rb.quirks)
    diffs += [Difference("quirk", q, q if q in qa else None, q if q in qb else None) for q in sorted(qa ^ qb)]
    fa, fb = set(ra.features), set(rb.features)
    diffs += [Difference("feature", f, f if f in fa else None, f if f in fb else None) for f in sorted(fa ^ fb)]
    rows_a, rows_b = _samples(sa), _samples(sb)
    clips_a, arrays_a = _nodes(sa)
    clips_b, arrays_b = _nodes(sb)
    ids_a, ids_b = set(rows_a) | set(clips_a), set(rows_b) | set(clips_b)
    diffs += [Difference("clip", c, c if c in ids_a else None, c if c in ids_b else None)
              for c in sorted(ids_a ^ ids_b)]
    common = sorted(ids_a & ids_b)
    diffs += _per_clip("cache_key", clips_a, clips_b, "cache_keys", common)
    diffs += _per_clip("source", clips_a, clips_b, "source_fingerprint", common)
    shared = {k for k in set(arrays_a) | set(arrays_b) if k.split("/")[0] in common or k.startswith(DATASET_GROUP)}
    diffs += [Difference("array", k, arrays_a.get(k), arrays_b.get(k)) for k in sorted(shared)
              if arrays_a.get(k) != arrays_b.get(k)]
    for clip in common:
        row_a, row_b = rows_a.get(clip, {}), rows_b.get(clip, {})
        diffs += [Difference("sample", f"{clip}/{col}", row_a.get(col), row_b.get(col))
                  for col in sorted(set(row_a) | set(row_b)) if row_a.get(col) != row_b.get(col)]
    return StoreDiff(a=loc_a.where, b=loc_b.where, context_a=_context(ra, sa), context_b=_context(rb, sb),
                     differences=tuple(diffs))


def _record(store: FeatureStore) -> BuildRecord:
    if store.record is None:
        raise ValueError(f"{store.path} has no build record; rerun `mepipe build` on it")
    return store.record
