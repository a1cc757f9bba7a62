"""``mepipe info``: a description of a store (clips, features, provenance, sizes, failures).

Works on a store at any location; sizes are given where its back-end lists
files with their sizes (a folder, a zip, most object stores; not HTTP).
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from zarr.core.sync import sync

from .layout import CLIPS_GROUP, DATASET_GROUP
from .location import StoreLocation, locate
from .safety import printable
from .store import open_store


def _sizes(listing: dict[str, int | None]) -> tuple[int, dict[str, int]]:
    """Total stored bytes and bytes per feature (summed over clips; dataset-level features too)."""
    per_feature: dict[str, int] = defaultdict(int)
    for name, size in listing.items():
        rel = name.split("/")
        if len(rel) >= 4 and rel[0] == CLIPS_GROUP:
            per_feature[rel[2]] += size
        elif len(rel) >= 3 and rel[0] == DATASET_GROUP:
            per_feature[rel[1]] += size
    return sum(listing.values()), dict(per_feature)


def describe(path: str | os.PathLike | StoreLocation, *, expect_id: str | None = None) -> dict[str, Any]:
    """Everything ``info`` shows, as plain data.

    Parameters
    ----------
    path : str, PathLike or StoreLocation
        Folder, zip file or URL of a store (see :func:`.location.locate`).
    expect_id : str, optional
        Refuse a store whose id is not this (then incomplete stores are refused too).
    """
    loc = locate(path)
    store = open_store(loc, allow_incomplete=expect_id is None, expect_id=expect_id)
    samples = store.samples
    manifest = store.manifest
    record = store.record.to_attrs() if store.record is not None else None
    desc: dict[str, Any] = {
        "path": loc.where,
        "location": loc.kind,
        "store_id": store.store_id,
        "state": store.attrs.get("state"),
        "schema_version": store.schema_version,
        "unit": store.unit,
        "n_clips": int(len(samples)),
        "n_subjects": int(samples["subject"].nunique()) if "subject" in samples else 0,
        "status": samples["status"].value_counts().to_dict() if "status" in samples else {},
        "emotions": samples["emotion"].value_counts().to_dict() if "emotion" in samples else {},
        "features": store.features,
        "intervals": store.intervals["kind"].value_counts().to_dict() if store.unit == "video" else None,
        "manifest": {"n_files": len(manifest.files), "n_bytes": manifest.n_bytes, "created": manifest.created}
        if manifest else None,
        "failures": samples.loc[samples["status"] == "failed", ["sample", "error"]].to_dict("records")
        if "status" in samples else [],
    }
    if record is None:  # the first build has not finished: no provenance yet
        desc.update(mepipe_version=None, dataset=None, stages={}, shared_params={}, build=None, source_root=None,
                    annotations=None, quirks=[])
    else:
        desc.update({k: record[k] for k in ("mepipe_version", "dataset", "stages", "shared_params", "build",
                                            "source_root", "annotations", "quirks")})
    listing = sync(store.backend.listing())
    if listing is not None and None not in listing.values():
        desc["bytes_total"], desc["bytes_per_feature"] = _sizes(listing)
    return desc


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def format_description(d: dict[str, Any]) -> str:
    """A human-readable rendering of :func:`describe`, every line escaped for the terminal.

    Attributes, sample ids and errors come from whoever built the store, so
    control characters in them are printed as escapes (see
    :func:`.safety.printable`).
    """
    lines = [f"{d['path']}  ({d.get('location', 'folder')}; {d['state']}, schema {d['schema_version']}, "
             f"mepipe {d['mepipe_version']})",
             f"store id {d['store_id']}" if d.get("store_id")
             else "store id: none (an unfinished build, read unverified)",
             f"dataset {d['dataset']}: {d['n_clips']} {d.get('unit', 'clip')}s, {d['n_subjects']} subjects; "
             f"status {d['status']}",
             f"annotated intervals: {d['intervals']}" if d.get("intervals") is not None
             else f"emotions: {d['emotions']}"]
    if "bytes_total" in d:
        lines.append(f"size on disk: {_mb(d['bytes_total'])}")
    lines.append("features:")
    for f in d["features"]:
        size = d.get("bytes_per_feature", {}).get(f)
        lines.append(f"  {f:<20} {_mb(size) if size is not None else ''}")
    lines.append("stages (version: parameters):")
    for name, s in d["stages"].items():
        lines.append(f"  {name} v{s.get('version')}: {s.get('params')}")
    if d.get("shared_params"):
        lines.append(f"  shared: {d['shared_params']}")
    b = d["build"]
    if b is not None:
        lines.append(f"built by {b['user'] or '?'} on {b['host']}: {b['started']} to {b['finished']} "
                     f"({b['seconds']} s, {b['scheduler']})")
    if d.get("source_root"):
        lines.append(f"from {d['source_root']}")
    if d["annotations"] is not None:
        lines.append(f"annotations {d['annotations']['path']} (sha256 {d['annotations']['sha256']})")
    m = d.get("manifest")
    lines.append(f"manifest: {m['n_files']} files, {_mb(m['n_bytes'])} (written {m['created']})" if m
                 else "manifest: none (`mepipe store verify` needs one; a finished build writes it)")
    if d["quirks"]:
        lines.append(f"{len(d['quirks'])} quirks handled:")
        lines += [f"  {q}" for q in d["quirks"]]
    if d["failures"]:
        lines.append(f"{len(d['failures'])} failed clips:")
        lines += [f"  {f['error']}" for f in d["failures"]]
    return "\n".join(printable(line) for line in lines)
