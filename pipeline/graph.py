"""The build DAG: plan which (clip, stage) tasks are stale, wire them with Dask, run them.

Planning happens in the driver from cache keys alone, so a rebuild with
nothing changed schedules no task at all. Each stale task becomes one
``dask.delayed`` call that depends on the stale tasks of its upstream stages
for the same clip; upstream outputs travel through the store, not the
scheduler.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask
from tqdm.auto import tqdm

from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.errors import UnknownNameError
from mepipe.featurestore.fingerprint import FINGERPRINT_MODES, content_digest, stat_digest
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .stagedefs import SHARED_PARAMS, SOURCE_DIGEST_ATTR, STAGES
from .tasks import run_stage_task

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Keys of every (clip, stage), and which of them must run.

    ``changed_content`` lists the clips whose cached features were made from
    other bytes than the sources now hold (found only with the ``content``
    fingerprint: an in-place rewrite that kept size and mtime).
    """

    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    stale: list[tuple[str, str]] = field(default_factory=list)
    cached: list[tuple[str, str]] = field(default_factory=list)
    source_digests: dict[str, str] = field(default_factory=dict)
    changed_content: list[str] = field(default_factory=list)


def plan_build(writer: StoreWriter, contexts: Iterable[ClipContext], stages: list[str],
               params: Mapping[str, Any], force: Iterable[str] = (), fingerprint: str = "stat") -> Plan:
    """Compute cache keys and compare them with what the store holds.

    Keys include the ``stat`` digest of each clip's sources (names, sizes,
    mtimes). With ``fingerprint="content"`` the sources are also hashed, and
    the first stage that decodes them (which records the digest of what it
    decoded) is stale when the two differ, or when it recorded none.
    """
    if fingerprint not in FINGERPRINT_MODES:
        raise UnknownNameError(f"unknown fingerprint {fingerprint!r}; use one of {', '.join(FINGERPRINT_MODES)}")
    forced = set(force)
    plan = Plan()
    shared = {n: params[n] for n in SHARED_PARAMS}
    decoder = next((n for n in stages if STAGES[n].reads_source), None)
    for ctx in contexts:
        digest = stat_digest(ctx.sources)
        plan.source_digests[ctx.sample] = digest
        truth = repr((ctx.truth, ctx.fps))
        rerun: set[str] = set()
        for name in stages:
            stage = STAGES[name]
            upstream = {u: plan.keys[(ctx.sample, u)] for u in stage.upstream}
            inputs = "|".join(p for p in (digest if stage.reads_source else "", truth if stage.reads_truth else "") if p)
            stage_params = {"stage": params[name], **(shared if stage.reads_source else {})}
            key = stage_key(name, stage.version, stage_params, upstream, inputs)
            plan.keys[(ctx.sample, name)] = key
            fresh = all(writer.stored_key(ctx.sample, f) == key for f in stage.outputs)
            if fresh and fingerprint == "content" and name == decoder and not _same_content(writer, ctx, stage):
                fresh = False
                plan.changed_content.append(ctx.sample)
            if name in forced or any(u in rerun for u in stage.upstream) or not fresh:
                rerun.add(name)
                plan.stale.append((ctx.sample, name))
            else:
                plan.cached.append((ctx.sample, name))
    return plan


def _same_content(writer: StoreWriter, ctx: ClipContext, stage) -> bool:
    """Whether the sources on disk hash to the digest the stage recorded for the bytes it decoded."""
    recorded = writer.feature_attrs(ctx.sample, stage.outputs[0]).get(SOURCE_DIGEST_ATTR)
    return recorded is not None and recorded == content_digest(ctx.sources)


def build_graph(plan: Plan, contexts: Mapping[str, ClipContext], store_path: str,
                params: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """One delayed task per stale (clip, stage), depending on its stale upstream tasks."""
    tasks: dict[tuple[str, str], Any] = {}
    run = dask.delayed(run_stage_task, pure=False)
    for sample, name in plan.stale:
        deps = [tasks[(sample, u)] for u in STAGES[name].upstream if (sample, u) in tasks]
        key = plan.keys[(sample, name)]
        tasks[(sample, name)] = run(store_path, name, contexts[sample], dict(params), key, *deps,
                                    dask_key_name=f"{name}-{sample}-{key[:12]}")
    return tasks


class BuildProgress:
    """A progress bar over tasks, with per-stage counts and clips completed."""

    def __init__(self, plan: Plan, stages: list[str], enabled: bool = True):
        self.total = Counter(name for _, name in plan.stale + plan.cached)
        self.done = Counter(name for _, name in plan.cached)
        self.left_per_clip = Counter(sample for sample, _ in plan.stale)
        self.clips = len({s for s, _ in plan.stale + plan.cached})
        self.clips_done = self.clips - len(self.left_per_clip)
        self.stages = stages
        self.bar = tqdm(total=len(plan.stale), desc="build", unit="task", disable=not enabled, dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        parts = [f"{n} {self.done[n]}/{self.total[n]}" for n in self.stages if self.total[n]]
        self.bar.set_postfix_str(f"clips {self.clips_done}/{self.clips} | " + " ".join(parts), refresh=False)

    def update(self, result: Mapping[str, Any]) -> None:
        self.done[result["stage"]] += 1
        self.left_per_clip[result["sample"]] -= 1
        if self.left_per_clip[result["sample"]] == 0:
            self.clips_done += 1
        self._postfix()
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def execute(tasks: Mapping[tuple[str, str], Any], progress: BuildProgress, scheduler: str | None = None,
            workers: int = 2) -> list[dict[str, Any]]:
    """Run the tasks and return their status records.

    ``scheduler``: None for a local process pool (a ``distributed.LocalCluster``
    of ``workers`` single-threaded processes), ``"sync"`` to run in this
    process (debugging), or the address of a ``distributed`` scheduler.
    """
    if not tasks:
        return []
    items = list(tasks.items())
    if scheduler == "sync":
        return _execute_sync(items, progress)
    return _execute_distributed(items, progress, scheduler, workers)


def _execute_sync(items, progress: BuildProgress) -> list[dict[str, Any]]:
    from dask.callbacks import Callback

    names = {d.key: k for k, d in items}

    class _Tick(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in names:
                progress.update(result)

    with _Tick():
        results = dask.compute(*[d for _, d in items], scheduler="synchronous")
    return list(results)


_DISTRIBUTED_LOGGERS = ("distributed", "tornado", "asyncio")


def quiet_distributed() -> None:
    """Keep ``distributed``'s chatter out of a build's output unless mepipe logs at DEBUG (``-vv``).

    Importing ``distributed`` sets its loggers to INFO, which prints about 30
    lines per build (cluster start, every worker, shutdown); its warnings and
    errors still show.
    """
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("distributed").setLevel(logging.INFO if debug else logging.WARNING)


@contextmanager
def _silent_shutdown():
    """Mute the loggers while a cluster shuts down: every result is in, and closing comms
    (``CommClosedError``, ``StreamClosedError``) only reports the shutdown itself."""
    loggers = [logging.getLogger(name) for name in _DISTRIBUTED_LOGGERS]
    levels = [lg.level for lg in loggers]
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _execute_distributed(items, progress: BuildProgress, address: str | None, workers: int) -> list[dict[str, Any]]:
    from distributed import Client, LocalCluster, as_completed

    quiet_distributed()
    cluster = None
    if address is None:
        # ":0" and dashboard=False: no fixed port to collide with (no "port 8787 in use" warning), no dashboard
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                               silence_logs=logging.ERROR)
        address = cluster.scheduler_address
    results: list[dict[str, Any]] = []
    client = Client(address)
    try:
        futures = client.compute([d for _, d in items])
        owner = {f.key: k for f, (k, _) in zip(futures, items)}
        for fut in as_completed(futures):
            sample, stage = owner[fut.key]
            try:
                result = fut.result()
            except Exception as e:  # a worker died or the task could not be run
                result = {"sample": sample, "stage": stage, "status": "failed", "file": "",
                          "reason": f"{type(e).__name__}: {e}", "error": f"{sample}: {stage}: {e}"}
            results.append(result)
            progress.update(result)
    finally:
        with _silent_shutdown():
            client.close()
            if cluster is not None:
                cluster.close()
    return results
