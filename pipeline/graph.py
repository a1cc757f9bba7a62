"""The build DAG: plan which (clip, stage) tasks are stale, wire them with Dask, run them.

Planning happens in the driver from cache keys alone, so a rebuild with
nothing changed schedules no task at all. Each stale task becomes one
``dask.delayed`` call that depends on the stale tasks of its upstream stages
for the same clip; upstream outputs travel through the store, not the
scheduler.
"""
from __future__ import annotations

import hashlib
import logging
import signal
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask

from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.errors import UnknownNameError, UsageError, out_of_space
from mepipe.featurestore.fingerprint import FINGERPRINT_MODES, content_digest, stat_digest
from mepipe.featurestore.progress import progress_bar
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext, Window
from .stages import SOURCE_DIGEST_ATTR, STAGES
from .tasks import run_stage_batch, run_stage_chain, run_stage_task

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Keys of every (clip, stage), and which of them must run.

    ``changed_content`` lists the clips whose cached features were made from
    other bytes than the sources now hold (found only with the ``content``
    fingerprint: an in-place rewrite that kept size and mtime). For long
    videos (:mod:`.video_graph`), ``windows`` holds the windows each stale
    (video, stage) must run and ``redone`` those (video, stage) that redo
    every window (forced).
    """

    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    stale: list[tuple[str, str]] = field(default_factory=list)
    cached: list[tuple[str, str]] = field(default_factory=list)
    source_digests: dict[str, str] = field(default_factory=dict)
    changed_content: list[str] = field(default_factory=list)
    windows: dict[tuple[str, str], list[Window]] = field(default_factory=dict)
    redone: set[tuple[str, str]] = field(default_factory=set)


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
    decoder = next((n for n in stages if STAGES[n].reads_source), None)
    for ctx in contexts:
        digest = stat_digest(ctx.sources)
        plan.source_digests[ctx.sample] = digest
        truth = repr((ctx.truth, ctx.fps))
        rerun: set[str] = set()
        clip_keys: dict[str, str] = {}
        for name in stages:
            stage = STAGES[name]
            inputs = "|".join(p for p in (digest if stage.reads_source else "", truth if stage.reads_truth else "") if p)
            key = stage_key(name, stage.version, stage.key_params(params), stage.upstream_keys(clip_keys), inputs)
            clip_keys[name] = plan.keys[(ctx.sample, name)] = key
            fresh = all(writer.stored_key(ctx.sample, f) == key for f in stage.outputs)
            if fresh and fingerprint == "content" and name == decoder and not _same_content(writer, ctx, stage):
                fresh = False
                plan.changed_content.append(ctx.sample)
            if name in forced or any(u in rerun for u in stage.reads) or not fresh:
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
                params: Mapping[str, Any], cuda: bool = False) -> dict[tuple[str, str], Any]:
    """One delayed task per stale (clip, stage), depending on its stale upstream tasks.

    Stages whose placement asks for several clips per task (flows on a GPU)
    get one batch task per group of clips, listed under each of its clips;
    a clip's stale stages that decode its frames (landmarks, align) get one
    chain task, listed under each of its stages, so the frames are decoded once.
    Tasks whose placement needs worker resources (``{"GPU": 1}``) carry them
    as a Dask annotation, so ``distributed`` runs them only on workers that
    have them (``cuda``: the build has a CUDA device).
    """
    tasks: dict[tuple[str, str], Any] = {}
    run = dask.delayed(run_stage_task, pure=False)
    run_batch = dask.delayed(run_stage_batch, pure=False)
    run_chain = dask.delayed(run_stage_chain, pure=False)
    stale: dict[str, list[str]] = {}
    for sample, name in plan.stale:
        stale.setdefault(name, []).append(sample)
    chains = _decode_chains(plan)
    for name in [n for n in STAGES if n in stale]:
        stage = STAGES[name]
        placement = stage.place(params[name], cuda)
        size = placement.clips_per_task if stage.kernel_many else 1
        for sample in [s for s in stale[name] if name in chains.get(s, ())]:
            if (sample, name) in tasks:
                continue
            chain = chains[sample]
            deps = [tasks[(sample, u)] for n in chain for u in STAGES[n].reads
                    if u not in chain and (sample, u) in tasks]
            keys = [plan.keys[(sample, n)] for n in chain]
            task = run_chain(store_path, [STAGES[n] for n in chain], contexts[sample], dict(params), keys, *deps,
                             dask_key_name=f"{'+'.join(chain)}-{sample}-{_digest(keys)}")
            for n in chain:
                tasks[(sample, n)] = task
        unchained = [s for s in stale[name] if name not in chains.get(s, ())]
        for start in range(0, len(unchained), size):
            group = unchained[start:start + size]
            deps = [tasks[(s, u)] for s in group for u in stage.reads if (s, u) in tasks]
            keys = [plan.keys[(s, name)] for s in group]
            with dask.annotate(**({"resources": dict(placement.resources)} if placement.resources else {})):
                if size == 1:
                    task = run(store_path, stage, contexts[group[0]], dict(params), keys[0], *deps,
                               dask_key_name=f"{name}-{group[0]}-{keys[0][:12]}")
                else:
                    task = run_batch(store_path, stage, [contexts[s] for s in group], dict(params), keys, *deps,
                                     dask_key_name=f"{name}-batch-{_digest(keys)}")
            for s in group:
                tasks[(s, name)] = task
    return tasks


def _decode_chains(plan: Plan) -> dict[str, list[str]]:
    """Per clip, its stale stages that decode the source frames, when there are several: one task runs them.

    They share one decode of the clip (:func:`.tasks.run_stage_chain`) and
    keep their own cache keys, so which of them is stale is decided as
    before. Stages that batch clips (``kernel_many``) are never chained.
    """
    chains: dict[str, list[str]] = {}
    for sample, name in plan.stale:
        if STAGES[name].reads_source and STAGES[name].kernel_many is None:
            chains.setdefault(sample, []).append(name)
    return {s: [n for n in STAGES if n in c] for s, c in chains.items() if len(c) > 1}


def _digest(keys: list[str]) -> str:
    return hashlib.sha256("|".join(keys).encode()).hexdigest()[:12]


def build_has_cuda(scheduler: str | None) -> bool:
    """Whether the build's workers have a CUDA device.

    In-process and local-process builds use this machine's devices; with a
    ``distributed`` scheduler address, a worker has one if it was started
    with the resource ``GPU`` (``dask worker ... --resources GPU=1``).
    """
    if scheduler is None or scheduler == "sync":
        from .stages.flow import cuda_available

        return cuda_available()
    with connect(scheduler) as client:
        workers = client.scheduler_info().get("workers", {}).values()
        return any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers)


SCHEDULER_TIMEOUT = 5.0
"""Seconds to wait for a ``--scheduler`` to answer: a scheduler that is up answers in milliseconds, also across a
network, so a longer wait only delays the message that none is there."""


class SchedulerError(UsageError):
    """``--scheduler`` names no dask scheduler that answers."""


def connect(address: str):
    """A ``distributed.Client`` of the scheduler at ``address``, or :class:`SchedulerError` in one sentence."""
    from distributed import Client

    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except ValueError as err:
        raise SchedulerError(f"--scheduler {address}: not a scheduler address ({err}); give one as "
                             "tcp://HOST:PORT, 'sync', or leave it out to build on local processes") from None
    except OSError:
        raise SchedulerError(f"--scheduler {address}: no dask scheduler answered within {SCHEDULER_TIMEOUT:g} s; "
                             "start one (`dask scheduler`, then `dask worker ADDRESS`) or leave out --scheduler to "
                             "build on local processes") from None


class BuildProgress:
    """A progress bar over a build's stale tasks, with per-stage counts and clips completed.

    With ``weights`` (each task's estimated CPU seconds, from
    :mod:`~mepipe.pipeline.estimate`) the bar advances by each finished
    task's estimate, so its percentage is of the estimated work and its ETA
    is that work's remainder at the rate the build has achieved so far on
    this machine, as loaded as it is (a TV-L1 pair can cost a hundred
    landmark frames; counting tasks alike would make the ETA meaningless).
    Off a terminal the bar is a line every few seconds (:mod:`mepipe.featurestore.progress`).
    """

    def __init__(self, plan: Plan, stages: list[str], enabled: bool = True,
                 weights: Mapping[tuple[str, str], float] | None = None):
        self.total = Counter(name for _, name in plan.stale + plan.cached)
        self.done = Counter(name for _, name in plan.cached)
        self.left_per_clip = Counter(sample for sample, _ in plan.stale)
        self.clips = len({s for s, _ in plan.stale + plan.cached})
        self.clips_done = self.clips - len(self.left_per_clip)
        self.tasks, self.tasks_done = len(plan.stale), 0
        self.stages = stages
        typical = sum(weights.values()) / len(weights) if weights else 1.0
        self.weights = {task: (weights or {}).get(task, typical) for task in plan.stale}
        self.window_weights = {task: self.weights[task] / len(w) for task, w in plan.windows.items() if w}
        self.bar = progress_bar(total=round(sum(self.weights.values()), 2), desc="build", enabled=enabled,
                                dynamic_ncols=True, bar_format=BAR_FORMAT)
        self._postfix()

    def _postfix(self) -> None:
        parts = [f"{n} {self.done[n]}/{self.total[n]}" for n in self.stages if self.total[n]]
        self.bar.set_postfix_str(f"tasks {self.tasks_done}/{self.tasks} | clips {self.clips_done}/{self.clips} | "
                                 + " ".join(parts), refresh=False)

    def update(self, result: Mapping[str, Any]) -> None:
        """Count one task's record: a clip's stage, a long video's window (the bar only) or its finished stage."""
        if "window" in result:
            self.bar.update(self.window_weights.get((result["sample"], result["stage"]), 0.0))
            return
        self.done[result["stage"]] += 1
        self.tasks_done += 1
        self.left_per_clip[result["sample"]] -= 1
        if self.left_per_clip[result["sample"]] == 0:
            self.clips_done += 1
        self._postfix()
        self.bar.update(0.0 if "windows" in result else self.weights.get((result["sample"], result["stage"]), 0.0))

    def close(self) -> None:
        self.bar.close()


BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
"""The build bar: share of the (estimated) work done, task and clip counts, elapsed time and ETA."""


def execute(tasks: Mapping[tuple, Any], progress: BuildProgress, scheduler: str | None = None,
            workers: int = 2, cuda: bool = False) -> list[dict[str, Any]]:
    """Run the tasks and return their status records (one per clip and stage; for a long video also one per
    window of each stage).

    ``scheduler``: None for a local process pool (a ``distributed.LocalCluster``
    of ``workers`` single-threaded processes, each given the resource
    ``GPU=1`` when ``cuda``), ``"sync"`` to run in this process (debugging),
    or the address of a ``distributed`` scheduler.
    """
    if not tasks:
        return []
    items = _distinct(tasks)
    if scheduler == "sync":
        return _execute_sync(items, progress)
    return _execute_distributed(items, progress, scheduler, workers, cuda)


def _distinct(tasks: Mapping[tuple, Any]) -> list[tuple[list[tuple], Any]]:
    """Each delayed task once, with the (sample, stage[, window]) labels it computes (several for a batch task)."""
    by_key: dict[Any, tuple[list[tuple], Any]] = {}
    for label, d in tasks.items():
        by_key.setdefault(d.key, ([], d))[0].append(label)
    return list(by_key.values())


def _records(result: Any) -> list[dict[str, Any]]:
    return result if isinstance(result, list) else [result]


def _execute_sync(items, progress: BuildProgress) -> list[dict[str, Any]]:
    from dask.callbacks import Callback

    names = {d.key for _, d in items}

    class _Tick(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in names:
                for record in _records(result):
                    progress.update(record)

    with _Tick():
        results = dask.compute(*[d for _, d in items], scheduler="synchronous")
    return [r for result in results for r in _records(result)]


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


LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.tick.interval": "1s",
}
"""dask settings of the local cluster a build starts: no sampling profiler, a slower system monitor and tick.

With dask's defaults (a stack sample every 10 ms, psutil every 500 ms, an
event-loop tick every 20 ms) a worker's housekeeping threads cost 22-28 %
on top of its tasks' CPU seconds on a loaded 2-core machine, measured with
one TV-L1 task per worker at load 19; with these 6 % (it grows with wall
time, not with work). They feed only dashboards, which a local build does
not start, and they inflated the tasks' recorded CPU seconds, which the
build's estimate is checked against.
"""


@contextmanager
def _children_ignore_ctrl_c():
    """Processes started inside ignore SIGINT, which they inherit as ignored: Ctrl-C interrupts only the driver.

    A terminal sends Ctrl-C to the whole process group, the local cluster's
    worker processes included; each would print a ``KeyboardInterrupt``
    traceback and die while the driver still waits for it. Ignored, the
    driver alone stops and shuts the cluster down (``finally``), and the
    build's finished arrays stay for a rerun to resume from.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _execute_distributed(items, progress: BuildProgress, address: str | None, workers: int,
                         cuda: bool = False) -> list[dict[str, Any]]:
    from distributed import Client, LocalCluster, as_completed

    quiet_distributed()
    cluster = None
    if address is None:
        # ":0" and dashboard=False: no fixed port to collide with (no "port 8787 in use" warning), no dashboard.
        # Worker processes log on their own stderr: a heartbeat racing the shutdown logs a CommClosedError
        # traceback at ERROR there, so they report only CRITICAL unless mepipe logs at DEBUG (task errors
        # come back to the client as results either way).
        debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        with _children_ignore_ctrl_c(), dask.config.set(LOCAL_WORKER_CONFIG):
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                                   silence_logs=logging.ERROR if debug else logging.CRITICAL,
                                   resources={"GPU": 1} if cuda else None)
    # Not the session's default client: a notebook's own dask work must not go to (or wait on) the build's.
    client = connect(address) if cluster is None else Client(cluster.scheduler_address, set_as_default=False)
    results: list[dict[str, Any]] = []
    try:
        futures = client.compute([d for _, d in items])
        owner = {f.key: labels for f, (labels, _) in zip(futures, items)}
        for fut in as_completed(futures, loop=client.loop):
            try:
                records = _records(fut.result())
            except Exception as e:  # a worker died or the task could not be run
                if out_of_space(e):  # a full disk stops the build, as in-process (the tasks raise it)
                    raise
                records = [{"sample": label[0], "stage": label[1], **({"window": label[2]} if len(label) > 2 else {}),
                            "status": "failed", "file": "", "reason": f"{type(e).__name__}: {e}",
                            "error": f"{label[0]}: {label[1]}: {e}"} for label in owner[fut.key]]
            for record in records:
                results.append(record)
                progress.update(record)
    finally:
        with _silent_shutdown():
            client.close()
            if cluster is not None:
                cluster.close()
    return results
