"""One stage for one clip: the unit of work the DAG schedules.

A task reads its inputs from the store, runs the stage's kernel and writes
the outputs atomically with their cache key. It never raises for a bad clip:
it returns a status record, so one clip's failure never stops the others.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

import numpy as np

from mepipe.featurestore.cachekey import canonical
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .errors import ClipError
from .stagedefs import SOURCE_DIGEST_ATTR, STAGES


def _limit_threads() -> None:
    """One thread per task: the scheduler parallelises across clips."""
    import cv2

    cv2.setNumThreads(1)


def run_stage_task(store_path: str, stage_name: str, ctx: ClipContext, params: Mapping[str, Any], key: str,
                   *upstream: Mapping[str, Any]) -> dict[str, Any]:
    """Run one stage on one clip; returns ``{"sample", "stage", "status", ...}``."""
    record: dict[str, Any] = {"sample": ctx.sample, "stage": stage_name, "key": key}
    blocked = [u for u in upstream if u.get("status") != "ok"]
    if blocked:
        return {**record, "status": "skipped", "error": f"needs {blocked[0]['stage']}, which did not complete"}
    _limit_threads()
    stage = STAGES[stage_name]
    writer = StoreWriter(store_path)
    start = time.perf_counter()
    try:
        inputs = {name: writer.read_feature(ctx.sample, name) for name in stage.inputs}
        out = stage.compute(ctx, inputs, params[stage_name], params)
        attrs = {"stage_version": stage.version, "events": out.events}
        if out.source_digest is not None:
            attrs[SOURCE_DIGEST_ATTR] = out.source_digest
        recorded = {name: canonical(p) for name, p in params.items()}
        for name in stage.outputs:
            writer.write_feature(ctx.sample, name, out.arrays[name], key, attrs,
                                 frame_numbers=np.asarray(ctx.frame_numbers), stage_params=recorded)
    except ClipError as e:
        err = e.located(sample=ctx.sample, stage=stage_name)
        return {**record, "status": "failed", "file": err.file, "reason": err.reason, "error": err.describe()}
    except Exception as e:  # a kernel bug or an unexpected input: record it, keep the build going
        where = traceback.extract_tb(e.__traceback__)[-1]
        reason = f"{type(e).__name__}: {e} (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
        return {**record, "status": "failed", "file": "", "reason": reason,
                "error": f"{ctx.sample}: {stage_name}: {reason}"}
    return {**record, "status": "ok", "events": out.events, "seconds": time.perf_counter() - start}
