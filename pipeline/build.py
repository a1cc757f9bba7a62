"""``mepipe build``: dataset adapter -> plan -> Dask DAG -> feature store, with a report.

The driver holds the store's build lock, marks the store ``building``, runs
only the stale (clip, stage) tasks, then writes the sample table, provenance
and consolidated metadata and marks the store ``complete``. A killed build
leaves the store ``building``; rerunning picks up from the arrays that were
completely written.

A dataset of long videos (an adapter returning ``unit="video"``) builds the
same way with the stages that run on them, window by window
(:mod:`.video_graph`); the store is marked ``unit: video`` and also gets the
table of annotated intervals. A killed build of a long video resumes from
its finished windows.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mepipe.featurestore import features
from mepipe.featurestore.cachekey import canonical
from mepipe.featurestore.errors import ConfigError, DiskFullError, UnknownNameError, out_of_space
from mepipe.featurestore.fingerprint import file_sha256
from mepipe.featurestore.layout import REPORT_FILE
from mepipe.featurestore.lock import BuildLock
from mepipe.featurestore.manifest import write_manifest
from mepipe.featurestore.provenance import BuildInfo, BuildRecord, SheetRecord, StageRecord
from mepipe.featurestore.safety import printable
from mepipe.featurestore.schema import SAMPLE_COLUMNS, SCHEMA_VERSION, UNIT_ATTR
from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext
from .dataset_stages import run_dataset_stage
from .destination import Sources, apply_removal, check_destination, plan_removal
from .datasets import get_adapter
from .datasets.base import AdapterResult, Sample
from .datasets.sheets import SKIPPED_ROW_KINDS
from .estimate import DECODE, Estimate, estimate_build
from .estimate_videos import estimate_videos
from .graph import BuildProgress, Plan, build_graph, build_has_cuda, execute, plan_build
from .staleness import TRUTH_ATTR, stale_reasons, truth_record
from .stages import (SOURCE, STAGES, dataset_stages_after, default_params, descendants, resolve_devices, stages_for,
                     wants_cuda)
from .stages.windows import WINDOW
from .video_graph import build_video_graph, plan_videos, prepare_windows

log = logging.getLogger(__name__)


def mepipe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mepipe")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class BuildOptions:
    """Everything one build needs; the CLI fills it from options and config.

    Attributes
    ----------
    stages : tuple of str or None
        Features to build (with everything they need): stage, group or
        feature names, as ``--features`` takes them; None = every stage
        that runs on the dataset's samples (clips, or long videos).
    force : tuple of str
        Stages to recompute even when cached (their descendants too).
    scheduler : str or None
        None = local process pool of ``workers``; ``"sync"`` = in-process;
        otherwise a ``distributed`` scheduler address.
    fingerprint : {"stat", "content"}
        How unchanged sources are recognised: names, sizes and mtimes
        (fast), or also the sha256 of every source file (catches a file
        rewritten in place with its size and mtime kept).
    replace, prune : bool
        Rebuild a store of other sources from this dataset; remove the
        clips the dataset no longer lists (:mod:`.destination`).
    params : dict or None
        Every stage's parameters; None = the defaults for the dataset's
        samples (:func:`~.stages.default_params` of its unit).
    estimate : bool
        Measure what the stale tasks will cost before running them
        (:mod:`~mepipe.pipeline.estimate`: a few seconds on one clip; the
        command line does it, the API when asked), give the progress bar an
        ETA from it and record it in the report.
    """

    dataset: str
    root: Path
    store: Path
    annotations: Path | None = None
    workers: int = 2
    scheduler: str | None = None
    stages: tuple[str, ...] | None = None
    force: tuple[str, ...] = ()
    params: dict[str, Any] | None = None
    progress: bool = True
    adapter_options: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = "stat"
    replace: bool = False
    prune: bool = False
    estimate: bool = False


@dataclass
class BuildReport:
    """What a build did: counts, failures, quirks, timing. Written as JSON.

    ``faces`` holds, per clip with landmarks, how the face was found: the
    fraction of frames with the followed face, its median box size in
    pixels, the faces seen at the start and the detector calls.
    ``stage_seconds`` are the tasks' wall seconds per stage and
    ``stage_cpu_seconds`` their CPU seconds (what the work costs, whatever
    else the machine runs), with decoding the sources apart as ``decode``;
    ``estimated_cpu_seconds`` what the estimate made at the start expected
    of them (empty without one). ``assumptions`` are the dataset adapter's,
    one line each, where the corpus's format is uncertain. ``skipped_rows``
    are the quirks of sheet rows that were skipped (also in ``quirks``),
    each naming its row and why, listed in full by the summary. ``removed``
    names every clip the build removed (``--prune``, ``--replace``) and
    ``replaced`` the sources it replaced.
    one line each, where the corpus's format is uncertain. ``unit`` says
    what the samples were: ``clip`` or ``video`` (then each stage's counts
    are per video).
    """

    store: str
    dataset: str
    started: str
    seconds: float
    n_samples: int
    n_ok: int
    tasks_run: dict[str, int]
    tasks_cached: dict[str, int]
    stage_seconds: dict[str, float]
    failures: list[dict[str, Any]]
    quirks: list[str]
    exit_code: int
    changed_sources: list[str] = field(default_factory=list)
    faces: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    alphas: int = 0
    assumptions: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    replaced: str = ""
    skipped_rows: list[str] = field(default_factory=list)
    unit: str = "clip"
    estimated_cpu_seconds: dict[str, float] = field(default_factory=dict)

    def alpha_cost(self) -> dict[str, float] | None:
        """What ``magnify.alphas`` cost this build: CPU seconds of the stages that work once per alpha (those
        writing a feature with an ``alpha`` dim: ``magnify``, ``flow_onset_apex_magnified``) and their share of
        all stage CPU seconds."""
        per_alpha = {k: v for k, v in self.stage_cpu_seconds.items() if k in _alpha_stages()}
        total = sum(self.stage_cpu_seconds.values())
        if not per_alpha or not total:
            return None
        return {"alphas": self.alphas, "cpu_seconds": round(sum(per_alpha.values()), 2),
                "share": round(sum(per_alpha.values()) / total, 4)}

    def summary(self) -> str:
        lines = [f"{self.dataset}: {self.n_ok}/{self.n_samples} {self.unit}s built into {self.store} "
                 f"in {self.seconds:.1f} s",
                 "  stages run:    " + (", ".join(f"{k} {v}" for k, v in self.tasks_run.items()) or "none"),
                 "  stages cached: " + (", ".join(f"{k} {v}" for k, v in self.tasks_cached.items()) or "none")]
        if self.stage_seconds:
            lines.append("  task seconds:  " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items()))
        if self.estimated_cpu_seconds:
            measured = sum(v for k, v in self.stage_cpu_seconds.items() if k in self.estimated_cpu_seconds)
            lines.append(f"  CPU seconds:   {measured:.1f} of the tasks, estimated "
                         f"{sum(self.estimated_cpu_seconds.values()):.1f} at the start")
        cost = self.alpha_cost()
        if cost is not None:
            lines.append(f"  alpha list:    {cost['alphas']} alphas (magnify.alphas): magnify and magnified flows "
                         f"{cost['cpu_seconds']:.1f} CPU s, {cost['share']:.0%} of the stages' CPU")
        partial = {k: v for k, v in self.faces.items() if (v.get("face_fraction") or 0) < 1}
        if self.faces:
            lines.append(f"  face in every frame of {len(self.faces) - len(partial)} of {len(self.faces)} "
                         f"{self.unit}s" + (":" if partial else ""))
            lines += [f"    {k}: face in {v['face_fraction']:.0%} of frames ({v['frames_without_face']} without), "
                      f"{v.get('face_px')} px" for k, v in list(partial.items())[:10]]
            if len(partial) > 10:
                lines.append(f"    … {len(partial) - 10} more")
        if self.changed_sources:
            lines.append(f"  sources changed in place since they were built (rebuilt): "
                         f"{', '.join(self.changed_sources)}")
        lines += [f"  assumed: {a}" for a in self.assumptions]
        if self.skipped_rows:
            lines.append(f"  {_plural(len(self.skipped_rows), 'sheet row')} skipped:")
            lines += [f"    {q}" for q in self.skipped_rows]
        quirks = [q for q in self.quirks if q not in self.skipped_rows]
        if self.replaced:
            lines.append(f"  replaced {self.replaced} (--replace), with the features of stages this build did not run")
        if self.removed:
            lines.append(f"  removed {_plural(len(self.removed), 'clip')} the dataset does not list: "
                         f"{', '.join(self.removed)}")
        if quirks:
            lines.append(f"  {_plural(len(quirks), 'sheet/data quirk')} handled (see the report):")
            lines += [f"    {q}" for q in quirks[:10]]
            if len(quirks) > 10:
                lines.append(f"    … {len(quirks) - 10} more")
        if self.failures:
            lines.append(f"  {len(self.failures)} {self.unit} stages FAILED:" if self.unit == "video"
                         else f"  {len(self.failures)} clips FAILED:")
            lines += [f"    {f['error']}" for f in self.failures]
        return "\n".join(printable(line) for line in lines)  # labels, ids and paths come from sheets and folders


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def run_build(opts: BuildOptions, on_estimate: Callable[[Estimate], None] | None = None) -> BuildReport:
    """Build (or update) a store; returns the report (exit_code 1 if any clip failed).

    ``on_estimate`` receives the estimate (``opts.estimate``) before any task runs.
    """
    started = time.time()
    adapter = get_adapter(opts.dataset)
    _check_adapter_options(opts.dataset, adapter, opts.adapter_options)
    loaded: AdapterResult = adapter(Path(opts.root), opts.annotations, **opts.adapter_options)
    check_destination(Path(opts.store))
    stages_for(list(opts.stages) if opts.stages else None, loaded.unit)  # a stage the samples cannot have: refused now
    writer = StoreWriter(opts.store)
    try:
        writer.create()
        with BuildLock(opts.store):
            return _build_locked(opts, loaded, writer, started, on_estimate)
    except OSError as err:
        if out_of_space(err):
            raise DiskFullError(f"{opts.store}: no space left on its disk; free some and run the same build again: "
                                "it resumes from the features already written") from err
        raise


@dataclass(frozen=True)
class BuildPreview:
    """What a build would do, from cache keys alone (``mepipe build --dry-run``); nothing is computed or written.

    Attributes
    ----------
    stages : list of str
        The stages the build covers, in order.
    stale, cached : list of (str, str)
        (clip, stage) tasks that would run and that are up to date in the store.
    windows : dict of (str, str) to int
        For a long video's stale stage, how many of its windows would run.
    failing : dict of str to str
        Clips the dataset adapter already refuses, with the reason.
    changed_content : list of str
        Clips whose sources were rewritten in place (``fingerprint="content"`` only).
    reasons : dict of (str, str) to list of str
        Why each stale task runs (:func:`~mepipe.pipeline.staleness.stale_reasons`); clip builds.
    estimate : Estimate or None
        What the stale tasks will cost (``BuildOptions.estimate``).
    """

    stages: list[str]
    stale: list[tuple[str, str]]
    cached: list[tuple[str, str]]
    failing: dict[str, str]
    changed_content: list[str]
    windows: dict[tuple[str, str], int] = field(default_factory=dict)
    reasons: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    estimate: Estimate | None = None

    def format(self) -> str:
        """The totals and the estimate, one line per stage (tasks to run and cached, cost, why), then one line per
        (clip, stage) task."""
        run, cached = Counter(n for _, n in self.stale), Counter(n for _, n in self.cached)
        lines = [f"{len(self.stale)} tasks would run, {len(self.cached)} are cached"]
        if self.estimate is not None and self.stale:
            lines += self.estimate.lines()
        for name in self.stages:
            line = f"  {name}: {run[name]} to run, {cached[name]} cached"
            if self.estimate is not None and name in self.estimate.stages:
                line += f"; {self.estimate.stage_line(name)}"
            why = Counter(r for (s, n), rs in self.reasons.items() if n == name for r in rs)
            if why:
                line += "; why: " + "; ".join(f"{r} ({k})" for r, k in why.most_common())
            lines.append(line)
        if self.estimate is not None and DECODE in self.estimate.stages:
            lines.append(f"  {DECODE} (by the first stage reading sources): {self.estimate.stage_line(DECODE)}")
        tasks = sorted([(s, n, "run") for s, n in self.stale] + [(s, n, "cached") for s, n in self.cached],
                       key=lambda t: (t[0], self.stages.index(t[1])))
        lines += [f"{state:6s}  {sample}  {name}"
                  + (f" ({self.windows[(sample, name)]} windows)" if (sample, name) in self.windows and state == "run"
                     else "")
                  + (f"  ({'; '.join(self.reasons[(sample, name)])})" if (sample, name) in self.reasons else "")
                  for sample, name, state in tasks]
        lines += [f"fails   {sample}  dataset: {reason}" for sample, reason in sorted(self.failing.items())]
        return "\n".join(lines)


def preview_build(opts: BuildOptions) -> BuildPreview:
    """Plan a build without running it: which (clip, stage) tasks are stale and which are cached.

    Uses the build's own planning (:func:`~mepipe.pipeline.graph.plan_build`,
    the same cache keys), reads the store's recorded keys if it exists, and
    writes nothing (the store is neither created nor locked).
    """
    adapter = get_adapter(opts.dataset)
    _check_adapter_options(opts.dataset, adapter, opts.adapter_options)
    loaded: AdapterResult = adapter(Path(opts.root), opts.annotations, **opts.adapter_options)
    opts = _with_params(opts, loaded.unit)
    stages = stages_for(list(opts.stages) if opts.stages else None, loaded.unit)
    forced = _forced(opts, stages, loaded.unit)
    check_destination(Path(opts.store))
    plan_removal(StoreWriter(opts.store), Sources.of(opts.dataset, opts.root, opts.adapter_options),
                 {s.sample for s in loaded.samples}, replace=opts.replace, prune=opts.prune)
    contexts = [ClipContext.of(s) for s in loaded.samples if s.error is None]
    cuda = wants_cuda(opts.params, stages) and build_has_cuda(opts.scheduler)
    params = resolve_devices(opts.params, cuda)
    writer = StoreWriter(opts.store)
    plan = _plan(writer, loaded.unit, contexts, stages, params, forced, opts.fingerprint)
    failing = {s.sample: str(s.error) for s in loaded.samples if s.error}
    failing.update({q.sample: q.message for q in loaded.rejected})
    reasons = stale_reasons(writer, plan, contexts, params, forced) if loaded.unit == "clip" else {}
    estimate = _estimate(opts, loaded.unit, plan, contexts, stages, params) if opts.estimate else None
    return BuildPreview(stages, plan.stale, plan.cached, failing, plan.changed_content,
                        {t: len(w) for t, w in plan.windows.items()}, reasons, estimate)


def _estimate(opts: BuildOptions, unit: str, plan: Plan, contexts: list[ClipContext], stages: list[str],
              params: dict[str, Any]) -> Estimate:
    """The estimate of a build's stale tasks, on its workers (in-process with the ``sync`` scheduler): measured on
    one clip, or on a stretch of one long video (``unit="video"``)."""
    local = opts.scheduler == "sync"
    estimate = estimate_videos if unit == "video" else estimate_build
    return estimate(plan, {c.sample: c for c in contexts}, stages, params, opts.store,
                    workers=1 if local else opts.workers, processes=0 if local else opts.workers)


def _check_adapter_options(dataset: str, adapter, options: dict[str, Any]) -> None:
    """Refuse options the adapter does not take, naming those it does (rather than a TypeError)."""
    takes = [n for n, p in inspect.signature(adapter).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise UnknownNameError(f"dataset {dataset!r} takes no option {', '.join(unknown)}; "
                               f"its options: {', '.join(takes) or 'none'}")


def _with_params(opts: BuildOptions, unit: str) -> BuildOptions:
    """``opts`` with every parameter: the defaults for samples of ``unit`` where it gives none."""
    return opts if opts.params is not None else replace(opts, params=default_params(unit))


def _forced(opts: BuildOptions, stages: list[str], unit: str) -> set[str]:
    """The stages ``--force`` recomputes: those named and every stage of the build reading them."""
    forced = set().union(*(descendants(f, unit) for f in opts.force)) if opts.force else set()
    return forced & set(stages)


def _plan(writer: StoreWriter, unit: str, contexts, stages: list[str], params: dict[str, Any], forced: set[str],
          fingerprint: str) -> Plan:
    """The build's plan: per (clip, stage), or per window of each long video's stage."""
    if unit == "video":
        return plan_videos(writer, contexts, stages, params, forced, fingerprint)
    return plan_build(writer, contexts, stages, params, forced, fingerprint)


def _check_unit(writer: StoreWriter, unit: str) -> None:
    """Refuse to build long videos into a store of clips, or clips into one of long videos."""
    attrs = writer.root_attrs()
    held = attrs.get(UNIT_ATTR, "clip")
    if held != unit and attrs.get("state") != "empty":
        raise ConfigError(f"{writer.path} holds {held}s; build these {unit}s into another store (--store)")


def _build_locked(opts: BuildOptions, loaded: AdapterResult, writer: StoreWriter, started: float,
                  on_estimate: Callable[[Estimate], None] | None) -> BuildReport:
    unit = loaded.unit
    opts = _with_params(opts, unit)
    stages = stages_for(list(opts.stages) if opts.stages else None, unit)
    forced = _forced(opts, stages, unit)
    buildable = [s for s in loaded.samples if s.error is None]
    contexts = {s.sample: ClipContext.of(s) for s in buildable}
    listed = {s.sample for s in loaded.samples}
    removal = plan_removal(writer, Sources.of(opts.dataset, opts.root, opts.adapter_options), listed,
                           replace=opts.replace, prune=opts.prune)
    _check_unit(writer, unit)
    writer.update_root_attrs({"state": "building", "build_started": _iso(started),
                              **({UNIT_ATTR: unit} if unit == "video" else {})})
    writer.clear_staging()
    cuda = wants_cuda(opts.params, stages) and build_has_cuda(opts.scheduler)
    opts = replace(opts, params=resolve_devices(opts.params, cuda))  # keys and records name the real backend
    plan = _plan(writer, unit, contexts.values(), stages, opts.params, forced, opts.fingerprint)
    log.info("%d tasks to run, %d cached", len(plan.stale), len(plan.cached))
    estimate = _estimate(opts, unit, plan, list(contexts.values()), stages, opts.params) if opts.estimate else None
    if estimate is not None and on_estimate is not None:
        on_estimate(estimate)
    progress = BuildProgress(plan, stages, enabled=opts.progress, weights=estimate.task_seconds if estimate else None)
    try:
        if unit == "video":
            prepare_windows(writer, plan)
            tasks = build_video_graph(plan, contexts, str(opts.store), opts.params, cuda)
        else:
            tasks = build_graph(plan, contexts, str(opts.store), opts.params, cuda)
        records = execute(tasks, progress, opts.scheduler, opts.workers, cuda)
    finally:
        progress.close()
    for stage in dataset_stages_after(stages):
        run_dataset_stage(writer, stage, [s.sample for s in buildable], plan.keys, opts.params)
    results = [r for r in records if "window" not in r]  # a long video's stage reports once, when it finishes
    failures = [r for r in results if r["status"] == "failed"]
    failures += [{"sample": s.sample, "stage": "dataset", "file": "", "reason": s.error,
                  "error": f"{s.sample}: dataset: {s.error}"} for s in loaded.samples if s.error]
    failures += [{"sample": q.sample, "stage": "dataset", "file": q.source, "reason": q.message, "error": str(q)}
                 for q in loaded.rejected]
    errors = {f["sample"]: f["error"] for f in failures}
    table = _sample_table(loaded.samples, stages, writer, errors)
    faces = {s.sample: _face_events(writer, s.sample) for s in buildable
             if features.LANDMARKS.stage in stages and s.sample not in errors}
    removed = apply_removal(writer, removal, listed, stages)
    if removed:
        log.info("removed %d %ss the dataset does not list: %s", len(removed), unit, ", ".join(removed))
    writer.write_samples(table)
    if unit == "video":
        writer.write_intervals(loaded.intervals)
    for sample, digest in plan.source_digests.items():
        earlier = writer.clip_attrs(sample).get("cache_keys", {})
        writer.write_clip_attrs(sample, {"source_fingerprint": digest, TRUTH_ATTR: truth_record(contexts[sample]),
                                         "cache_keys": {**earlier, **{n: plan.keys[(sample, n)] for n in stages}}})
    report = BuildReport(
        store=str(opts.store), dataset=opts.dataset, started=_iso(started), seconds=time.time() - started,
        n_samples=len(loaded.samples) + len(loaded.rejected), n_ok=int((table["status"] != "failed").sum()),
        tasks_run=dict(Counter(r["stage"] for r in results if r["status"] == "ok")),
        tasks_cached=dict(Counter(n for _, n in plan.cached)),
        stage_seconds=_stage_seconds(records, stages), stage_cpu_seconds=_stage_seconds(records, stages, "cpu_"),
        failures=[{k: f.get(k, "") for k in ("sample", "stage", "file", "reason", "error")} for f in failures],
        quirks=[str(q) for q in loaded.quirks], exit_code=1 if failures else 0,
        changed_sources=plan.changed_content, faces=faces, alphas=_n_alphas(opts.params),
        assumptions=list(loaded.assumptions), removed=removed, replaced=removal.replaced,
        skipped_rows=[str(q) for q in loaded.quirks if q.kind in SKIPPED_ROW_KINDS], unit=unit,
        estimated_cpu_seconds=estimate.stage_seconds() if estimate else {})
    writer.update_root_attrs({"state": "complete", **_record(opts, loaded, stages, report, writer).to_attrs()})
    writer.consolidate()
    write_manifest(writer.path)
    writer.private_path(REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
    return report


def _stage_seconds(results: list[dict[str, Any]], stages: list[str], kind: str = "") -> dict[str, float]:
    """Task seconds per stage (``kind="cpu_"``: CPU seconds), with decoding the sources apart as ``decode``."""
    seconds = {n: round(sum(r.get(f"{kind}seconds", 0.0) for r in results if r["stage"] == n), 2)
               for n in stages if any(r["stage"] == n for r in results)}
    decode = sum(r.get(f"decode_{kind}seconds", 0.0) for r in results)
    return {"decode": round(decode, 2), **seconds} if decode else seconds


def _sample_table(samples: list[Sample], stages: list[str], writer: StoreWriter,
                  errors: dict[str, str]) -> pd.DataFrame:
    rows = []
    for s in samples:
        row = {"sample": s.sample, "dataset": s.dataset, "subject": s.subject, "clip": s.clip, "fps": s.fps,
               "n_frames": s.n_frames, "emotion": s.emotion, "objective_class": s.objective_class,
               "action_units": s.action_units, "au_codes": s.au_codes, "onset": s.onset, "apex": s.apex,
               "offset": s.offset, "flags": "; ".join(s.flags), "error": errors.get(s.sample, "")}
        events = {}
        if features.INTENSITY.stage in stages and not row["error"]:
            events = writer.feature_attrs(s.sample, features.INTENSITY.name).get("events", {})
        for col in ("onset_est", "apex_est", "offset_est", "apex_ncc"):
            row[col] = events.get(col)
        row["status"] = "failed" if row["error"] else ("flagged" if s.flags else "ok")
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))


_FACE_EVENTS = ("face_fraction", "frames_without_face", "face_px", "faces_at_start", "detector_runs")


def _face_events(writer: StoreWriter, sample: str) -> dict[str, Any]:
    """How the landmarks stage found the clip's face (stored with its output, so cached clips report too)."""
    events = writer.feature_attrs(sample, features.LANDMARKS.name).get("events", {})
    return {k: events.get(k) for k in _FACE_EVENTS}


def _record(opts: BuildOptions, loaded: AdapterResult, stages: list[str], report: BuildReport,
            writer: StoreWriter) -> BuildRecord:
    """The store's build record after this build.

    Features are those readable for at least one clip, including features an
    earlier build with other ``--features`` wrote; the stages of those keep
    the record of the build that ran them.
    """
    dataset = dataset_stages_after(stages)
    readable = writer.stored_features() | {f.name for s in STAGES.values() if s.scope == "dataset" for f in s.writes
                                           if f.scope == "dataset" and writer.dataset_attrs(f.name)}
    ran = {s.name: StageRecord(s.version, canonical(opts.params[s.name]), s.outputs, s.reads)
           for s in [*(STAGES[n].in_unit(report.unit) for n in stages), *dataset]}
    attrs = writer.root_attrs()
    earlier = BuildRecord.from_attrs(attrs, str(writer.path)).stages if "build" in attrs else {}
    kept = {n: r for n, r in earlier.items() if n not in ran and set(r.outputs) & readable}
    finished = time.time()
    return BuildRecord(
        schema_version=SCHEMA_VERSION,
        mepipe_version=mepipe_version(),
        dataset=opts.dataset,
        source_root=str(Path(opts.root).resolve()),
        annotations=SheetRecord(str(loaded.sheet), file_sha256(loaded.sheet)) if loaded.sheet else None,
        quirks=tuple(report.quirks),
        features=tuple(sorted(readable)),
        stages={n: {**kept, **ran}[n] for n in STAGES if n in kept or n in ran},
        shared_params={SOURCE: canonical(opts.params[SOURCE]),
                       **({WINDOW: canonical(opts.params[WINDOW])} if report.unit == "video" else {})},
        adapter_options=canonical(dict(opts.adapter_options)),
        build=BuildInfo(host=socket.gethostname(), user=os.environ.get("USER", ""), started=report.started,
                        finished=_iso(finished), seconds=round(report.seconds, 3),
                        scheduler=opts.scheduler or f"local processes x{opts.workers}",
                        fingerprint=opts.fingerprint, n_samples=report.n_samples, n_ok=report.n_ok,
                        n_failed=len(report.failures)),
    )


def _alpha_stages() -> set[str]:
    """Stages whose work grows with the number of magnification factors: those writing a feature with an alpha dim."""
    return {s.name for s in STAGES.values() if any("alpha" in f.dims for f in s.writes)}


def _n_alphas(params: dict[str, Any]) -> int:
    """Length of the alpha list, as the ``alpha`` dim's size rule reads it from the parameters."""
    rule = features.MAGNIFIED_SMALL.sizes["alpha"]
    return rule.resolve({rule.stage: canonical(params[rule.stage])})


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))
