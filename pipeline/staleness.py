"""Why a (clip, stage) task is stale: which input of its cache key differs from what the store recorded.

A key covers the stage's code version, its parameters (and the source
decoding's, for a stage that decodes), the digest of the clip's sources or
its sheet's ground truth where the stage reads them, and the keys of the
stages it reads. A key that differs says only *that* one of them changed;
this module compares each of them with what the store recorded (the build
record's parameters and versions, each feature's ``stage_version``, each
clip's source fingerprint and ground truth) and says *which*, so that
``mepipe build --dry-run`` can say "magnify.alphas [5.0, 8.0, 11.0] ->
[5.0, 6.0, ..., 14.0]" rather than "288 tasks would run".
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from mepipe.featurestore.cachekey import canonical
from mepipe.featurestore.provenance import BuildRecord, ProvenanceError
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .graph import Plan
from .stages import SOURCE, STAGES

TRUTH_ATTR = "truth"
"""Clip attribute holding the ground truth and fps the clip's stages were keyed with (:func:`truth_record`)."""

NEW_CLIP = "new clip"
NOT_STORED = "not in the store yet"
"""Reasons for a task whose outputs the store lacks: for a clip it has never held, or one it holds other features of
(a stage not built before, a build interrupted before it, or a clip that failed at it)."""


def truth_record(ctx: ClipContext) -> dict[str, Any]:
    """The ground truth (frame indices) and fps that enter the keys of stages reading the sheet, as stored."""
    onset, apex, offset = ctx.truth
    return {"onset": onset, "apex": apex, "offset": offset, "fps": ctx.fps}


def stale_reasons(writer: StoreWriter, plan: Plan, contexts: Iterable[ClipContext], params: Mapping[str, Any],
                  forced: Iterable[str] = ()) -> dict[tuple[str, str], list[str]]:
    """For every stale (clip, stage) task of ``plan``, why it runs, most direct cause first.

    The causes, in order: ``--force``; the outputs are missing (:data:`NEW_CLIP`,
    :data:`NOT_STORED`); the stage's own key inputs (code version, each changed
    parameter with its old and new value, the sources, the sheet's ground truth
    or fps); the stages it reads that rerun ("after align"). A key that differs
    for none of these reasons (a store written by another mepipe) says so.
    """
    forced = set(forced)
    record = _record(writer)
    stale = set(plan.stale)
    by_sample = {c.sample: c for c in contexts}
    out: dict[tuple[str, str], list[str]] = {}
    for sample, name in plan.stale:
        stage = STAGES[name]
        reasons = ["--force"] if name in forced else []
        stored = [writer.stored_key(sample, f) for f in stage.outputs]
        key = plan.keys[(sample, name)]
        if any(k is None for k in stored):
            reasons.append(NOT_STORED if writer.clip_attrs(sample) else NEW_CLIP)
        elif any(k != key for k in stored):
            reasons += _own_changes(writer, record, by_sample[sample], name, params, plan)
        if sample in plan.changed_content and stage.reads_source and not reasons:
            reasons.append("sources rewritten in place (their content digest changed)")
        upstream = [u for u in stage.reads if (sample, u) in stale]
        if upstream:
            reasons.append("after " + ", ".join(upstream))
        if not reasons:
            reasons.append("cache key differs from the stored one (written by another mepipe version?)")
        out[(sample, name)] = reasons
    return out


def _record(writer: StoreWriter) -> BuildRecord | None:
    """The store's build record (of its last complete build), or None for a new or unrecorded store."""
    if not (writer.path / "zarr.json").is_file():
        return None
    attrs = writer.root_attrs()
    try:
        return BuildRecord.from_attrs(attrs, str(writer.path)) if "build" in attrs else None
    except ProvenanceError:
        return None


def _own_changes(writer: StoreWriter, record: BuildRecord | None, ctx: ClipContext, name: str,
                 params: Mapping[str, Any], plan: Plan) -> list[str]:
    """What of the stage's own key inputs differs from the store's records for this clip."""
    stage = STAGES[name]
    changes = []
    version = writer.feature_attrs(ctx.sample, stage.outputs[0]).get("stage_version")
    if version is not None and str(version) != stage.version:
        changes.append(f"code version {version} -> {stage.version}")
    changed = []
    if record is not None and name in record.stages:
        changed += param_changes(name, record.stages[name].params, params[name])
    if stage.reads_source and record is not None and SOURCE in record.shared_params:
        changed += param_changes(SOURCE, record.shared_params[SOURCE], params[SOURCE])
    if changed:
        changes.append(("parameter " if len(changed) == 1 else "parameters ") + ", ".join(changed))
    if stage.reads_source:
        recorded = writer.clip_attrs(ctx.sample).get("source_fingerprint")
        if recorded is not None and recorded != plan.source_digests.get(ctx.sample):
            changes.append("sources changed (file names, sizes or modification times)")
    if stage.reads_truth:
        recorded = writer.clip_attrs(ctx.sample).get(TRUTH_ATTR)
        now = truth_record(ctx)
        if recorded is not None:
            changes += [f"sheet {k} {_text(recorded.get(k))} -> {_text(v)}" for k, v in now.items()
                        if recorded.get(k) != v]
    return changes


def param_changes(section: str, recorded: Mapping[str, Any], current: Any,
                  fields: Iterable[str] | None = None) -> list[str]:
    """``"section.path old -> new"`` for every parameter of the key that differs from the recorded one.

    Only parameters the key covers are compared (those tagged
    ``NOT_IN_KEY`` never make a task stale), and with ``fields`` only those
    under these top-level fields; one missing from the record (a parameter
    added since) counts as changed from "unset".
    """
    before = _leaves(recorded)
    after = _leaves(canonical(current, for_key=True))
    wanted = None if fields is None else set(fields)
    return [f"{section}.{path} {_text(before.get(path, _UNSET))} -> {_text(value)}"
            for path, value in after.items()
            if before.get(path, _UNSET) != value and (wanted is None or path.split(".", 1)[0] in wanted)]


_UNSET = "unset"


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to the non-mapping values of nested mappings."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _text(value: Any) -> str:
    """A value as JSON; a list of more than four as its first two, last and length."""
    if value is _UNSET:
        return value
    if isinstance(value, list) and len(value) > 4:
        return f"[{json.dumps(value[0])}, {json.dumps(value[1])}, ..., {json.dumps(value[-1])}] ({len(value)} values)"
    return json.dumps(value)
