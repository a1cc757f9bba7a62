"""Running a dataset-scope stage: once over every clip whose per-clip inputs this build holds.

The stage (e.g. :mod:`.stages.appearance_mask`) reads the outputs of the one
per-clip stage it declares; it runs over the clips whose outputs of that
stage carry this build's keys, and its key chains theirs, so a clip added,
removed or rebuilt upstream rebuilds it.
"""
from __future__ import annotations

from collections.abc import Mapping

from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.writer import StoreWriter

from .stages.registry import ClipInputs, Stage


def run_dataset_stage(writer: StoreWriter, stage: Stage, samples: list[str], keys: Mapping[tuple[str, str], str],
                      params: Mapping[str, object]) -> str | None:
    """Write a dataset stage's outputs unless they are fresh; returns the cache key used (None: no clip to run on).

    ``keys`` are the build's per-clip keys by (sample, stage) and ``params``
    every stage's parameters.
    """
    ids = [s for s in samples
           if all(writer.stored_key(s, f.name) == keys.get((s, f.stage)) for f in stage.inputs)]
    if not ids:
        return None
    own, read = stage.kernel_params(params)
    after = stage.reads[0]
    key = stage_key(stage.name, stage.version, own, {s: keys[(s, after)] for s in ids})
    per_clip = [f.name for f in stage.writes if f.scope == "clip"]
    fresh = all(writer.dataset_attrs(f.name).get("cache_key") == key for f in stage.writes if f.scope == "dataset") \
        and all(writer.stored_key(s, f) == key for s in ids for f in per_clip)
    if fresh:
        return key
    out = stage.kernel(ClipInputs(stage.name, ids, stage.inputs, writer.read_feature), own, read)
    for sample, arrays in out.per_clip:
        for name in per_clip:
            writer.write_feature(sample, name, arrays[name], key)
    for name, array in out.dataset.items():
        writer.write_dataset_feature(name, array, key, out.attrs)
    return key
