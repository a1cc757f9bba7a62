"""Building long videos window by window, on the demo's faces strung into SAMM Long Videos and into a video file.

Two videos (56 and 40 frames) in windows of 16 frames: every stored array
is chunked per window, a stretch of frames reads only its chunks, each
windowed stage equals its kernel run on the whole video, a failed window
keeps the others for the next build, and stages that need annotated clips
are refused.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from long_video_files import read_all, write_samm_lv, write_video
from mepipe.featurestore import open_store
from mepipe.featurestore.errors import ConfigError, UnknownNameError
from mepipe.featurestore.features import ROI_REGIONS
from mepipe.featurestore.integrity import IntegrityError
from mepipe.featurestore.layout import WINDOWS_DIR
from mepipe.pipeline.build import BuildOptions, run_build
from mepipe.pipeline.destination import DestinationError
from mepipe.pipeline.demo.build_config import DEMO_TVL1
from mepipe.pipeline.stages import STAGES, params_from_mapping
from mepipe.pipeline.stages.flow_apart import flow_apart
from mepipe.pipeline.stages.flow_consecutive import flow_consecutive
from mepipe.pipeline.stages.frames import FramesParams, read_image, read_video
from mepipe.pipeline.stages.kim import rgb_frames
from mepipe.pipeline.stages.roi_motion import roi_motion

WINDOW = 16
VIDEOS = {"001_1": 56, "002_1": 40}
INTERVALS = [[1, "001_1_1", 1, 30, 36, 44, 15, "Micro - 1/2", "12", None],
             [2, "002_1_1", 1, 5, 12, 35, 31, "Macro", "4", None]]
CONFIG = {"window": {"frames": WINDOW}, "align": {"size": 64}, "kim": {"size": 32},
          "flow_consecutive": {"size": [32, 32], "tvl1": DEMO_TVL1, "backend": "opencv"},
          "flow_apart": {"size": [32, 32], "k": 4, "tvl1": DEMO_TVL1, "backend": "opencv"},
          "roi_motion": {"size": [32, 32], "k": 4, "tvl1": DEMO_TVL1, "backend": "opencv"}}


def options(root: Path, store: Path, **changes) -> BuildOptions:
    return BuildOptions(**{"dataset": "samm-lv", "root": root, "store": store, "scheduler": "sync", "progress": False,
                           "params": params_from_mapping(CONFIG, "video"), **changes})


@pytest.fixture(scope="session")
def lv_root(tmp_path_factory, small_demo) -> Path:
    return write_samm_lv(small_demo, tmp_path_factory.mktemp("lv") / "samm-lv", VIDEOS, INTERVALS)


@pytest.fixture(scope="session")
def lv_store(tmp_path_factory, lv_root) -> Path:
    store = tmp_path_factory.mktemp("lvstore") / "samm-lv.zarr"
    report = run_build(options(lv_root, store))
    assert report.exit_code == 0, report.summary()
    return store


@pytest.mark.slow
def test_a_long_video_store_holds_videos_intervals_and_features_chunked_by_window(lv_store):
    store = open_store(lv_store)
    assert store.unit == "video" and store.sample_ids == list(VIDEOS)
    assert dict(zip(store.samples["sample"], store.samples["n_frames"])) == VIDEOS
    assert store.intervals[["video", "name", "onset", "apex", "offset", "kind"]].values.tolist() == [
        ["001_1", "001_1_1", 30, 36, 44, "micro"], ["002_1", "002_1_1", 5, 12, 35, "macro"]]
    root = zarr.open_group(str(lv_store), mode="r")
    expected = {"crops": (56, 64, 64, 1), "frames_rgb": (56, 32, 32, 3), "flow_consecutive": (55, 2, 32, 32),
                "flow_apart": (56, 2, 32, 32),
                "roi_magnitude": (56, len(ROI_REGIONS)), "landmarks": (56, 68, 2)}
    for feature, shape in expected.items():
        array = root[f"clips/001_1/{feature}/{feature}"]
        assert (array.shape, array.chunks[0]) == (shape, WINDOW), feature
    xr = store.read_xr("roi_strain", "001_1")
    assert list(xr["region"].values) == list(ROI_REGIONS) and list(xr["frame"].values) == list(range(1, 57))
    roi = store.read("roi_magnitude", "001_1")
    assert np.isnan(roi[-4:]).all() and np.isfinite(roi[:-4]).all()  # k = 4: no frame t + 4 for the last four
    assert store.read("face_found", "001_1").all()
    assert store.attrs_of("crops", "001_1")["events"] == {"reference_frame": 1, "frames_at_reference": 0}
    from mepipe.featurestore.info import describe, format_description

    text = format_description(describe(lv_store))
    assert "dataset samm-lv: 2 videos, 2 subjects" in text and "annotated intervals: {'micro': 1, 'macro': 1}" in text


@pytest.mark.slow
def test_a_stretch_of_frames_reads_only_its_chunks_each_checked(lv_store, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(lv_store, copy)
    whole = open_store(copy).read("crops", "001_1")
    chunk = copy / "clips/001_1/crops/crops/c/3/0/0/0"  # frames 48..55
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\0")
    store = open_store(copy)
    np.testing.assert_array_equal(store.read("crops", "001_1", frames=slice(16, 32)), whole[16:32])
    assert list(store.read_xr("crops", "001_1", frames=slice(20, 24))["frame"].values) == [21, 22, 23, 24]
    with pytest.raises(IntegrityError, match="clip 001_1, feature crops"):
        store.read("crops", "001_1", frames=slice(40, 50))


@pytest.mark.slow
def test_each_windowed_stage_equals_its_kernel_on_the_whole_video(lv_store):
    store = open_store(lv_store)
    params = params_from_mapping(CONFIG, "video")
    for video, n in VIDEOS.items():
        crops = store.read("crops", video)
        np.testing.assert_array_equal(store.read("frames_rgb", video), rgb_frames(crops, 32))
        flows = flow_consecutive(crops, params["flow_consecutive"])
        np.testing.assert_array_equal(store.read("flow_consecutive", video), flows.astype(np.float16))
        apart = flow_apart(crops, 4, params["flow_apart"], store.read("frame", video))
        np.testing.assert_array_equal(store.read("flow_apart", video), apart.astype(np.float16))
        magnitude, strain = roi_motion(crops, store.read("landmarks_aligned", video), n, 4, params["roi_motion"], 64)
        np.testing.assert_array_equal(store.read("roi_magnitude", video), magnitude)
        np.testing.assert_array_equal(store.read("roi_strain", video), strain)


@pytest.mark.slow
def test_a_rebuild_runs_nothing_and_another_window_length_rebuilds_every_stage(lv_store, lv_root, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(lv_store, copy)
    again = run_build(options(lv_root, copy, stages=("align",)))
    assert again.tasks_run == {} and again.tasks_cached == {"landmarks": 2, "align": 2}
    params = params_from_mapping({**CONFIG, "window": {"frames": 32}}, "video")
    longer = run_build(options(lv_root, copy, stages=("align",), params=params))
    assert longer.tasks_run == {"landmarks": 2, "align": 2}
    assert zarr.open_group(str(copy), mode="r")["clips/001_1/crops/crops"].chunks[0] == 32


def _chunk_files(array: Path) -> dict[str, tuple[int, int]]:
    """Chunk files of an array folder (key -> (inode, mtime)): a file renamed into place keeps both."""
    return {p.relative_to(array).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (array / "c").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_failed_window_keeps_the_finished_ones_and_the_next_build_does_only_what_is_left(lv_root, lv_store,
                                                                                             tmp_path, monkeypatch):
    from mepipe.pipeline.errors import ClipError
    from mepipe.pipeline.stages import landmarks

    track = landmarks.track_landmarks

    def failing_in_window_2(frames, params):  # the frames of window 2 (33..48) cannot be read, this time
        if len(frames) == WINDOW and np.array_equal(frames[0], first_of_window_2):
            raise ClipError("frame file cannot be read (simulated)", file="001_1_00033.jpg")
        return track(frames, params)

    first_of_window_2 = read_image(lv_root / "SAMM_longvideos/001_1/001_1_00033.jpg")
    monkeypatch.setattr(landmarks, "track_landmarks", failing_in_window_2)
    store = tmp_path / "samm-lv.zarr"
    first = run_build(options(lv_root, store))
    assert first.exit_code == 1
    assert {f["stage"] for f in first.failures} == {"landmarks", "align", "flow_consecutive", "kim", "flow_apart",
                                                  "roi_motion"}
    assert all(f["sample"] == "001_1" for f in first.failures)
    assert "001_1_00033.jpg" in next(f for f in first.failures if f["stage"] == "landmarks")["error"]
    building = store / WINDOWS_DIR / "001_1" / "landmarks"
    (key,) = [p.name for p in building.iterdir()]
    assert sorted(int(p.stem) for p in (building / key / "done").glob("*.json")) == [0, 1, 3]
    finished = _chunk_files(building / key / "landmarks" / "landmarks")
    assert sorted(finished) == ["c/0/0/0", "c/1/0/0", "c/3/0/0"]

    monkeypatch.setattr(landmarks, "track_landmarks", track)
    second = run_build(options(lv_root, store))
    assert second.exit_code == 0, second.summary()
    stages = ("landmarks", "align", "flow_consecutive", "kim", "flow_apart", "roi_motion")
    assert second.tasks_run == {s: 1 for s in stages} and second.tasks_cached == {s: 1 for s in stages}
    kept = _chunk_files(store / "clips/001_1/landmarks/landmarks")
    assert {k: kept[k] for k in finished} == finished  # the windows finished before were not written again
    assert kept.keys() - finished.keys() == {"c/2/0/0"}
    assert not (store / WINDOWS_DIR / "001_1").exists()
    clean, resumed = open_store(lv_store), open_store(store)
    for feature in clean.features:
        np.testing.assert_array_equal(resumed.read(feature, "001_1"), clean.read(feature, "001_1"), err_msg=feature)


@pytest.mark.slow
def test_stages_of_annotated_clips_are_refused_and_stores_do_not_mix(lv_root, small_store, tmp_path):
    with pytest.raises(UnknownNameError, match="apex work on annotated clips"):
        run_build(options(lv_root, tmp_path / "x.zarr", stages=("apex",)))
    clips = tmp_path / "clips.zarr"
    shutil.copytree(small_store, clips)
    with pytest.raises(DestinationError, match="built from other sources"):
        run_build(options(lv_root, clips, stages=("landmarks",)))
    with pytest.raises(ConfigError, match="holds clips; build these videos into another store"):
        run_build(dataclasses.replace(options(lv_root, clips, stages=("landmarks",)), replace=True))


@pytest.mark.slow
def test_a_window_of_a_video_file_is_decoded_from_its_first_frame(small_demo, tmp_path):
    video = write_video(small_demo, tmp_path / "v.avi", 40)
    everything = read_all(video)[..., ::-1]  # OpenCV's BGR as mepipe's RGB
    for frames in ([0, 1, 2], [17, 18, 19, 20], [39]):
        np.testing.assert_array_equal(read_video(str(video), frames, FramesParams()), everything[frames])


@pytest.mark.slow
def test_a_manifest_of_long_videos_builds_from_a_video_file(small_demo, tmp_path):
    write_video(small_demo, tmp_path / "p1.avi", 40)
    (tmp_path / "manifest.csv").write_text("path,subject,fps\np1.avi,p1,200\n")
    (tmp_path / "intervals.csv").write_text("video,onset,apex,offset,kind\np1,10,14,20,micro\n")
    store = tmp_path / "m.zarr"
    report = run_build(BuildOptions(dataset="manifest", root=tmp_path, store=store, scheduler="sync", progress=False,
                                    stages=("align",), params=params_from_mapping(CONFIG, "video"),
                                    adapter_options={"unit": "videos", "intervals": "intervals.csv"}))
    assert report.exit_code == 0, report.summary()
    opened = open_store(store)
    assert opened.unit == "video" and list(opened.read("frame", "p1")) == list(range(40))
    assert opened.intervals[["video", "onset", "offset", "kind"]].values.tolist() == [["p1", 10, 20, "micro"]]
    assert opened.read("crops", "p1").shape == (40, 64, 64, 3)  # OpenCV decodes a grey video as colour
    assert os.listdir(store / WINDOWS_DIR) == []


def test_every_stage_that_runs_on_videos_writes_per_frame_features():
    for stage in (s.for_videos() for s in STAGES.values() if s.window is not None):
        assert all(f.dims[0] in ("frame", "pair") for f in stage.writes), stage.name


def _finished_windows(store: Path) -> dict[str, tuple[int, int]]:
    """Every chunk file of a window recorded as done, in the features being built (``<video>/<feature>/<chunk>``
    -> (inode, mtime))."""
    out = {}
    for done in store.glob(f"{WINDOWS_DIR}/*/*/*/done"):
        windows = {p.stem for p in done.glob("*.json")}
        for array in (p / p.name for p in done.parent.iterdir() if p.name != "done"):
            out |= {f"{done.parents[2].name}/{array.name}/{k}": v for k, v in _chunk_files(array).items()
                    if k.split("/")[1] in windows}
    return out


@pytest.mark.slow
def test_a_build_killed_mid_video_resumes_without_redoing_finished_windows(lv_root, lv_store, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    store = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "mepipe.cli", "build", "--dataset", "samm-lv", "--root", str(lv_root), "--store",
           str(store), "--config", str(config), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 300
        while len(list(store.glob(f"{WINDOWS_DIR}/*/*/*/done/*.json"))) < 4 and time.time() < end:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = _finished_windows(store)
    assert len({k.rsplit("/c/", 1)[0] for k in finished}) >= 1, "the build was killed before any window finished"

    report = run_build(options(lv_root, store))
    assert report.exit_code == 0, report.summary()
    after = {f"{v}/{f}/{k}": stat for v in VIDEOS for f in open_store(store).features
             for k, stat in _chunk_files(store / "clips" / v / f / f).items()}
    assert {k: after[k] for k in finished} == finished  # moved into place, never written again
    clean, resumed = open_store(lv_store), open_store(store)
    for video in VIDEOS:
        for feature in clean.features:
            np.testing.assert_array_equal(resumed.read(feature, video), clean.read(feature, video),
                                          err_msg=f"{video}/{feature}")


@pytest.mark.slow
def test_a_dry_run_counts_the_windows_that_would_run(lv_root, lv_store):
    from mepipe.pipeline.build import preview_build

    cached = preview_build(options(lv_root, lv_store))
    assert cached.stale == [] and len(cached.cached) == 12  # 2 videos x 6 stages
    fresh = preview_build(options(lv_root, lv_store.parent / "nowhere.zarr", stages=("landmarks",)))
    assert fresh.windows == {("001_1", "landmarks"): 4, ("002_1", "landmarks"): 3}
    assert "run     001_1  landmarks (4 windows)" in fresh.format()
    assert not (lv_store.parent / "nowhere.zarr").exists()


def test_the_cli_refuses_a_stage_of_annotated_clips_on_long_videos_in_one_line(tmp_path):
    from click.testing import CliRunner

    from mepipe.cli.main import cli
    from sheet_files import touch_frames, write_xlsx
    from long_video_files import SAMM_LV_HEADER, SAMM_LV_PREAMBLE

    touch_frames(tmp_path / "SAMM_longvideos" / "006_1", range(1, 50), lambda n: f"006_1_{n:05d}.jpg")
    write_xlsx(tmp_path / "SAMM_LongVideos_V2_Release.xlsx", [*SAMM_LV_PREAMBLE, SAMM_LV_HEADER])
    result = CliRunner().invoke(cli, ["build", "--dataset", "samm-lv", "--root", str(tmp_path), "--store",
                                      str(tmp_path / "s.zarr"), "--features", "apex", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "apex work on annotated clips (onset, apex, offset), not on long videos" in result.output
    assert len(result.output.strip().splitlines()) <= 2 and not (tmp_path / "s.zarr").exists()


@pytest.fixture
def toy_video_stage():
    """The long-video stage of ``tests/toy_video_stage.py``, registered for one test only."""
    import importlib
    import sys

    from mepipe.featurestore.features import FEATURES

    stages, table = dict(STAGES), dict(FEATURES)
    sys.modules.pop("toy_video_stage", None)
    yield importlib.import_module("toy_video_stage")
    sys.modules.pop("toy_video_stage", None)
    STAGES.clear()
    STAGES.update(stages)
    FEATURES.clear()
    FEATURES.update(table)


@pytest.mark.slow
def test_a_long_video_stage_of_one_file_builds_over_the_next_windows(toy_video_stage, lv_root, lv_store, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(lv_store, copy)
    report = run_build(options(lv_root, copy, stages=("toy_motion",)))
    assert report.exit_code == 0, report.summary()
    assert report.tasks_run == {"toy_motion": 2} and report.tasks_cached == {"landmarks": 2, "align": 2}
    store = open_store(copy)
    for video, n in VIDEOS.items():
        expected = toy_video_stage.toy_motion(store.read("crops", video), n, 5)  # step 5 reaches into the next window
        np.testing.assert_array_equal(store.read("toy_motion", video), expected)
        assert np.isnan(expected[-5:]).all() and np.isfinite(expected[:-5]).all()


@pytest.mark.slow
def test_the_long_video_demo_builds_through_the_cli_with_its_settings(tmp_path):
    import json

    from click.testing import CliRunner

    from mepipe.cli.main import cli
    from mepipe.pipeline.demo import LV_TRUTH, LongDemoParams, write_long_demo
    from mepipe.pipeline.demo.build_config import LONG_VIDEO_BUILD_CONFIG

    small = LongDemoParams(n_subjects=2, micro_count=(1, 1), macro_count=(1, 1), blink_count=(1, 1),
                           head_count=(1, 1), lead_frames=(30, 30), gap_frames=(15, 15), quirks=())
    root = tmp_path / "demo-lv"
    write_long_demo(root, small)
    truth = json.loads((root / LV_TRUTH).read_text())
    store = tmp_path / "demo-lv.zarr"
    result = CliRunner().invoke(cli, ["build", "--dataset", "demo-lv", "--root", str(root), "--store", str(store),
                                      "--scheduler", "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2/2 videos built" in result.output and "stages run:    landmarks 2, align 2" in result.output
    opened = open_store(store)
    assert opened.unit == "video" and opened.sample_ids == [v["video"] for v in truth["videos"]]
    annotated = sorted((v["video"], e["onset"], e["kind"]) for v in truth["videos"] for e in v["events"]
                       if e["kind"] in ("micro", "macro"))
    assert sorted(opened.intervals[["video", "onset", "kind"]].itertuples(index=False, name=None)) == annotated
    k = LONG_VIDEO_BUILD_CONFIG["roi_motion"]["k"]
    roi = opened.read_xr("roi_magnitude", "001_1")
    assert roi.attrs["events"]["k"] == k and roi.shape == (truth["videos"][0]["n_frames"], 7)
    assert np.isnan(roi.values[-k:]).all() and np.isfinite(roi.values[:-k]).all()
    assert opened.read("crops", "001_1").shape[1:] == (64, 64, 1)
    assert opened.record.stages["roi_motion"].params["k"] == k
