"""What a build will cost before it is spent: CPU seconds per stage and in all, measured on the data itself.

A stage's cost per unit (per frame, per flow pair, per frame and α: its
:class:`~.stages.cost.Cost`) is measured by running the stage for real on
one clip of the build, the *probe*: the first clip with work to do (the next
one if it fails), cut to :data:`PROBE_FRAMES` frames around its apex when it
is longer. Stages run on it as build tasks run them (their store reads and
writes included, into a temporary store), and the frames are decoded once as
a build decodes them. Flow stages run a few sampled pairs instead of the
clip's all (:attr:`Cost.sample`): TV-L1 stops when its update is small, so
its cost follows the motion in the pixels (0.1 s to 35 s per pair) and only
the data can say what it is. Work a worker does once (loading dlib's
models) is timed apart and counted once per worker process.

Each stale task's estimate is then its stage's unit cost times the task's
units; a stage declaring no cost is listed as not estimated. Everything is
CPU seconds of one thread, what the build's report records per stage
(``stage_cpu_seconds``): on a shared, loaded machine they stay near what the
work costs while wall seconds grow with the load. The wall-clock figure is
the CPU seconds spread over the workers of an otherwise idle machine.

Long videos are measured on a stretch of one video by the build's window
task (:mod:`.estimate_videos`), into the same :class:`Estimate`.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .graph import Plan
from .stages import STAGES
from .tasks import limit_threads, run_stage_chain

PROBE_FRAMES = 200
"""Most frames of the probe clip; a longer clip is cut to this many around its apex (or its middle)."""

PROBE_CANDIDATES = 3
"""Clips tried as the probe, in order, until one runs every stage to measure."""

DECODE = "decode"
"""Name of the decoding's row (decoding is not a stage; the first stage of a clip that reads sources does it)."""


@dataclass(frozen=True)
class StageCost:
    """One stage's part of an estimate.

    Attributes
    ----------
    name : str
    tasks : int
        Its stale tasks.
    unit : str
        What its cost is counted in ("frame", "pair", ...); empty when not estimated.
    units : float
        Units of all its stale tasks.
    unit_seconds : float or None
        CPU seconds per unit measured on the probe; None when not estimated (``note`` says why).
    setup_seconds : float
        CPU seconds of its once-per-worker work (dlib's models), counted ``setups`` times.
    setups : int
    note : str
    """

    name: str
    tasks: int
    unit: str = ""
    units: float = 0.0
    unit_seconds: float | None = None
    setup_seconds: float = 0.0
    setups: int = 0
    note: str = ""

    @property
    def seconds(self) -> float:
        """Estimated CPU seconds (0 when not estimated)."""
        if self.unit_seconds is None:
            return 0.0
        return self.unit_seconds * self.units + self.setup_seconds * self.setups

    def describe(self) -> str:
        """``"144 frames x 11.0 ms + 0.80 s per worker x 2 = 3.2 CPU s"``, or why there is no estimate."""
        if self.unit_seconds is None:
            return f"not estimated ({self.note})"
        text = f"{self.units:g} {self.unit}{'' if self.units == 1 else 's'} x {_ms(self.unit_seconds)}"
        if self.setups and self.setup_seconds:
            text += f" + {self.setup_seconds:.2f} s per worker x {self.setups}"
        return f"{text} = {self.seconds:.1f} CPU s"


@dataclass(frozen=True)
class Estimate:
    """CPU seconds a build's stale tasks will take, per stage and per task.

    Attributes
    ----------
    stages : dict of str to StageCost
        Per stage with stale tasks, in build order, the decoding first.
    task_seconds : dict of (str, str) to float
        Per stale (clip, stage) task (a clip's decoding counted with its first source-reading task).
    workers : int
        Processes the build spreads its tasks over (for the wall-clock figure).
    probe : str or None
        The clip (or long video) measured; None when nothing runs.
    probe_frames : int
    measure_seconds : float
        CPU seconds the measurement itself took.
    unit : {"clip", "video"}
        What the build's samples are.
    probe_from : int or None
        A long video's frame number where the probe's frames start.
    spread_over : int
        Tasks that can run at the same time (a long video's windows); 0: one per clip of ``task_seconds``.
    """

    stages: dict[str, StageCost] = field(default_factory=dict)
    task_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    workers: int = 1
    probe: str | None = None
    probe_frames: int = 0
    measure_seconds: float = 0.0
    unit: str = "clip"
    probe_from: int | None = None
    spread_over: int = 0

    @property
    def cpu_seconds(self) -> float:
        """Estimated CPU seconds of every stale task (and the workers' setups)."""
        return sum(s.seconds for s in self.stages.values())

    def stage_seconds(self) -> dict[str, float]:
        """Estimated CPU seconds per stage (and ``decode``), as the build report's ``stage_cpu_seconds``."""
        return {n: round(s.seconds, 2) for n, s in self.stages.items() if s.unit_seconds is not None}

    def wall_seconds(self) -> float:
        """The CPU seconds spread over the build's workers (at most one per CPU and per task that can run at once)."""
        tasks = self.spread_over or len({sample for sample, _ in self.task_seconds}) or 1
        return self.cpu_seconds / max(1, min(self.workers, os.cpu_count() or 1, tasks))

    def headline(self) -> str:
        """One line: the total in CPU and wall-clock time, and where it was measured."""
        if self.probe is None:
            return "estimate: nothing to run"
        missing = [n for n, s in self.stages.items() if s.unit_seconds is None]
        text = (f"estimate: {_duration(self.cpu_seconds)} of CPU, about {_duration(self.wall_seconds())} on "
                f"{self.workers} worker{'s' if self.workers != 1 else ''} of an otherwise idle machine "
                f"(measured on {self.unit} {self.probe}, {self.probe_frames} frames"
                f"{'' if self.probe_from is None else f' from frame {self.probe_from}'}, "
                f"in {self.measure_seconds:.1f} CPU s)")
        return text + (f"; not estimated: {', '.join(missing)}" if missing else "")

    def lines(self) -> list[str]:
        """What a build prints at its start: :meth:`headline`, and :meth:`shares` when something runs."""
        return [self.headline(), self.shares()] if self.probe is not None and self.cpu_seconds else [self.headline()]

    def shares(self, top: int = 4) -> str:
        """The stages that cost most, with their share: ``"flow_first_each 61 %, landmarks 20 %, ..."``."""
        total = self.cpu_seconds or 1.0
        ranked = sorted(((s.seconds, n) for n, s in self.stages.items() if s.seconds), reverse=True)
        parts = [f"{n} {_duration(sec)} ({100 * sec / total:.0f} %)" for sec, n in ranked[:top]]
        rest = sum(sec for sec, _ in ranked[top:])
        return "  most of it: " + ", ".join(parts) + (f", the rest {_duration(rest)}" if rest else "")

    def stage_line(self, name: str) -> str:
        """``"3.2 CPU s (10 %): 144 frames x 11.0 ms + ..."`` for one stage."""
        cost = self.stages[name]
        if cost.unit_seconds is None:
            return cost.describe()
        share = 100 * cost.seconds / (self.cpu_seconds or 1.0)
        return f"{cost.seconds:.1f} CPU s ({share:.0f} %): {cost.describe().rsplit(' = ', 1)[0]}"


class ProbeFailed(RuntimeError):
    """A stage failed on the probe clip (its record's error is the message)."""


def estimate_build(plan: Plan, contexts: Mapping[str, ClipContext], stages: list[str], params: Mapping[str, Any],
                   store: str | os.PathLike, workers: int, processes: int) -> Estimate:
    """Estimate the CPU seconds of a plan's stale tasks by measuring them on one of its clips.

    Parameters
    ----------
    plan : Plan
        The build's plan (its stale and cached tasks and keys).
    contexts : mapping of str to ClipContext
        Every buildable clip by sample id.
    stages : list of str
        The build's stages, in order.
    params : mapping
        Every stage's (resolved) parameters.
    store : path
        The build's store; cached inputs of the probe clip are read from it.
    workers : int
        Processes the build's tasks spread over (the wall-clock figure).
    processes : int
        Fresh processes that will each do a stage's setup (0 when the build
        runs in this process, which the measurement has set up already).
    """
    if not plan.stale:
        return Estimate(workers=workers)
    stale = Counter(name for _, name in plan.stale)
    measure = [n for n in stages if stale[n] and STAGES[n].cost is not None]
    samples = list(dict.fromkeys(sample for sample, _ in plan.stale))
    return first_probe(samples, lambda sample: _measure(contexts[sample], stages, measure, params, plan, Path(store)),
                       lambda measured: scale_measurement(measured, plan, contexts, stages, params, workers,
                                                          processes), plan, stages, workers)


def first_probe(samples: list[str], measure: Callable[[str], Measurement], scale: Callable[[Measurement], Estimate],
                plan: Plan, stages: list[str], workers: int, unit: str = "clip") -> Estimate:
    """``scale(measure(sample))`` of the first of ``samples`` (:data:`PROBE_CANDIDATES` at most) whose probe does not
    fail; when every one fails, each stale stage not estimated, its note saying why."""
    failures = []
    for sample in samples[:PROBE_CANDIDATES]:
        try:
            measured = measure(sample)
        except ProbeFailed as err:
            failures.append(f"{sample}: {err}")
            continue
        return scale(measured)
    note = f"every probe {unit} failed: " + "; ".join(failures)
    stale = Counter(name for _, name in plan.stale)
    return Estimate({n: StageCost(n, stale[n], note=note) for n in stages if stale[n]}, {}, workers,
                    samples[0], 0, 0.0, unit=unit)


@dataclass
class Measurement:
    """What the probe measured.

    Attributes
    ----------
    probe : ClipContext
        The clip (or its window, or a stretch of a long video) the stages ran on.
    seconds, units : dict of str to float
        Per stage measured, its CPU seconds and the units they covered.
    setup : dict of str to float
        CPU seconds of each stage's once-per-process work.
    decode_seconds : float
        CPU seconds decoding ``decoded_frames`` frames.
    total : float
        CPU seconds of the whole measurement.
    """

    probe: ClipContext
    seconds: dict[str, float] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    setup: dict[str, float] = field(default_factory=dict)
    decode_seconds: float = 0.0
    decoded_frames: int = 0
    total: float = 0.0


def _measure(ctx: ClipContext, stages: list[str], measure: list[str], params: Mapping[str, Any], plan: Plan,
             store: Path) -> Measurement:
    """Run what the stages to measure need on the probe clip, in a temporary store; time the stages to measure."""
    started = time.process_time()
    probe = probe_window(ctx)
    needed = _with_upstream(measure, stages)
    readers = {u for n in needed for u in STAGES[n].reads}
    real = StoreWriter(store) if (store / "zarr.json").is_file() else None
    out = Measurement(probe)
    limit_threads()
    with tempfile.TemporaryDirectory(prefix="mepipe-estimate-") as tmp:
        scratch = StoreWriter(Path(tmp) / "probe.zarr")
        scratch.create()
        chain: list[str] = []  # source-reading stages not run yet: they share one decode, as in a build
        for name in needed:
            stage = STAGES[name]
            if name not in measure and probe is ctx and real is not None and (ctx.sample, name) in plan.cached:
                _copy_outputs(real, scratch, ctx, name)
                continue
            sampled = name in measure and stage.cost.sample is not None and name not in readers
            if sampled or not stage.reads_source:
                _flush(chain, scratch, probe, params, plan, out)
            if sampled:
                _sampled(name, scratch, probe, params, out)
            elif stage.reads_source:
                chain.append(name)
            else:
                _flush([name], scratch, probe, params, plan, out)
        _flush(chain, scratch, probe, params, plan, out)
    out.total = time.process_time() - started
    return out


def _with_upstream(names: list[str], stages: list[str]) -> list[str]:
    """The stages and everything they read, in build order."""
    wanted = set(names)
    for name in reversed(stages):
        if name in wanted:
            wanted.update(STAGES[name].reads)
    return [n for n in stages if n in wanted]


def _copy_outputs(real: StoreWriter, scratch: StoreWriter, ctx: ClipContext, name: str) -> None:
    """A cached stage's outputs for the probe clip, from the build's store into the scratch store."""
    for feature in STAGES[name].outputs:
        scratch.write_feature(ctx.sample, feature, real.read_feature(ctx.sample, feature),
                              real.stored_key(ctx.sample, feature) or "copied")


def _flush(chain: list[str], scratch: StoreWriter, probe: ClipContext, params: Mapping[str, Any], plan: Plan,
           out: Measurement) -> None:
    """Run ``chain`` (stages of one clip, the source-reading ones sharing a decode) as a build task; empties it."""
    names = take_chain(chain, out)
    if not names:
        return
    keys = [plan.keys.get((probe.sample, n), "probe") for n in names]
    for record in run_stage_chain(str(scratch.path), [STAGES[n] for n in names], probe, params, keys):
        if record["status"] != "ok":
            raise ProbeFailed(record.get("error") or record["status"])
        name = record["stage"]
        out.seconds[name] = record["cpu_seconds"]
        out.units[name] = _units(name, probe, params)
        if "decode_cpu_seconds" in record:
            out.decode_seconds, out.decoded_frames = record["decode_cpu_seconds"], len(probe.frame_numbers)


def _sampled(name: str, scratch: StoreWriter, probe: ClipContext, params: Mapping[str, Any],
             out: Measurement) -> None:
    """Time the stage's sampled runs (:attr:`Cost.sample`) on the probe clip's stored inputs."""
    stage = STAGES[name]
    setup_stage(name, out)
    inputs = {f.name: scratch.read_feature(probe.sample, f.name) for f in stage.inputs}
    own, read = stage.kernel_params(params)
    seconds = units = 0.0
    try:
        for run in stage.cost.sample(probe, inputs, own, read):
            start = time.process_time()
            stage.kernel(run.ctx, run.inputs, run.params, run.read)
            seconds += time.process_time() - start
            units += run.units
    except Exception as err:  # the probe clip does not suit the stage (e.g. no onset->apex motion): try another
        raise ProbeFailed(f"{name}: {type(err).__name__}: {err}") from None
    out.seconds[name], out.units[name] = seconds, units


def take_chain(chain: list[str], out: Measurement) -> list[str]:
    """The stages of ``chain``, which it empties, each set up (:func:`setup_stage`) for its timed run."""
    names = list(chain)
    chain.clear()
    for name in names:
        setup_stage(name, out)
    return names


def setup_stage(name: str, out: Measurement) -> None:
    """Do (and time) a stage's once-per-process work before its timed run."""
    setup = STAGES[name].cost.setup if STAGES[name].cost else None
    if setup is not None and name not in out.setup:
        start = time.process_time()
        setup()
        out.setup[name] = time.process_time() - start


def _units(name: str, ctx: ClipContext, params: Mapping[str, Any]) -> float:
    stage = STAGES[name]
    if stage.cost is None:
        return 0.0
    own, read = stage.kernel_params(params)
    return float(stage.cost.units(ctx, own, read))


def scale_measurement(measured: Measurement, plan: Plan, contexts: Mapping[str, ClipContext], stages: list[str],
           params: Mapping[str, Any], workers: int, processes: int) -> Estimate:
    """The estimate: each stale task's units times its stage's measured CPU seconds per unit, the decoding of each
    clip whose sources a stale stage reads, and each stage's setup once per fresh worker process."""
    per_unit = {n: measured.seconds[n] / measured.units[n] for n in measured.seconds
                if measured.units.get(n) and STAGES[n].cost is not None}
    task_seconds: dict[tuple[str, str], float] = {}
    units: Counter = Counter()
    for sample, name in plan.stale:
        if name in per_unit:
            count = _units(name, contexts[sample], params)
            units[name] += count
            task_seconds[(sample, name)] = per_unit[name] * count
    decoding = [(s, n) for s, n in plan.stale if STAGES[n].reads_source]
    first = {}
    for sample, name in decoding:
        first.setdefault(sample, name)
    frames = sum(len(contexts[s].frame_numbers) for s in first)
    decode_per_frame = measured.decode_seconds / measured.decoded_frames if measured.decoded_frames else None
    rows: dict[str, StageCost] = {}
    if first:
        rows[DECODE] = StageCost(DECODE, len(first), "frame", frames, decode_per_frame,
                                 note="no source-reading stage measured")
        for sample, name in first.items():
            if decode_per_frame is not None:
                task_seconds[(sample, name)] = task_seconds.get((sample, name), 0.0) + \
                    decode_per_frame * len(contexts[sample].frame_numbers)
    stale = Counter(name for _, name in plan.stale)
    for name in (n for n in stages if stale[n]):
        cost = STAGES[name].cost
        if cost is None:
            rows[name] = StageCost(name, stale[name], note="the stage declares no cost")
            continue
        clips = len({s for s, n in plan.stale if n == name})
        rows[name] = StageCost(name, stale[name], cost.unit, units[name], per_unit.get(name),
                               measured.setup.get(name, 0.0), min(processes, clips), note="not measured")
    return Estimate(rows, task_seconds, workers, measured.probe.sample, len(measured.probe.frame_numbers),
                    measured.total)


def probe_window(ctx: ClipContext, frames: int = PROBE_FRAMES) -> ClipContext:
    """The clip itself, or, when longer than ``frames``, that many of its frames around its apex (its middle
    when the sheet gives none; a video's first frames, which it decodes anyway)."""
    n = len(ctx.frame_numbers)
    if n <= frames:
        return ctx
    apex = ctx.truth[1] if ctx.truth[1] is not None else n // 2
    start = 0 if ctx.video else min(max(0, apex - frames // 2), n - frames)
    keep = slice(start, start + frames)
    truth = tuple(None if t is None or not start <= t < start + frames else t - start for t in ctx.truth)
    return replace(ctx, frame_files=ctx.frame_files[keep], frame_numbers=ctx.frame_numbers[keep], truth=truth)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _duration(seconds: float) -> str:
    """Seconds as "42 s", "3.5 min" or "1.2 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
