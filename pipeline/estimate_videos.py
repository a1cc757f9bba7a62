"""What a build of long videos will cost before it is spent, measured on a stretch of one of its videos.

As for clips (:mod:`.estimate`), each stale stage runs for real, in a
temporary store, on data of the build itself: here a stretch of the first
video with windows to run (the next one if it fails), :data:`PROBE_FRAMES`
frames measured, built as one window by the stages' video forms and the
build's own window task (:func:`~.video_tasks.run_window`: the source-reading
stages share one decode, inputs are read and outputs written as chunks). A
stage whose window reads frames after it (flows: ``after``) gets them from
the stages it reads, which run over that many more frames; a stage the
probe needs but the build does not run is copied from the store instead.

The stretch sits in the middle of the video, not at its start. A flow's
cost per pair follows the motion in it (TV-L1 stops when its update is
small), and a long video's first frames are the least typical of it: the
recording starts, people settle, the first expression comes later. The
middle is no average either (expressions are sparse), but it is a frame of
the video's ordinary course; seeking there costs a video file one key
frame's decoding, a frame folder nothing.

Each stage's CPU seconds per row of its outputs (a frame; a pair for
consecutive-frame flows) are then scaled by the rows of every stale window
of every (video, stage): a resumed build counts only the windows left. The
decoding is scaled by the frames of the windows where a source-reading stage
runs. Work done once per window or per video (the face detection at each
window's first frame, the search for a video's reference frame) is spread
over the probe's rows, fewer than a window's: for these stages a small
overestimate, next to the flows' cost.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext, Window
from .estimate import DECODE, Estimate, Measurement, ProbeFailed, StageCost, first_probe, take_chain
from .graph import Plan
from .stages import STAGES, Stage
from .stages.windows import WINDOW, WindowParams
from .tasks import limit_threads
from .video_tasks import run_window

PROBE_FRAMES = 64
"""Frames of a long video each stale stage is measured on (fewer when the build's windows or the video are shorter)."""


def estimate_videos(plan: Plan, contexts: Mapping[str, ClipContext], stages: list[str], params: Mapping[str, Any],
                    store: str | os.PathLike, workers: int, processes: int) -> Estimate:
    """Estimate the CPU seconds of a long-video plan's stale windows by measuring them on a stretch of one video.

    Parameters are those of :func:`.estimate.estimate_build`. A probe that
    fails on every video tried is reported in each stage's note, not raised.
    """
    todo = {task: windows for task, windows in plan.windows.items() if windows}
    if not todo:
        return Estimate(workers=workers, unit="video")
    measure = [n for n in stages if any(name == n for _, name in todo)]
    samples = list(dict.fromkeys(sample for sample, _ in todo))
    return first_probe(samples, lambda sample: measure_video(contexts[sample], stages, measure, params, plan,
                                                             Path(store)),
                       lambda measured: scale_videos(measured, plan, contexts, stages, params, workers, processes),
                       plan, stages, workers, unit="video")


def probe_spans(needed: list[str], measure: list[str], params: Mapping[str, Any], fps: float,
                frames: int) -> dict[str, int]:
    """Rows each needed stage runs in the probe: ``frames`` for a stage measured, and as many as the stages reading
    it need with the frames after their window (``after``)."""
    spans: dict[str, int] = {}
    for name in reversed(needed):
        readers = [spans[r] + _video(r).window.overlap(params[r], fps) for r in spans if name in _video(r).reads]
        spans[name] = max([frames if name in measure else 0, *readers])
    return {n: spans[n] for n in needed}


def measure_video(video: ClipContext, stages: list[str], measure: list[str], params: Mapping[str, Any], plan: Plan,
                  store: Path) -> Measurement:
    """Run what the stages to measure need on a stretch of ``video``, in a temporary store; time each stage's rows.

    Raises
    ------
    ProbeFailed
        A stage failed on the stretch, or a stage it reads could not be copied from the store.
    """
    started = time.process_time()
    needed = _with_upstream(measure, stages)
    n = len(video.frame_numbers)
    frames = min(PROBE_FRAMES, params[WINDOW].frames, n)
    spans = probe_spans(needed, measure, params, video.fps, frames)
    length = min(max(spans.values()), n)
    start = min(max(0, n // 2 - frames // 2), n - length)
    probe = stretch(video, start, start + length)
    probe_params = {**params, WINDOW: WindowParams(max(2, length))}  # the stretch is one window: one chunk
    keys = {name: plan.keys[(video.sample, name)] for name in needed}
    out = Measurement(probe)
    limit_threads()
    with tempfile.TemporaryDirectory(prefix="mepipe-estimate-") as tmp:
        scratch = StoreWriter(Path(tmp) / "probe.zarr")
        scratch.create()
        chain: list[str] = []  # source-reading stages: one window task, one decode, as in a build
        for name in needed:
            if name not in measure:
                _copy_rows(StoreWriter(store), scratch, video, probe, start, name, keys[name], spans[name])
            elif _video(name).reads_source:
                chain.append(name)
            else:
                _run(chain, scratch, probe, spans, probe_params, keys, out)
                _run([name], scratch, probe, spans, probe_params, keys, out)
        _run(chain, scratch, probe, spans, probe_params, keys, out)
    out.total = time.process_time() - started
    return out


def stretch(video: ClipContext, start: int, stop: int) -> ClipContext:
    """Positions ``start`` to ``stop`` of a long video, as a video of its own (no annotated frame in it)."""
    return replace(video, frame_files=video.frame_files[start:stop] if video.frame_files else (),
                   frame_numbers=video.frame_numbers[start:stop], truth=(None, None, None), window=None)


def _video(name: str) -> Stage:
    return STAGES[name].for_videos()


def _with_upstream(names: list[str], stages: list[str]) -> list[str]:
    """The stages and everything their video forms read, in build order."""
    wanted = set(names)
    for name in reversed(stages):
        if name in wanted:
            wanted.update(_video(name).reads)
    return [n for n in stages if n in wanted]


def _copy_rows(real: StoreWriter, scratch: StoreWriter, video: ClipContext, probe: ClipContext, start: int,
               name: str, key: str, rows: int) -> None:
    """The rows of a stage the build does not run, from the build's store into the scratch store's one window."""
    stage = _video(name)
    count = stage.window.rows(len(probe.frame_numbers), Window(0, 0, rows))
    try:
        for feature in stage.outputs:
            array = real.read_window(video.sample, feature, key, start, start + count)
            scratch.write_window(probe.sample, name, key, feature, 0, array,
                                 length=len(probe.frame_numbers) - stage.window.shorter_by,
                                 chunk=max(2, len(probe.frame_numbers)), frame_numbers=probe.frame_numbers)
    except (OSError, ValueError) as err:
        raise ProbeFailed(f"{name}: its stored features could not be read: {err}") from None


def _run(chain: list[str], scratch: StoreWriter, probe: ClipContext, spans: Mapping[str, int],
         params: Mapping[str, Any], keys: Mapping[str, str], out: Measurement) -> None:
    """Run ``chain`` on the probe's first rows as one window task; record each stage's CPU seconds and rows."""
    names = take_chain(chain, out)
    if not names:
        return
    n = len(probe.frame_numbers)
    window = Window(0, 0, min(n, max(spans[name] for name in names)))
    for record in run_window(str(scratch.path), [_video(name) for name in names], probe, window, params, keys):
        if record["status"] != "ok":
            raise ProbeFailed(record.get("error") or record["status"])
        stage = _video(record["stage"])
        out.seconds[stage.name] = record["cpu_seconds"]
        out.units[stage.name] = stage.window.rows(n, window)
        if "decode_cpu_seconds" in record:
            out.decode_seconds += record["decode_cpu_seconds"]
            out.decoded_frames += min(window.stop + stage.window.overlap(params[stage.name], probe.fps), n)


def scale_videos(measured: Measurement, plan: Plan, contexts: Mapping[str, ClipContext], stages: list[str],
                 params: Mapping[str, Any], workers: int, processes: int) -> Estimate:
    """The estimate: each stale (video, stage)'s rows in its windows left times its stage's measured CPU seconds
    per row, the decoding of the frames of every window where a source-reading stage runs, and each stage's setup
    once per fresh worker process that runs its windows."""
    per_row = {n: measured.seconds[n] / measured.units[n] for n in measured.seconds if measured.units.get(n)}
    task_seconds: dict[tuple[str, str], float] = {}
    rows: Counter = Counter()
    window_tasks: Counter = Counter()
    for sample, name in plan.stale:
        windows = plan.windows.get((sample, name), [])
        count = sum(_video(name).window.rows(len(contexts[sample].frame_numbers), w) for w in windows)
        rows[name] += count
        window_tasks[name] += len(windows)
        if name in per_row:
            task_seconds[(sample, name)] = per_row[name] * count
    decode_per_frame = measured.decode_seconds / measured.decoded_frames if measured.decoded_frames else None
    first, decoded = _decoding(plan, contexts, params)
    out: dict[str, StageCost] = {}
    if first:
        out[DECODE] = StageCost(DECODE, len(first), "frame", sum(decoded.values()), decode_per_frame,
                                note="no source-reading stage measured")
        for sample, name in first.items():
            if decode_per_frame is not None:
                task_seconds[(sample, name)] = task_seconds.get((sample, name), 0.0) + \
                    decode_per_frame * decoded[sample]
    stale = Counter(name for _, name in plan.stale)
    for name in (n for n in stages if stale[n]):
        unit = "pair" if _video(name).window.shorter_by else "frame"
        out[name] = StageCost(name, stale[name], unit, rows[name], per_row.get(name),
                              measured.setup.get(name, 0.0), min(processes, window_tasks[name]),
                              note="not measured")
    return Estimate(out, task_seconds, workers, measured.probe.sample, len(measured.probe.frame_numbers),
                    measured.total, unit="video", probe_from=measured.probe.frame_numbers[0],
                    spread_over=max(window_tasks.values(), default=0))


def _decoding(plan: Plan, contexts: Mapping[str, ClipContext],
              params: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """Per video, its first stale source-reading stage (which the decoding is counted with) and the frames decoded:
    those of every window where such a stage runs, with the frames after it that the stage reads."""
    first: dict[str, str] = {}
    spans: dict[str, dict[int, int]] = {}
    for sample, name in plan.stale:
        stage = _video(name)
        if not stage.reads_source:
            continue
        first.setdefault(sample, name)
        ctx = contexts[sample]
        n = len(ctx.frame_numbers)
        after = stage.window.overlap(params[name], ctx.fps)
        for w in plan.windows.get((sample, name), []):
            stop = min(w.stop + after, n)
            spans.setdefault(sample, {})[w.start] = max(spans.get(sample, {}).get(w.start, 0), stop - w.start)
    return first, {sample: sum(spans.get(sample, {}).values()) for sample in first}
