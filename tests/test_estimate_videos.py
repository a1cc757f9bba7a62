"""The cost of a long-video build before it is spent: the probe's spans, the scaling, and the estimate of real builds.

The scaling is worked by hand on made-up measurements; the measurement runs
the real stages on a stretch of a video strung from the small demo's faces
(the long-video build tests' two videos, windows of 16 frames), and its tests
check what it measured against what the build then runs, never how long it
took.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from long_video_files import write_samm_lv
from mepipe.pipeline import video_graph
from mepipe.pipeline.build import preview_build, run_build
from mepipe.pipeline.context import ClipContext, Window
from mepipe.pipeline.estimate import DECODE, Measurement
from mepipe.pipeline.estimate_videos import probe_spans, scale_videos, stretch
from mepipe.pipeline.graph import Plan
from mepipe.pipeline.stages import params_from_mapping
from test_long_video_build import CONFIG, INTERVALS, VIDEOS, WINDOW, options

STAGE_NAMES = ["landmarks", "align", "flow_consecutive", "kim", "flow_apart", "roi_motion"]


def _video(sample: str, n: int) -> ClipContext:
    return ClipContext(sample, tuple(f"/v/{sample}/{i}.jpg" for i in range(1, n + 1)), tuple(range(1, n + 1)), None,
                       200.0, (None, None, None))


def test_the_probe_runs_each_stage_over_the_rows_its_readers_need_after_their_window():
    params = params_from_mapping(CONFIG, "video")  # roi_motion, flow_apart: k = 4 frames after; flow_consecutive: 1
    spans = probe_spans(STAGE_NAMES, STAGE_NAMES, params, 200.0, 16)
    assert spans == {"landmarks": 20, "align": 20, "flow_consecutive": 16, "kim": 16, "flow_apart": 16,
                     "roi_motion": 16}
    only_flow = probe_spans(["landmarks", "align", "flow_consecutive"], ["flow_consecutive"], params, 200.0, 16)
    assert only_flow == {"landmarks": 17, "align": 17, "flow_consecutive": 16}


def test_a_stretch_is_a_video_of_its_own_frames():
    part = stretch(_video("v", 100), 40, 60)
    assert part.frame_numbers == tuple(range(41, 61)) and part.frame_files[0] == "/v/v/41.jpg"
    assert part.window is None and part.truth == (None, None, None)


def test_the_estimate_is_each_window_s_rows_times_the_stage_s_measured_cost():
    """Made-up measurements on a 20-frame stretch, worked by hand: landmarks 5 ms a row and 0.8 s of models per
    worker, consecutive flows 75 ms a pair, decoding 8 ms a frame. Video a (40 frames, windows of 16: 0-15, 16-31,
    32-39) has landmarks' windows 1 and 2 left and all three of its flows; video b (33 frames) all of landmarks'
    (its last window is one frame: no pair in it)."""
    a, b = _video("a", 40), _video("b", 33)
    windows_a = [Window(0, 0, 16), Window(1, 16, 32), Window(2, 32, 40)]
    windows_b = [Window(0, 0, 16), Window(1, 16, 32), Window(2, 32, 33)]
    plan = Plan(stale=[("a", "landmarks"), ("a", "flow_consecutive"), ("b", "landmarks"), ("b", "flow_consecutive")],
                windows={("a", "landmarks"): windows_a[1:], ("a", "flow_consecutive"): windows_a,
                         ("b", "landmarks"): windows_b, ("b", "flow_consecutive"): windows_b})
    measured = Measurement(stretch(a, 10, 30), seconds={"landmarks": 0.1, "flow_consecutive": 1.2},
                           units={"landmarks": 20, "flow_consecutive": 16}, setup={"landmarks": 0.8},
                           decode_seconds=0.16, decoded_frames=20, total=3.0)
    params = params_from_mapping(CONFIG, "video")
    estimate = scale_videos(measured, plan, {"a": a, "b": b}, ["landmarks", "flow_consecutive"], params,
                            workers=2, processes=2)
    assert estimate.stages["landmarks"].units == 24 + 33
    assert estimate.stages["flow_consecutive"].units == 39 + 32  # pairs: one fewer than frames, none in b's window 2
    assert estimate.stages["flow_consecutive"].unit == "pair" and estimate.stages["landmarks"].unit == "frame"
    assert estimate.stages[DECODE].units == 24 + 33  # frames of the windows where landmarks runs
    assert estimate.task_seconds[("a", "landmarks")] == pytest.approx(24 * 0.005 + 24 * 0.008)
    assert estimate.task_seconds[("b", "flow_consecutive")] == pytest.approx(32 * 0.075)
    assert estimate.stages["landmarks"].setups == 2
    assert estimate.cpu_seconds == pytest.approx(57 * 0.005 + 71 * 0.075 + 57 * 0.008 + 2 * 0.8)
    assert estimate.spread_over == 6 and estimate.wall_seconds() == pytest.approx(estimate.cpu_seconds / 2)
    assert "measured on video a, 20 frames from frame 11" in estimate.headline()


@pytest.fixture
def lv_root(small_demo, tmp_path) -> Path:
    return write_samm_lv(small_demo, tmp_path / "samm-lv", VIDEOS, INTERVALS)


def _count_rows(monkeypatch) -> Counter:
    """Rows each stage's window tasks write in the builds that follow, and frames decoded (``decode``)."""
    rows: Counter = Counter()
    run = video_graph.run_window

    def counting(store, stages, video, window, params, keys, *upstream):
        records = run(store, stages, video, window, params, keys, *upstream)
        n = len(video.frame_numbers)
        for stage, record in zip(stages, records):
            if record["status"] == "ok":
                rows[stage.name] += stage.window.rows(n, window)
                if "decode_cpu_seconds" in record:
                    rows[DECODE] += min(window.stop + stage.window.overlap(params[stage.name], video.fps), n) \
                        - window.start
        return records

    monkeypatch.setattr(video_graph, "run_window", counting)
    return rows


@pytest.mark.slow
def test_a_dry_run_measures_every_stale_stage_on_a_stretch_and_the_build_runs_those_rows(lv_root, tmp_path,
                                                                                          monkeypatch):
    store = tmp_path / "lv.zarr"
    preview = preview_build(options(lv_root, store, estimate=True))
    estimate = preview.estimate
    assert not store.exists()
    assert estimate.unit == "video" and estimate.probe == "001_1"
    assert estimate.probe_frames == WINDOW + 4 and estimate.probe_from == 1 + 28 - WINDOW // 2  # the middle; k = 4
    assert set(estimate.stages) == set(STAGE_NAMES) | {DECODE}
    for name, cost in estimate.stages.items():
        assert cost.unit_seconds is not None and cost.unit_seconds > 0, name
    assert "measured on video 001_1, 20 frames from frame 21" in preview.format()
    rows = _count_rows(monkeypatch)
    report = run_build(options(lv_root, store, estimate=True))
    assert report.exit_code == 0, report.summary()
    assert {n: c.units for n, c in estimate.stages.items()} == dict(rows)
    assert rows["roi_motion"] == rows["flow_apart"] == 56 + 40 and rows["flow_consecutive"] == 55 + 39
    assert set(report.estimated_cpu_seconds) == set(STAGE_NAMES) | {DECODE}

    forced = preview_build(options(lv_root, store, estimate=True, force=("roi_motion",))).estimate
    assert set(forced.stages) == {"roi_motion"}  # landmarks and align are copied from the store for the probe
    assert forced.stages["roi_motion"].units == 96 and forced.stages["roi_motion"].unit_seconds > 0


@pytest.mark.slow
def test_a_resumed_build_s_estimate_counts_only_the_windows_left(lv_root, tmp_path, monkeypatch):
    store = tmp_path / "lv.zarr"
    run = video_graph.run_window

    def killed_at_window_2(store, stages, video, window, params, keys, *upstream):
        if video.sample == "001_1" and window.index == 2:
            return [{"sample": video.sample, "stage": s.name, "window": 2, "key": keys[s.name], "status": "failed",
                     "file": "", "error": "001_1: killed (simulated)"} for s in stages]
        return run(store, stages, video, window, params, keys, *upstream)

    monkeypatch.setattr(video_graph, "run_window", killed_at_window_2)
    assert run_build(options(lv_root, store, stages=("align",))).exit_code == 1
    monkeypatch.setattr(video_graph, "run_window", run)

    estimate = preview_build(options(lv_root, store, stages=("align",), estimate=True)).estimate
    assert estimate.stages["landmarks"].units == WINDOW and estimate.stages["align"].units == WINDOW
    assert estimate.stages[DECODE].units == WINDOW and estimate.stages["landmarks"].tasks == 1
    rows = _count_rows(monkeypatch)
    assert run_build(options(lv_root, store, stages=("align",))).exit_code == 0
    assert {n: c.units for n, c in estimate.stages.items()} == dict(rows)


def test_a_probe_that_fails_on_every_video_is_reported_not_raised(lv_root, tmp_path):
    for video, position in (("001_1", 28), ("002_1", 20)):  # a frame of each video's middle cannot be read
        (lv_root / "SAMM_longvideos" / video / f"{video}_{position + 1:05d}.jpg").write_bytes(b"not a jpeg")
    preview = preview_build(options(lv_root, tmp_path / "lv.zarr", stages=("landmarks",), estimate=True))
    cost = preview.estimate.stages["landmarks"]
    assert cost.unit_seconds is None
    assert cost.note.startswith("every probe video failed: 001_1: ") and "; 002_1: " in cost.note
    assert "not estimated: landmarks" in preview.format()
