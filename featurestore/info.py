"""``mepipe info``: a description of a store (clips, features, parameters, sizes, failures)."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from .layout import CLIPS_GROUP
from .store import open_store


def _disk_sizes(path: Path) -> tuple[int, dict[str, int]]:
    """Total bytes on disk and bytes per feature (summed over clips)."""
    total, per_feature = 0, defaultdict(int)
    for dirpath, _, files in os.walk(path):
        size = sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        total += size
        rel = Path(dirpath).relative_to(path).parts
        if len(rel) >= 3 and rel[0] == CLIPS_GROUP:
            per_feature[rel[2]] += size
    return total, dict(per_feature)


def describe(path: str) -> dict[str, Any]:
    """Everything ``info`` shows, as plain data."""
    store = open_store(path, allow_incomplete=True)
    samples = store.samples
    desc: dict[str, Any] = {
        "path": path,
        "state": store.attrs.get("state"),
        "schema_version": store.schema_version,
        "mepipe_version": store.attrs.get("mepipe_version"),
        "dataset": store.attrs.get("dataset"),
        "n_clips": int(len(samples)),
        "n_subjects": int(samples["subject"].nunique()) if "subject" in samples else 0,
        "status": samples["status"].value_counts().to_dict() if "status" in samples else {},
        "emotions": samples["emotion"].value_counts().to_dict() if "emotion" in samples else {},
        "features": store.features,
        "stages": store.attrs.get("stages", {}),
        "build": store.attrs.get("build", {}),
        "annotations": store.attrs.get("annotations"),
        "quirks": store.attrs.get("quirks", []),
        "failures": samples.loc[samples["status"] == "failed", ["sample", "error"]].to_dict("records")
        if "status" in samples else [],
    }
    if Path(path).is_dir():
        desc["bytes_total"], desc["bytes_per_feature"] = _disk_sizes(Path(path))
    return desc


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def format_description(d: dict[str, Any]) -> str:
    """A human-readable rendering of :func:`describe`."""
    lines = [f"{d['path']}  ({d['state']}, schema {d['schema_version']}, mepipe {d['mepipe_version']})",
             f"dataset {d['dataset']}: {d['n_clips']} clips, {d['n_subjects']} subjects; status {d['status']}",
             f"emotions: {d['emotions']}"]
    if "bytes_total" in d:
        lines.append(f"size on disk: {_mb(d['bytes_total'])}")
    lines.append("features:")
    for f in d["features"]:
        size = d.get("bytes_per_feature", {}).get(f)
        lines.append(f"  {f:<20} {_mb(size) if size is not None else ''}")
    lines.append("stages (version: parameters):")
    for name, s in d["stages"].items():
        lines.append(f"  {name} v{s['version']}: {s['params']}")
    b = d["build"]
    if b:
        lines.append(f"built {b.get('finished')} on {b.get('host')} in {b.get('seconds')} s ({b.get('scheduler')})")
    if d["quirks"]:
        lines.append(f"{len(d['quirks'])} quirks handled:")
        lines += [f"  {q}" for q in d["quirks"]]
    if d["failures"]:
        lines.append(f"{len(d['failures'])} failed clips:")
        lines += [f"  {f['error']}" for f in d["failures"]]
    return "\n".join(lines)
