"""The build DAG of long videos: plan which windows are stale, wire window and finishing tasks with Dask.

Keys are made per (video, stage) exactly as for clips, from each stage's
video form (:meth:`Stage.for_videos <.stages.registry.Stage.for_videos>`)
and the window parameters. A stage whose features are in place with their
key is cached; otherwise its windows not yet recorded as done under that
key are stale (all of them when it is forced or reads a forced stage), so a
build killed mid-video redoes none of the windows it finished.

Every window of a stage is a task (the stale source-reading stages of a
window share one task and one decode), which waits for the tasks of the
windows its inputs cover in the stages it reads: a window and, with an
overlap, those after it. One video thus spreads over every worker, and
downstream windows start while upstream ones are still running.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import dask

from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.errors import ConfigError
from mepipe.featurestore.fingerprint import stat_digest
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .graph import Plan
from .stages import STAGES
from .stages.windows import WINDOW, cut, windows_touching
from .video_tasks import finish_stage, run_window


def plan_videos(writer: StoreWriter, contexts: Iterable[ClipContext], stages: list[str], params: Mapping[str, Any],
                force: Iterable[str] = (), fingerprint: str = "stat") -> Plan:
    """Keys of every (video, stage), and which stages and windows must run (``plan.windows``).

    Raises
    ------
    ConfigError
        ``fingerprint="content"``: long videos are recognised by their
        files' names, sizes and mtimes only.
    """
    if fingerprint != "stat":
        raise ConfigError(f"--fingerprint {fingerprint} is not kept for long videos (their windows hash no bytes); "
                          "use --fingerprint stat")
    forced = set(force)
    plan = Plan()
    size = params[WINDOW].frames
    for ctx in contexts:
        digest = stat_digest(ctx.sources)
        plan.source_digests[ctx.sample] = digest
        truth = repr((ctx.truth, ctx.fps))
        windows = cut(len(ctx.frame_numbers), size)
        redo: set[str] = set()
        keys: dict[str, str] = {}
        for name in stages:
            stage = STAGES[name].for_videos()
            inputs = "|".join(p for p in (digest if stage.reads_source else "", truth if stage.reads_truth else "") if p)
            key = stage_key(name, stage.version, stage.key_params(params), stage.upstream_keys(keys), inputs)
            keys[name] = plan.keys[(ctx.sample, name)] = key
            if name in forced or any(u in redo for u in stage.reads):
                redo.add(name)
            if name not in redo and all(writer.stored_key(ctx.sample, f) == key for f in stage.outputs):
                plan.cached.append((ctx.sample, name))
                continue
            plan.stale.append((ctx.sample, name))
            done = {} if name in redo else writer.window_marks(ctx.sample, name, key)
            plan.windows[(ctx.sample, name)] = [w for w in windows if w.index not in done]
            if name in redo:
                plan.redone.add((ctx.sample, name))
    return plan


def prepare_windows(writer: StoreWriter, plan: Plan) -> None:
    """Drop what the plan will not reuse: windows built under other keys, and all of those it redoes."""
    for sample, name in plan.stale:
        keep = None if (sample, name) in plan.redone else plan.keys[(sample, name)]
        writer.prune_windows(sample, name, keep)


def build_video_graph(plan: Plan, contexts: Mapping[str, ClipContext], store_path: str, params: Mapping[str, Any],
                      cuda: bool = False) -> dict[tuple, Any]:
    """One delayed task per stale window (``(video, stage, window)``) and per stale stage's finishing (``(video,
    stage)``); a window's source-reading stages share one task, listed under each of them."""
    run = dask.delayed(run_window, pure=False)
    finish = dask.delayed(finish_stage, pure=False)
    size = params[WINDOW].frames
    tasks: dict[tuple, Any] = {}
    for sample, ctx in contexts.items():
        stale = [n for n in STAGES if (sample, n) in plan.windows]
        if not stale:
            continue
        keys = {n: plan.keys[(sample, n)] for n in STAGES if (sample, n) in plan.keys}
        video = dask.delayed(ctx, traverse=False, name=f"video-{sample}-{_digest(keys.values())}")
        n_frames = len(ctx.frame_numbers)
        windows: dict[tuple[str, int], Any] = {}
        for name in stale:
            stage = STAGES[name].for_videos()
            placement = stage.place(params[name], cuda)
            todo = {w.index for w in plan.windows[(sample, name)]}
            for w in plan.windows[(sample, name)]:
                if (name, w.index) in windows:
                    continue
                chain = [n for n in stale if STAGES[n].reads_source and w.index in {v.index for v in
                                                                                    plan.windows[(sample, n)]}]
                chain = chain if name in chain else [name]
                deps = []
                for n in chain:
                    video_stage = STAGES[n].for_videos()
                    stop = min(w.stop + video_stage.window.overlap(params[n], ctx.fps), n_frames)
                    deps += [windows[(u, j)] for u in video_stage.reads if u not in chain
                             for j in windows_touching(w.start, stop, size) if (u, j) in windows]
                with dask.annotate(**({"resources": dict(placement.resources)} if placement.resources else {})):
                    task = run(store_path, [STAGES[n].for_videos() for n in chain], video, w, dict(params), keys,
                               *_distinct(deps), dask_key_name=f"{'+'.join(chain)}-{sample}-w{w.index}-"
                                                                   f"{_digest(keys[n] for n in chain)}")
                for n in chain:
                    windows[(n, w.index)] = task
                    tasks[(sample, n, w.index)] = task
            n_windows = len(cut(n_frames, size))
            tasks[(sample, name)] = finish(store_path, stage, video, keys[name], n_windows,
                                           *_distinct(windows[(name, i)] for i in sorted(todo)),
                                           dask_key_name=f"finish-{name}-{sample}-{keys[name][:12]}")
    return tasks


def _distinct(tasks: Iterable[Any]) -> list[Any]:
    """Delayed tasks once each, in order (a chain task serves several stages of its window)."""
    return list({t.key: t for t in tasks}.values())


def _digest(keys: Iterable[str]) -> str:
    return hashlib.sha256("|".join(keys).encode()).hexdigest()[:12]
