"""One stage for one clip (or one batch of clips): the unit of work the DAG schedules.

A task reads its inputs from the store, runs the stage's kernel and writes
the outputs atomically with their cache key. It never raises for a bad clip:
it returns a status record, so one clip's failure never stops the others.
A batch task (stages with ``kernel_many``, e.g. flows on a GPU) does the same
for several clips with one kernel call and returns one record per clip; a
chain task runs several stages of one clip that read its source frames
(landmarks, align) with a single decode, and also returns one record per stage.

Tasks receive their :class:`~.stages.registry.Stage` itself, not its name:
a worker process that unpickles it imports the stage's module, so a stage
registered outside mepipe runs there as a built-in one does. A kernel is
shown only the parameters its stage declares (:meth:`Stage.run`).
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mepipe.featurestore.cachekey import canonical
from mepipe.featurestore.errors import out_of_space
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .errors import ClipError
from .stages import SOURCE, SOURCE_DIGEST_ATTR, SOURCE_FRAMES, Stage, StageOutput
from .stages.frames import DecodedClip, decode_clip


def limit_threads() -> None:
    """One thread per task: the scheduler parallelises across clips."""
    import cv2

    cv2.setNumThreads(1)


def run_stage_task(store_path: str, stage: Stage, ctx: ClipContext, params: Mapping[str, Any], key: str,
                   *upstream: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run one stage on one clip; returns ``{"sample", "stage", "status", ...}``."""
    return run_stage_chain(store_path, [stage], ctx, params, [key], *upstream)[0]


def run_stage_chain(store_path: str, stages: Sequence[Stage], ctx: ClipContext, params: Mapping[str, Any],
                    keys: Sequence[str], *upstream: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Run several stages of one clip in order, decoding its frames at most once; one record per stage.

    Each stage reads its inputs from the store (those an earlier stage of the
    chain has just written too) and writes its outputs with its own cache
    key, exactly as separate tasks would; only the decoded frames pass in
    memory, to every stage that reads sources. A stage whose upstream failed,
    here or in an earlier task, is skipped. The record of the stage that
    decoded carries ``decode_seconds`` (wall) and ``decode_cpu_seconds``;
    ``seconds`` and ``cpu_seconds`` exclude them. CPU seconds are the worker
    process's, which runs one task at a time: on a loaded machine they stay
    near what the work costs while wall seconds grow with the load.
    """
    records: list[dict[str, Any]] = []
    done: list[Mapping[str, Any]] = list(upstream)
    writer = None
    recorded = recorded_params(params)
    decoded: DecodedClip | Exception | None = None
    for stage, key in zip(stages, keys):
        record: dict[str, Any] = {"sample": ctx.sample, "stage": stage.name, "key": key}
        blocked = blocked_by(ctx.sample, [r for r in flat(done) if r.get("stage") in stage.reads])
        if blocked:
            record = {**record, "status": "skipped", "error": f"needs {blocked}, which did not complete"}
            records.append(record)
            done.append(record)
            continue
        limit_threads()
        writer = writer or StoreWriter(store_path)
        start, cpu_start = time.perf_counter(), time.process_time()
        decode_seconds = decode_cpu = 0.0
        try:
            inputs: dict[str, Any] = {f.name: writer.read_feature(ctx.sample, f.name) for f in stage.inputs}
            if stage.reads_source:
                if decoded is None:
                    try:
                        decoded = decode_clip(ctx, params[SOURCE])
                    except Exception as e:  # kept: every source-reading stage of the chain fails with it
                        decoded = e
                    decode_seconds, decode_cpu = time.perf_counter() - start, time.process_time() - cpu_start
                if isinstance(decoded, Exception):
                    raise decoded
                inputs[SOURCE_FRAMES] = decoded
            out = stage.run(ctx, inputs, params)
            _write_outputs(writer, stage, ctx, out, key, recorded)
        except Exception as e:  # a bad clip (ClipError), a kernel bug or an unexpected input: record it, go on
            record = failure(record, ctx, stage.name, e)
        else:
            record = {**record, "status": "ok", "events": out.events,
                      "seconds": time.perf_counter() - start - decode_seconds,
                      "cpu_seconds": time.process_time() - cpu_start - decode_cpu}
            if decode_seconds:
                record |= {"decode_seconds": decode_seconds, "decode_cpu_seconds": decode_cpu}
        records.append(record)
        done.append(record)
    return records


def run_stage_batch(store_path: str, stage: Stage, ctxs: Sequence[ClipContext], params: Mapping[str, Any],
                    keys: Sequence[str], *upstream: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Run one stage on several clips with one call of its ``kernel_many``; one record per clip.

    A clip whose upstream failed is skipped, a clip whose inputs or kernel
    fail is recorded as failed, and the others are still computed together.
    ``seconds`` and ``cpu_seconds`` of each record are the batch's shared equally.
    """
    records = [{"sample": c.sample, "stage": stage.name, "key": k} for c, k in zip(ctxs, keys)]
    results: list[dict[str, Any] | None] = [None] * len(ctxs)
    todo: list[int] = []
    limit_threads()
    writer = StoreWriter(store_path)
    start, cpu_start = time.perf_counter(), time.process_time()
    inputs = []
    for i, ctx in enumerate(ctxs):
        blocked = blocked_by(ctx.sample, upstream)
        if blocked:
            results[i] = {**records[i], "status": "skipped", "error": f"needs {blocked}, which did not complete"}
            continue
        try:
            inputs.append({f.name: writer.read_feature(ctx.sample, f.name) for f in stage.inputs})
            todo.append(i)
        except Exception as e:
            results[i] = failure(records[i], ctx, stage.name, e)
    try:
        outs = stage.run_many([ctxs[i] for i in todo], inputs, params) if todo else []
    except Exception as e:  # the batched call itself failed (e.g. out of GPU memory): every clip in it fails
        outs = [e] * len(todo)
    seconds = (time.perf_counter() - start) / max(len(todo), 1)
    recorded = recorded_params(params)
    cpu_seconds = (time.process_time() - cpu_start) / max(len(todo), 1)
    for i, out in zip(todo, outs):
        ctx = ctxs[i]
        try:
            if isinstance(out, Exception):
                raise out
            _write_outputs(writer, stage, ctx, out, keys[i], recorded)
        except Exception as e:
            results[i] = failure(records[i], ctx, stage.name, e)
            continue
        results[i] = {**records[i], "status": "ok", "events": out.events, "seconds": seconds,
                      "cpu_seconds": cpu_seconds}
    return results


def flat(results) -> list[Mapping[str, Any]]:
    """Status records of upstream results (a batch or chain task returns a list of them)."""
    return [r for result in results for r in (result if isinstance(result, list) else [result])]


def blocked_by(sample: str, upstream) -> str | None:
    """The first upstream stage of ``sample`` that did not complete (batch tasks return lists of records)."""
    for result in upstream:
        for r in (result if isinstance(result, list) else [result]):
            if r.get("sample", sample) == sample and r.get("status") != "ok":
                return r["stage"]
    return None


def _write_outputs(writer: StoreWriter, stage: Stage, ctx: ClipContext, out: StageOutput, key: str,
                   recorded: Mapping[str, Any]) -> None:
    """Write a stage's outputs; ``recorded`` is :func:`recorded_params` of the parameters, made once per task."""
    attrs = {"stage_version": stage.version, "events": out.events}
    if out.source_digest is not None:
        attrs[SOURCE_DIGEST_ATTR] = out.source_digest
    for name in stage.outputs:
        writer.write_feature(ctx.sample, name, out.arrays[name], key, attrs,
                             frame_numbers=np.asarray(ctx.frame_numbers), stage_params=recorded)


def recorded_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every stage's canonical parameters, which the writer checks output sizes against."""
    return {name: canonical(p) for name, p in params.items()}


def failure(record: dict[str, Any], ctx: ClipContext, stage_name: str, e: Exception) -> dict[str, Any]:
    """The record of a stage that failed for this clip (or video); a full disk is the machine's, not the clip's,
    so it is raised again: the build stops, and resumes when rerun."""
    if out_of_space(e):
        raise e
    if isinstance(e, ClipError):
        err = e.located(sample=ctx.sample, stage=stage_name)
        return {**record, "status": "failed", "file": err.file, "reason": err.reason, "error": err.describe()}
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    reason = f"{type(e).__name__}: {e}" + (f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else "")
    return {**record, "status": "failed", "file": "", "reason": reason,
            "error": f"{ctx.sample}: {stage_name}: {reason}"}
