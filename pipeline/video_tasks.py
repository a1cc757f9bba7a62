"""A long video's units of work: one window of one or more stages, and the finishing of a stage.

A window task runs the stale stages of one window of a video: it reads each
stage's inputs over the window and the overlap its stage declares (finished
or still being built, :meth:`StoreWriter.read_window
<mepipe.featurestore.writer.StoreWriter.read_window>`), decodes the window's
source frames at most once for the stages that read them (landmarks and
align share one decode, as a clip's chain task does), writes the window's
rows of every output as chunks of features being built under their cache
keys, and then records the window as done. It never raises for bad data: a
window that fails is recorded, and its stage is not finished for that video.

A finishing task runs once per (video, stage) after its windows: when every
window is recorded as done (in this build or in an earlier, killed one), it
combines their events and moves the features into place with their key.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from mepipe.featurestore.writer import StoreWriter

from .context import ClipContext, Window
from .stages import SOURCE, SOURCE_FRAMES, Stage
from .stages.frames import DecodedClip, FrameBuffer, VideoFrames, load_frames
from .stages.windows import SOURCE_VIDEO, WINDOW
from .tasks import blocked_by, failure, flat, limit_threads, recorded_params

_DECODED = FrameBuffer()
"""What this worker process decodes every window into (one task at a time: a worker runs one thread)."""


def run_window(store_path: str, stages: Sequence[Stage], video: ClipContext, window: Window,
               params: Mapping[str, Any], keys: Mapping[str, str], *upstream: Any) -> list[dict[str, Any]]:
    """Run the video forms ``stages`` on one window of ``video``; one record per stage.

    ``keys`` are the video's cache keys by stage (its own and those it
    reads), ``upstream`` the records of the window tasks it waits for. The
    record of the stage that decoded carries ``decode_seconds`` and
    ``decode_cpu_seconds``, apart from its own ``seconds``.
    """
    writer = StoreWriter(store_path)
    recorded = recorded_params(params)
    chunk = params[WINDOW].frames
    n_frames = len(video.frame_numbers)
    records: list[dict[str, Any]] = []
    decoded = None
    for stage in stages:
        key = keys[stage.name]
        record: dict[str, Any] = {"sample": video.sample, "stage": stage.name, "window": window.index, "key": key}
        blocked = blocked_by(video.sample, [r for r in [*flat(upstream), *records] if r.get("stage") in stage.reads])
        if blocked:
            records.append({**record, "status": "skipped", "error": f"needs {blocked}, which did not complete"})
            continue
        limit_threads()
        start, cpu_start = time.perf_counter(), time.process_time()
        decode_seconds = decode_cpu = 0.0
        length = n_frames - stage.window.shorter_by
        stop = min(window.stop + stage.window.overlap(params[stage.name], video.fps), n_frames)
        ctx = video.span(window, stop)
        events: dict[str, Any] = {}
        try:
            if window.start < length:  # else the window holds no row of this stage (a last one-frame window's pair)
                inputs: dict[str, Any] = {f.name: writer.read_window(video.sample, f.name, keys[f.stage], window.start,
                                                                     stop) for f in stage.inputs}
                if stage.reads_source:
                    if decoded is None or len(decoded) < len(ctx.frame_numbers):
                        decoded = load_frames(ctx, params[SOURCE], buffer=_DECODED)
                        decode_seconds, decode_cpu = time.perf_counter() - start, time.process_time() - cpu_start
                    inputs[SOURCE_FRAMES] = DecodedClip(decoded[:len(ctx.frame_numbers)], "")
                    inputs[SOURCE_VIDEO] = VideoFrames(video, params[SOURCE])
                out = stage.run(ctx, inputs, params)
                rows = stage.window.rows(n_frames, window)
                for name in stage.outputs:
                    array = out.arrays[name]
                    if len(array) != rows:
                        raise ValueError(f"{name!r} came out with {len(array)} rows for the {rows} of window "
                                         f"{window.index} (frames {window.start}..{window.stop - 1})")
                    writer.write_window(video.sample, stage.name, key, name, window.start, array, length=length,
                                        chunk=chunk, frame_numbers=video.frame_numbers, stage_params=recorded)
                events = out.events
            seconds = time.perf_counter() - start - decode_seconds
            cpu_seconds = time.process_time() - cpu_start - decode_cpu
            writer.mark_window(video.sample, stage.name, key, window.index,
                               {"events": events, "seconds": seconds, "cpu_seconds": cpu_seconds})
        except Exception as e:  # a bad window, a kernel bug or an unexpected input: record it, go on
            record = failure(record, ctx, stage.name, e)
        else:
            record = {**record, "status": "ok", "events": events, "seconds": seconds, "cpu_seconds": cpu_seconds}
            if decode_seconds:
                record |= {"decode_seconds": decode_seconds, "decode_cpu_seconds": decode_cpu}
        records.append(record)
    return records


def finish_stage(store_path: str, stage: Stage, video: ClipContext, key: str, n_windows: int,
                 *windows: Any) -> dict[str, Any]:
    """Move a video's features of ``stage`` into place once all ``n_windows`` windows are done; one record.

    ``windows`` are the records of this build's window tasks of the stage;
    a window missing from the done records makes the stage fail for the
    video with the first failure among them (its finished windows stay, for
    the next build).
    """
    record: dict[str, Any] = {"sample": video.sample, "stage": stage.name, "key": key, "windows": n_windows}
    writer = StoreWriter(store_path)
    marks = writer.window_marks(video.sample, stage.name, key)
    missing = [i for i in range(n_windows) if i not in marks]
    if missing:
        failed = [r for r in flat(windows) if r.get("stage") == stage.name and r.get("status") != "ok"]
        first = failed[0] if failed else {"error": f"{video.sample}: {stage.name}: window {missing[0]} was not run"}
        reason = f"{len(missing)} of {n_windows} windows did not complete; the first: {first['error']}"
        return {**record, "status": "failed", "file": first.get("file", ""), "reason": reason,
                "error": f"{video.sample}: {stage.name}: {reason}"}
    events = stage.window.events([marks[i].get("events", {}) for i in range(n_windows)])
    try:
        writer.finish_windows(video.sample, stage.name, key, stage.outputs,
                              {"stage_version": stage.version, "events": events})
    except Exception as e:  # the features could not be moved into place: the stage fails for this video
        return failure(record, video, stage.name, e)
    return {**record, "status": "ok", "events": events, "seconds": 0.0, "cpu_seconds": 0.0}
