"""Cost before it is spent (issue 23, item 1): each stage's cost rule, the scaling, and the estimate of a real build.

The scaling is checked by hand on made-up measurements; the measurement
itself runs the real stages on a clip of the small demo, so its tests check
what it measured (every stale stage, in its units) but never how long it took.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.estimate import DECODE, Measurement, probe_window, scale_measurement
from mepipe.pipeline.graph import Plan
from mepipe.pipeline.stages import STAGES, default_params
from mepipe.pipeline.stages.cost import spread

from conftest import build_options, demo_build_params


def _ctx(sample: str, numbers, truth=(None, None, None), video: str | None = None) -> ClipContext:
    numbers = tuple(numbers)
    files = () if video else tuple(f"/data/{sample}/{n}.jpg" for n in numbers)
    return ClipContext(sample, files, numbers, video, 200.0, truth)


def _units(name: str, ctx: ClipContext, params=None) -> float:
    stage = STAGES[name]
    own, read = stage.kernel_params(params or default_params())
    return stage.cost.units(ctx, own, read)


def test_sampled_pairs_sit_at_the_middles_of_equal_parts_of_the_clip():
    assert spread(10) == [1, 5, 8]  # int(0.5 * 10 / 3), int(1.5 * 10 / 3), int(2.5 * 10 / 3)
    assert spread(2) == [0, 1]  # fewer pairs than samples: all of them
    assert spread(23, 2) == [5, 17]


def test_each_stage_counts_its_own_units():
    clip = _ctx("c", range(100, 124))
    assert _units("landmarks", clip) == 24 and _units("kim", clip) == 24
    assert _units("flow_first_each", clip) == 23 and _units("flow_onset_apex", clip) == 1
    params = default_params()
    params["magnify"] = dataclasses.replace(params["magnify"], alphas=(5.0, 8.0, 11.0))
    assert _units("magnify", clip, params) == 24 * (3 + 1)  # every alpha at the small size, the test alpha at size


def test_consecutive_flow_counts_no_pair_across_a_gap_in_the_frame_numbers():
    # 10-11, 11-12 and 14-15 are neighbours; 12-14 straddles the missing frame 13 and is never solved
    assert _units("flow_consecutive", _ctx("c", (10, 11, 12, 14, 15))) == 3


@pytest.mark.slow
def test_magnified_flow_units_count_the_pairs_its_kernel_solves(full_store, small_demo):
    """Xia's five frame subsets give each clip its own number of distinct onset->apex pairs; the cost rule counts
    them from the sample id and the sheet, before any stage ran, as the kernel finds them from the stored states."""
    from mepipe.featurestore import features, open_store
    from mepipe.pipeline.datasets import get_adapter
    from mepipe.pipeline.stages.subsets import XIA_LEVELS

    store = open_store(str(full_store))
    params = demo_build_params()
    params["flow_onset_apex_magnified"] = dataclasses.replace(params["flow_onset_apex_magnified"],
                                                              subset_levels=XIA_LEVELS, backend="opencv")
    params["magnify"] = dataclasses.replace(params["magnify"], alphas=(5.0, 8.0))
    stage = STAGES["flow_onset_apex_magnified"]
    own, read = stage.kernel_params(params)
    counts = []
    for sample in get_adapter("demo")(small_demo, None).samples[:3]:
        ctx = ClipContext.of(sample)
        inputs = {f.name: store.read(f.name, ctx.sample) for f in stage.inputs}
        solved = stage.kernel(ctx, inputs, own, read).arrays[features.FLOW_ONSET_APEX_MAGNIFIED.name].shape[:2]
        counts.append(int(np.prod(solved)))
        assert stage.cost.units(ctx, own, read) == counts[-1], ctx.sample
    assert max(counts) > 2, counts  # some subset dropped the onset or the apex: more than one pair per alpha


def test_a_long_clip_is_probed_on_the_frames_around_its_apex():
    clip = _ctx("long", range(1000, 1500), truth=(350, 400, 450))
    window = probe_window(clip, frames=200)
    assert window.frame_numbers == tuple(range(1300, 1500))  # 200 frames around index 400, moved inside the clip
    assert window.frame_files == clip.frame_files[300:]
    assert window.truth == (50, 100, 150)
    short = _ctx("short", range(24))
    assert probe_window(short, frames=200) is short
    video = probe_window(_ctx("v", range(500), truth=(350, 400, 450), video="/data/v.mp4"), frames=200)
    assert video.frame_numbers == tuple(range(200)) and video.truth == (None, None, None)  # decoded from the start


def test_the_estimate_is_each_task_s_units_times_its_stage_s_measured_cost():
    """Made-up measurements on a 24-frame probe, worked by hand: landmarks 10 ms a frame and 0.8 s of models per
    worker, first->each flows 0.1 s a pair, decoding 2 ms a frame; clip a has 24 frames, clip b 30."""
    a, b = _ctx("a", range(24)), _ctx("b", range(30))
    plan = Plan(stale=[("a", "landmarks"), ("a", "flow_first_each"), ("b", "landmarks")],
                cached=[("b", "flow_first_each")])
    measured = Measurement(a, seconds={"landmarks": 0.24, "flow_first_each": 0.3},
                           units={"landmarks": 24, "flow_first_each": 3}, setup={"landmarks": 0.8},
                           decode_seconds=0.048, decoded_frames=24, total=2.0)
    estimate = scale_measurement(measured, plan, {"a": a, "b": b}, ["landmarks", "flow_first_each"],
                                 default_params(), workers=2, processes=2)
    assert estimate.task_seconds[("b", "landmarks")] == pytest.approx(0.30 + 30 * 0.002)  # its frames, decoded
    assert estimate.task_seconds[("a", "flow_first_each")] == pytest.approx(23 * 0.1)
    assert estimate.stages[DECODE].units == 54 and estimate.stages["landmarks"].units == 54
    assert estimate.stages["landmarks"].setups == 2  # both workers load the models: two clips to share
    assert estimate.cpu_seconds == pytest.approx(0.24 + 0.30 + 2.3 + 54 * 0.002 + 2 * 0.8)
    assert estimate.wall_seconds() == pytest.approx(estimate.cpu_seconds / 2)
    assert estimate.stage_seconds() == {DECODE: 0.11, "landmarks": 2.14, "flow_first_each": 2.3}
    assert "54 frames x 10 ms + 0.80 s per worker x 2" in estimate.stage_line("landmarks")


def test_a_stage_without_a_cost_rule_is_named_as_not_estimated():
    a = _ctx("a", range(24))
    plan = Plan(stale=[("a", "appearance_mask")])
    estimate = scale_measurement(Measurement(a), plan, {"a": a}, ["appearance_mask"], default_params(), 1, 1)
    assert estimate.stages["appearance_mask"].unit_seconds is None
    assert "not estimated: appearance_mask" in estimate.headline()


def test_a_dry_run_measures_every_stale_stage_on_one_clip_and_writes_nothing(small_demo, tmp_path):
    from mepipe.pipeline.build import preview_build

    store = tmp_path / "new.zarr"
    opts = build_options(small_demo, store, estimate=True, params=demo_build_params(),
                         stages=("landmarks", "align", "apex", "flow_consecutive", "flow_onset_apex"))
    preview = preview_build(opts)
    estimate = preview.estimate
    assert not store.exists()
    assert estimate.probe == "001_1_1" and estimate.probe_frames == 24
    stale = {name for _, name in preview.stale}
    assert set(estimate.stages) == stale | {DECODE}
    for name, cost in estimate.stages.items():
        assert cost.unit_seconds is not None and cost.unit_seconds > 0, name
        assert cost.tasks == 6, name
    assert estimate.stages["flow_consecutive"].units == 6 * 23 and estimate.stages["align"].units == 6 * 24
    assert estimate.stages["landmarks"].setups == 0  # the sync scheduler runs here, where the models are loaded
    assert sum(estimate.task_seconds.values()) == pytest.approx(estimate.cpu_seconds)
    text = preview.format().splitlines()
    assert text[1].startswith("estimate: ") and "measured on clip 001_1_1, 24 frames" in text[1]
    assert any(line.startswith("  flow_consecutive: 6 to run, 0 cached; ") and "138 pairs x " in line for line in text)
    assert any(line.startswith("  decode (by the first stage reading sources): ") for line in text)


@pytest.mark.slow
def test_a_build_prints_its_estimate_before_any_task_and_records_it(store_copy, small_demo):
    """A forced rerun of apex: the probe reads the clip's cached crops and magnified frames from the store."""
    from mepipe.featurestore.writer import StoreWriter
    from mepipe.pipeline.build import run_build

    seen = []

    def on_estimate(estimate):
        keys = {StoreWriter(store_copy).stored_key(s, "intensity") for s in ("001_1_1", "002_3_1")}
        seen.append((estimate, keys))

    before = {StoreWriter(store_copy).stored_key(s, "intensity") for s in ("001_1_1", "002_3_1")}
    report = run_build(build_options(small_demo, store_copy, force=("apex",), estimate=True), on_estimate)
    (estimate, keys), = seen
    assert keys == before  # nothing rewritten yet when the estimate came
    assert set(estimate.stages) == {"apex"} and estimate.stages["apex"].units == 6 * 24
    assert set(report.estimated_cpu_seconds) == {"apex"} and "apex" in report.stage_cpu_seconds
    assert "estimated" in report.summary()
