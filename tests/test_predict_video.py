"""``mepipe predict`` end to end on a real recorded clip: an mp4 written with OpenCV, a face with head motion.

A final spotter (the training-free MEGC 2020 baseline, ``spot --final``)
is fitted on a long-video store built from another recording, and a final
STRCN-G (``train --final``) on the small demo's onset->apex flows; predict
then tracks the face of the mp4, builds both runs' features with the
parameters their stores recorded, spots, classifies and writes the CSV,
the JSON and the timeline. A clip without a face ends in one sentence.
"""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import command_group
from long_video_files import demo_frames

pytestmark = pytest.mark.slow

N_FRAMES = 180
FPS = 30.0


def _write_moving_face(demo_root, path, n_frames=N_FRAMES, fps=FPS):
    """An mp4 of the demo subject's frames (cycled) with the head moving: a slow sway of up to 6 px and 2 degrees."""
    frames = demo_frames(demo_root, "001")
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for n in range(n_frames):
            img = cv2.imread(str(frames[n % len(frames)]))
            angle = 2.0 * np.sin(2 * np.pi * n / 150)
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            matrix[:, 2] += (6 * np.sin(2 * np.pi * n / 90), 3 * np.cos(2 * np.pi * n / 120))
            writer.write(cv2.warpAffine(img, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE))
    finally:
        writer.release()
    return path


def _video_store(video, store, tmp_path):
    """A long-video store of one recording, with the demo-lv build settings (64 px crops, the demo's TV-L1)."""
    from mepipe.pipeline.build import BuildOptions, run_build
    from mepipe.pipeline.demo.build_config import LONG_VIDEO_BUILD_CONFIG
    from mepipe.pipeline.stages import params_from_mapping

    root = tmp_path / "manifest"
    root.mkdir()
    (root / "manifest.csv").write_text(f"path,subject,sample\n{video},p1,take1\n")
    report = run_build(BuildOptions(dataset="manifest", root=root, store=store, scheduler="sync", progress=False,
                                    stages=("roi_motion",), params=params_from_mapping(LONG_VIDEO_BUILD_CONFIG, "video"),
                                    adapter_options={"unit": "videos", "allow_outside_root": True}))
    assert report.exit_code == 0, report.summary()
    return store


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_demo, full_store):
    """A final baseline spotter and a final STRCN-G (on the session's small demo store, built with the demo's
    settings)."""
    from mepipe.train.run import RunParams, run_training
    from mepipe.train.spotters.run import SpotParams, run_spot

    tmp = tmp_path_factory.mktemp("runs")
    model = tmp / "model"
    run_training(RunParams(model="strcn-g", store=str(full_store), labels="megc-3", protocol="final", out=str(model),
                           epochs=2, device="cpu", progress=False, recipe_options=(("augmentation", "scale"),),
                           model_args=(("n_maps", 8),)))
    other = _write_moving_face(small_demo, tmp / "other.mp4", n_frames=240)
    videos = _video_store(other, tmp / "videos.zarr", tmp)
    spotter = tmp / "spotter"
    run_spot(SpotParams("baseline", (str(videos),), protocol="final", out=str(spotter), device="cpu", progress=False))
    return spotter, model


def _predict(*args):
    return CliRunner().invoke(command_group("predict_cmd"), ["predict", *map(str, args), "--workers", "1",
                                                            "--device", "cpu", "--no-progress"])


@pytest.fixture(scope="module")
def predicted(runs, small_demo, tmp_path_factory):
    """``mepipe predict`` of a recorded mp4 of N_FRAMES frames: the video, the output folder and the result.

    The second-predict test predicts again into this folder (its stores record it as their root), which must
    leave the predictions as they were: that is what it checks.
    """
    spotter, model = runs
    tmp = tmp_path_factory.mktemp("predicted")
    video = _write_moving_face(small_demo, tmp / "session.mp4")
    out = tmp / "out"
    return video, out, _predict(video, "--spotter", spotter, "--model", model, "--out", out)


def test_predict_on_a_recorded_mp4_writes_csv_json_and_timeline(predicted):
    _, out, result = predicted
    assert result.exit_code == 0, result.output
    written = json.loads((out / "predictions.json").read_text())
    [entry] = written["videos"]
    assert entry["video"] == "session" and entry["n_frames"] == N_FRAMES and entry["fps"] == pytest.approx(FPS)
    assert written["classes"] == ["negative", "positive", "surprise"]
    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(written["predictions"])
    for row, p in zip(rows, written["predictions"]):
        assert int(row["onset"]) <= int(row["apex"]) <= int(row["offset"]) < N_FRAMES
        assert float(row["onset_s"]) == pytest.approx(int(row["onset"]) / FPS, abs=1e-4)
        assert row["class"] in written["classes"] and row["kind"] in ("micro", "macro")
        assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert not any(int(row["onset"]) <= b and a <= int(row["offset"]) for a, b in entry["no_face"])
    png = out / "timelines" / "session.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["parameters"]["spotting"]["roi_motion"]["size"] == [64, 64]  # the spotter store's, recorded


def test_a_second_predict_reuses_the_stores(runs, predicted):
    spotter, model = runs
    video, out, first = predicted
    assert first.exit_code == 0, first.output
    before = json.loads((out / "predictions.json").read_text())["predictions"]
    again = _predict(video, "--spotter", spotter, "--model", model, "--out", out)
    assert again.exit_code == 0, again.output
    report = json.loads((out / "stores" / "videos.zarr" / ".mepipe" / "build-report.json").read_text())
    assert sum(report["tasks_run"].values()) == 0 and sum(report["tasks_cached"].values()) > 0
    assert json.loads((out / "predictions.json").read_text())["predictions"] == before


def test_a_clip_without_a_face_ends_in_one_sentence(runs, tmp_path):
    spotter, model = runs
    path = tmp_path / "wall.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(40):
        writer.write(rng.integers(90, 110, size=(120, 160, 3), dtype=np.uint8))
    writer.release()
    result = _predict(path, "--spotter", spotter, "--model", model, "--out", tmp_path / "out")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no face" in lines[0] and "wall" in lines[0], result.output


def test_anything_but_a_video_or_a_frame_folder_is_refused(runs, tmp_path):
    spotter, model = runs
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    result = _predict(text, "--spotter", spotter, "--model", model)
    assert result.exit_code == 2 and "video files" in result.output
