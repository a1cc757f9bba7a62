"""``mepipe info``: a description of a store (clips, features, provenance, sizes, failures).

Works on a store at any location; sizes are given where its back-end lists
files with their sizes (a folder, a zip, most object stores; not HTTP).
``info --clips`` lists every clip id with its status, ``info --features``
every feature with its dims, shapes, dtype, units and meaning, read from
the store's own metadata.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
from zarr.core.sync import sync

from .features import FEATURES
from .layout import CLIPS_GROUP, DATASET_GROUP
from .location import StoreLocation, locate
from .safety import printable
from .store import FeatureStore, open_store
from .text_table import text_table


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
    loc, store = _open(path, expect_id)
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
        "dataset_features": store.dataset_features,
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
    for title, names in (("features (per clip):", d["features"]),
                         ("dataset-level features (one array for the store):", d.get("dataset_features", []))):
        if names:
            lines.append(title)
        for f in names:
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
    lines.append("clip ids and status: --clips; each feature's dims, shape, dtype, units and meaning: --features")
    return "\n".join(printable(line) for line in lines)


def _open(path: str | os.PathLike | StoreLocation, expect_id: str | None) -> tuple[StoreLocation, FeatureStore]:
    """The store's location and the store, opened as ``info`` reads it (an unfinished one too, unless pinned)."""
    loc = locate(path)
    return loc, open_store(loc, allow_incomplete=expect_id is None, expect_id=expect_id)


def list_contents(path: str | os.PathLike | StoreLocation, *, clips: bool = False, features: bool = False,
                  expect_id: str | None = None) -> dict[str, Any]:
    """What ``info --clips`` and ``info --features`` show, as plain data.

    Returns
    -------
    dict
        ``path``, ``store_id``, and ``clips`` (:func:`clip_rows`) and/or
        ``features`` (:func:`feature_rows`), as asked.
    """
    loc, store = _open(path, expect_id)
    out: dict[str, Any] = {"path": loc.where, "store_id": store.store_id}
    if clips:
        out["clips"] = clip_rows(store)
    if features:
        out["features"] = feature_rows(store)
    return out


def clip_rows(store: FeatureStore) -> list[dict[str, Any]]:
    """One row per clip of the sample table, failed ones included.

    Each row has ``sample`` (the id ``read`` takes), ``dataset``,
    ``subject``, ``n_frames`` (None where unknown), ``status`` (``ok``,
    ``flagged`` or ``failed``) and ``reason``: the error of a failed clip,
    the annotation quirks of a flagged one, empty otherwise.
    """
    rows = []
    for row in store.samples.to_dict("records"):
        status = _text(row.get("status"))
        reason = {"failed": row.get("error"), "flagged": row.get("flags")}.get(status)
        n_frames = row.get("n_frames")
        rows.append({"sample": _text(row["sample"]), "dataset": _text(row.get("dataset")),
                     "subject": _text(row.get("subject")),
                     "n_frames": None if n_frames is None or pd.isna(n_frames) else int(n_frames),
                     "status": status, "reason": _text(reason)})
    return rows


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def feature_rows(store: FeatureStore) -> list[dict[str, Any]]:
    """One row per stored feature, read from the arrays' own Zarr metadata (no chunk is read).

    It therefore describes a store built elsewhere, or holding a plug-in's
    features, as well as one of this mepipe's feature table. Clip-level
    features come first, in the feature table's order (others by name),
    then the dataset-level ones.

    Returns
    -------
    list of dict
        ``name``; ``scope`` (``clip`` or ``dataset``); ``dims``; ``n_clips``
        (clips holding it; None for a dataset-level feature); ``shape_min``
        and ``shape_max`` (per dim, over those clips); ``shape`` (the same
        in words: ``20–24 × 2 × 112 × 112``, a dim that varies given as its
        range); ``dtype``; and the ``units``, ``long_name`` (its one-line
        meaning) and ``comment`` attributes.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for key, node in store.nodes():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == CLIPS_GROUP and parts[2] == parts[3]:
            scope, name = "clip", parts[2]
        elif len(parts) == 3 and parts[0] == DATASET_GROUP and parts[1] == parts[2]:
            scope, name = "dataset", parts[1]
        else:
            continue
        entry = found.setdefault((scope, name), {"shapes": [], "node": node})
        entry["shapes"].append(tuple(node.shape))
    order = {name: i for i, name in enumerate(FEATURES)}
    rows = []
    for (scope, name), entry in sorted(found.items(), key=lambda item: (item[0][0] != "clip",
                                                                         order.get(item[0][1], len(order)),
                                                                         item[0][1])):
        node, shapes = entry["node"], np.array(entry["shapes"], dtype=np.int64).reshape(len(entry["shapes"]), -1)
        low, high = shapes.min(axis=0).tolist(), shapes.max(axis=0).tolist()
        attrs = dict(node.attrs)
        rows.append({
            "name": name, "scope": scope, "dims": [str(d) for d in (node.metadata.dimension_names or ())],
            "n_clips": len(shapes) if scope == "clip" else None, "shape_min": low, "shape_max": high,
            "shape": " × ".join(str(a) if a == b else f"{a}–{b}" for a, b in zip(low, high)) or "scalar",
            "dtype": str(node.dtype), "units": _text(attrs.get("units")), "long_name": _text(attrs.get("long_name")),
            "comment": _text(attrs.get("comment")),
        })
    return rows


def format_contents(d: dict[str, Any]) -> str:
    """:func:`list_contents` as text tables, every cell escaped for the terminal."""
    lines = [f"{d['path']}  (store id {d['store_id'] or 'none'})"]
    if "clips" in d:
        clips = d["clips"]
        lines.append(f"{len(clips)} clips:")
        lines += text_table([["sample", "dataset", "subject", "frames", "status", "reason"]]
                            + [[c["sample"], c["dataset"], c["subject"], "" if c["n_frames"] is None
                                else str(c["n_frames"]), c["status"], c["reason"]] for c in clips])
    if "features" in d:
        features = d["features"]
        lines.append(f"{len(features)} features (shape per clip: a range where it varies between clips):")
        lines += text_table([["feature", "scope", "clips", "dims", "shape", "dtype", "units", "meaning"]]
                            + [[f["name"], f["scope"], "—" if f["n_clips"] is None else str(f["n_clips"]),
                                ", ".join(f["dims"]) or "—", f["shape"], f["dtype"], f["units"], f["long_name"]]
                               for f in features])
    return "\n".join(printable(line) for line in lines)


def info_text(path: str | os.PathLike | StoreLocation, *, clips: bool = False, features: bool = False,
              as_json: bool = False, expect_id: str | None = None) -> str:
    """What ``mepipe info`` prints: the description, or with ``clips``/``features`` those lists; text or JSON."""
    if clips or features:
        data = list_contents(path, clips=clips, features=features, expect_id=expect_id)
        return json.dumps(data, indent=2, default=str) if as_json else format_contents(data)
    data = describe(path, expect_id=expect_id)
    return json.dumps(data, indent=2, default=str) if as_json else format_description(data)
