"""The long-video demo ``demo-lv``: SAMM Long Videos layout and sheets, its truth file, and what its frames show.

A small corpus (two subjects, one short video each) is written once and read
back with the real reader (:func:`read_samm_lv`). What the frames show is
measured from the JPEGs alone (dlib landmarks, grey levels), not from the
generator's fields: blinks close the eyes, turns and nods move the nose
against the eye corners (no similarity undoes that), expressions move their
landmarks; none of blinks, turns and nods is in the sheet.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import cv2
import dlib
import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from mepipe.pipeline.datasets.samm_lv import FRAMES_DIR, read_samm_lv
from mepipe.pipeline.demo import (
    DEMO_NAMES,
    LONG_PRESETS,
    LV_EMOTION_SHEET,
    LV_SHEET,
    LV_TRUTH,
    LongDemoParams,
    read_long_params,
    shape_predictor_path,
    true_video_landmarks,
    write_long_demo,
)
from mepipe.pipeline.demo.blink import lid_displacements
from mepipe.pipeline.demo.long_plan import Event, Wander
from mepipe.pipeline.demo.motion import amplitude_profile
from mepipe.pipeline.demo.relief import face_relief, parallax

QUIRKS = (("001_1", "apex_unparsable"), ("002_1", "no_emotion_label"), ("002_1", "action_units_ambiguous"))
SMALL = LongDemoParams(
    n_subjects=2, micro_count=(1, 1), macro_count=(1, 1), blink_count=(2, 2), head_count=(1, 1),
    lead_frames=(30, 40), gap_frames=(15, 25), macro_rise=(30, 30), macro_hold=(15, 15), macro_fall=(56, 56),
    head_rise=(20, 25), head_hold=(10, 15), head_fall=(20, 25), turn_deg=(4.0, 4.0), nod_deg=(4.0, 4.0),
    quirks=QUIRKS)
"""Per video one micro-, one macro-expression, two blinks and one turn or nod (4 degrees: measurable by dlib)."""
FRAME_NAME = re.compile(r"^(\d{3}_\d+)_(\d{4})\.jpg$")

# 0-based iBUG rows, from the iBUG scheme, not from the generator's tables.
EYE_CORNERS = [36, 39, 42, 45]
NOSE = [30, 31, 32, 33, 34, 35]
MOVING = {"Happiness": [48, 54], "Surprise": list(range(17, 27)), "Anger": [19, 20, 21, 22, 23, 24]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo-lv")
    write_long_demo(root, SMALL)
    return root


@pytest.fixture(scope="module")
def truth(corpus) -> dict:
    return json.loads((corpus / LV_TRUTH).read_text())


@pytest.fixture(scope="module")
def dlib_models():
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))


def frame(root: Path, video: str, number: int) -> np.ndarray:
    return cv2.imread(str(root / FRAMES_DIR / video / f"{video}_{number:04d}.jpg"), cv2.IMREAD_UNCHANGED)


def landmarks(image: np.ndarray, dlib_models) -> np.ndarray:
    detector, predictor = dlib_models
    faces = detector(image, 0)
    assert len(faces) == 1
    return np.array([[p.x, p.y] for p in predictor(image, faces[0]).parts()], dtype=np.float64)


def events(truth: dict, kind: str) -> list[tuple[dict, dict]]:
    """(video, event) pairs of one kind."""
    return [(v, e) for v in truth["videos"] for e in v["events"] if e["kind"] == kind]


def quiet_frames(video: dict, span: int) -> tuple[int, int]:
    """Two frames ``span`` apart with no event at or between them (in the lead-in)."""
    first = video["events"][0]["onset"]
    assert first - video["first_frame"] > span
    return video["first_frame"], video["first_frame"] + span


@pytest.mark.slow
def test_frames_are_greyscale_jpegs_in_the_samm_long_videos_layout(corpus, truth):
    folders = sorted(p.name for p in (corpus / FRAMES_DIR).iterdir())
    assert folders == ["001_1", "002_1"] == [v["video"] for v in truth["videos"]]
    for video in truth["videos"]:
        names = sorted(p.name for p in (corpus / FRAMES_DIR / video["video"]).iterdir())
        matches = [FRAME_NAME.match(n) for n in names]
        assert all(m and m.group(1) == video["video"] for m in matches)
        assert [int(m.group(2)) for m in matches] == list(range(1, video["n_frames"] + 1))
        assert video["last_frame"] == video["n_frames"]
    image = frame(corpus, "002_1", 7)
    assert image.ndim == 2 and image.shape == (384, 384) and image.dtype == np.uint8


def test_sheet_has_nine_preamble_rows_and_samm_long_videos_columns(corpus):
    rows = list(openpyxl.load_workbook(corpus / LV_SHEET).active.iter_rows(values_only=True))
    assert rows[9] == ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                       "Action Units", "Notes")
    assert all(r[0] != "Subject" for r in rows[:9]) and rows[0][0]
    data = rows[10:]
    assert {r[7] for r in data} == {"Micro - 1/2", "Macro"}
    assert {type(r[0]) for r in data} == {str, int}  # subjects written "001" and 1, as SAMM's sheets do
    for subject, name, code, onset, apex, offset, duration, kind, _, _ in data:
        assert name.startswith(f"{int(subject):03d}_{code}_")
        assert duration == offset - onset + 1
        assert (duration <= 100) == (kind == "Micro - 1/2")


def test_reader_finds_every_video_and_annotated_interval_and_the_intended_quirks(corpus, truth):
    table = read_samm_lv(corpus, samm_sheet=corpus / LV_EMOTION_SHEET)
    assert [(v.video, v.subject, v.fps, len(v.frame_files)) for v in table.videos] == [
        (v["video"], v["subject"], 200.0, v["n_frames"]) for v in truth["videos"]]
    intervals = table.intervals().set_index("name")
    annotated = {e["name"]: e for _, e in events(truth, "micro") + events(truth, "macro")}
    assert set(intervals.index) == set(annotated) and len(annotated) == 4
    for name, e in annotated.items():
        row = intervals.loc[name]
        assert (row["kind"], row["onset"], row["offset"]) == (e["kind"], e["onset"], e["offset"])
        assert pd.isna(row["apex"]) if "apex_unparsable" in e["quirks"] else row["apex"] == e["apex"]
        expected_emotion = e["emotion"] if "no_emotion_label" not in e["quirks"] else ""
        assert row["emotion"] == expected_emotion
    wanted = {(q["interval"], q["kind"]) for q in truth["quirks"]}
    assert {(q.sample, q.kind) for q in table.quirks} == wanted
    macro_001 = next(e for _, e in events(truth, "macro") if e["name"].startswith("001_1"))
    micro_002 = next(e for _, e in events(truth, "micro") if e["name"].startswith("002_1"))
    assert wanted == {(macro_001["name"], "apex_unparsable"), (micro_002["name"], "no_emotion_label"),
                      (micro_002["name"], "action_units_ambiguous")}
    assert intervals["apex"].isna().sum() == 1 and intervals.loc[micro_002["name"], "au_codes"] != \
        micro_002["action_units"]


def test_truth_file_counts_every_event_without_overlap(truth):
    assert truth["fps"] == 200.0 and truth["dataset"] == "demo-lv"
    for video in truth["videos"]:
        kinds = sorted(e["kind"] for e in video["events"])
        assert kinds.count("micro") == kinds.count("macro") == 1 and kinds.count("blink") == 2
        assert len(kinds) == 5 and sum(k in ("nod", "turn") for k in kinds) == 1
        spans = sorted((e["onset"], e["offset"]) for e in video["events"])
        assert spans[0][0] > video["first_frame"] and spans[-1][1] < video["last_frame"]
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
        for e in video["events"]:
            assert e["onset"] < e["apex"] <= e["release"] < e["offset"]
            assert e["annotated"] == (e["kind"] in ("micro", "macro"))
            if e["kind"] == "blink":
                assert 19 <= e["frames"] <= 31  # about 100-150 ms at 200 fps
            if e["kind"] == "micro":
                assert e["frames"] <= 100 and e["apex"] == e["release"]
            if e["kind"] == "macro":
                assert e["frames"] > 100


def test_blinks_close_the_eyes_and_leave_the_mouth_alone(corpus, truth, dlib_models):
    for video, blink in events(truth, "blink"):
        before = frame(corpus, video["video"], blink["onset"] - 1)
        shut = frame(corpus, video["video"], blink["apex"])
        points = landmarks(before, dlib_models)
        change = np.abs(shut.astype(float) - before)
        eyes = np.zeros(before.shape, np.uint8)
        for rows in (slice(36, 42), slice(42, 48)):
            cv2.fillConvexPoly(eyes, cv2.convexHull(np.rint(points[rows]).astype(np.int32)), 1)
        mouth = np.zeros(before.shape, np.uint8)
        cv2.fillConvexPoly(mouth, cv2.convexHull(np.rint(points[48:60]).astype(np.int32)), 1)
        assert change[eyes > 0].mean() > 8 * change[mouth > 0].mean()
        assert change[eyes > 0].mean() > 10
    video = truth["videos"][0]
    a, b = quiet_frames(video, 20)
    assert np.abs(frame(corpus, video["video"], b).astype(float) - frame(corpus, video["video"], a)).mean() < 2


def test_turns_and_nods_move_the_nose_against_the_eye_corners(corpus, truth, dlib_models):
    """Out-of-plane head motion: the nose tip's offset from the eye corners changes (a similarity keeps it)."""
    heads = events(truth, "turn") + events(truth, "nod")
    assert len(heads) == 2

    def nose_offset(video: str, number: int) -> np.ndarray:
        points = landmarks(frame(corpus, video, number), dlib_models)
        return points[NOSE].mean(axis=0) - points[EYE_CORNERS].mean(axis=0)

    for video, head in heads:
        shift = nose_offset(video["video"], head["apex"]) - nose_offset(video["video"], head["onset"] - 1)
        axis = 0 if head["kind"] == "turn" else 1
        assert np.sign(shift[axis]) == np.sign(head["angle_deg"]) and abs(shift[axis]) > 1.0
    video = truth["videos"][0]
    a, b = quiet_frames(video, 25)
    assert np.abs(nose_offset(video["video"], b) - nose_offset(video["video"], a)).max() < 0.6


def test_expressions_move_their_landmarks_against_the_eye_corners(corpus, truth, dlib_models):
    for video, e in events(truth, "micro") + events(truth, "macro"):
        start = landmarks(frame(corpus, video["video"], e["onset"]), dlib_models)
        apex = landmarks(frame(corpus, video["video"], e["apex"]), dlib_models)
        start -= start[EYE_CORNERS].mean(axis=0)
        apex -= apex[EYE_CORNERS].mean(axis=0)
        moved = np.linalg.norm(apex[MOVING[e["expression"]]] - start[MOVING[e["expression"]]], axis=1).max()
        assert moved > 0.5 * e["amplitude_px"], (e["name"], moved)


def test_true_landmarks_follow_the_frames(corpus, truth, dlib_models):
    params = read_long_params(corpus)
    assert params == SMALL
    plan, points = true_video_landmarks(params, "002_1")
    assert points.shape == (truth["videos"][1]["n_frames"], 68, 2) and plan.video == "002_1"
    blink = next(e for e in plan.events if e.kind == "blink")
    index = blink.apex - plan.first_frame
    found = landmarks(frame(corpus, "002_1", blink.apex), dlib_models)
    assert np.median(np.linalg.norm(found - points[index], axis=1)) < 3
    with pytest.raises(ValueError, match="not among the videos"):
        true_video_landmarks(params, "003_1")


@pytest.mark.slow
def test_fewer_subjects_leave_a_video_byte_identical(corpus, tmp_path):
    write_long_demo(tmp_path, SMALL.resized(n_subjects=1))
    for name in sorted(p.name for p in (corpus / FRAMES_DIR / "001_1").iterdir()):
        assert (tmp_path / FRAMES_DIR / "001_1" / name).read_bytes() == \
            (corpus / FRAMES_DIR / "001_1" / name).read_bytes(), name
    assert not (tmp_path / FRAMES_DIR / "002_1").exists()
    with pytest.raises(FileExistsError, match="not empty"):
        write_long_demo(tmp_path, SMALL.resized(n_subjects=1))


def test_resizing_keeps_only_the_quirks_of_videos_still_made():
    assert SMALL.resized(n_subjects=1).quirks == (("001_1", "apex_unparsable"),)
    assert LONG_PRESETS["demo-lv"].resized(videos_per_subject=2).quirks == LONG_PRESETS["demo-lv"].quirks
    with pytest.raises(ValueError, match="not among the videos to generate"):
        dataclasses.replace(SMALL, n_subjects=1)
    with pytest.raises(ValueError, match="unknown quirk kinds"):
        dataclasses.replace(SMALL, quirks=(("001_1", "duration_mismatch"),))
    with pytest.raises(ValueError, match="longer than micro_max_frames"):
        LongDemoParams(macro_rise=(10, 20), macro_hold=(0, 5), macro_fall=(10, 20))


def test_demo_command_lists_every_demo_and_refuses_clips_for_long_videos(tmp_path):
    from mepipe.cli.main import DEMO_CHOICES, cli

    assert sorted(DEMO_CHOICES) == sorted(DEMO_NAMES)
    result = CliRunner().invoke(cli, ["demo", "--dataset", "demo-lv", "--clips", "2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "n_clips does not apply to demo-lv" in result.output
    result = CliRunner().invoke(cli, ["demo", "--dataset", "demo", "--videos", "2", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "videos_per_subject does not apply to demo" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_held_profile_rises_holds_and_falls_as_raised_cosines():
    # onset 2, apex 4, release 6, offset 8: halfway up at 3, full from 4 to 6, halfway down at 7.
    assert np.allclose(amplitude_profile(10, 2, 4, 8, release=6), [0, 0, 0, 0.5, 1, 1, 1, 0.5, 0, 0])
    assert np.array_equal(amplitude_profile(10, 2, 4, 8), amplitude_profile(10, 2, 4, 8, release=4))
    event = Event("blink", onset=12, apex=14, release=16, offset=18, strength=0.9)
    assert np.allclose(event.profile(first_frame=10, n_frames=10), [0, 0, 0, 0.5, 1, 1, 1, 0.5, 0, 0])
    assert event.n_frames == 7


def test_drift_is_a_sum_of_sinusoids():
    wander = Wander(amplitudes=((1.0, 0.0, 2.0),), periods=(8.0,), phases=((0.0, 0.0, np.pi / 2),), pivot=(0, 0))
    assert np.allclose(wander.pose(2), [1.0, 0.0, 0.0])  # sin(pi/2) = 1; 2 sin(pi) = 0
    assert np.allclose(wander.affine(0), [[np.cos(np.deg2rad(2)), np.sin(np.deg2rad(2)), 0],
                                          [-np.sin(np.deg2rad(2)), np.cos(np.deg2rad(2)), 0]])


def face_points() -> np.ndarray:
    """A schematic face: jaw from x 0 to 200, brows at y 60, eyes 100 apart at y 100, nose tip (100, 150),
    chin at y 260."""
    points = np.zeros((68, 2))
    points[:17] = np.stack([np.linspace(0, 200, 17), np.full(17, 200.0)], axis=1)
    points[8] = (100, 260)
    points[17:27] = np.stack([np.linspace(40, 160, 10), np.full(10, 60.0)], axis=1)
    points[27:31] = [(100, 100), (100, 116), (100, 133), (100, 150)]
    points[31:36] = [(85, 155), (92, 157), (100, 158), (108, 157), (115, 155)]
    points[36:42] = [(35, 100), (45, 94), (55, 94), (65, 100), (55, 106), (45, 106)]
    points[42:48] = points[36:42] + (100, 0)
    points[48:68] = (100, 200)
    return points


def test_relief_and_parallax_on_a_schematic_face():
    # Inter-ocular distance 100; the face ellipse spans x 0..200 and y 10 (brows 60 less 0.5 d) to 260 (chin).
    points = face_points()
    depth = face_relief(points, np.array([[100.0, 135.0], [0.0, 135.0], [300.0, 300.0]]), 0.35, 0.0)
    assert np.allclose(depth, [35.0, 0.0, 0.0])  # 0.35 d in the middle, 0 at the rim and beyond
    ridge = face_relief(points, np.array([0.7 * points[30] + 0.3 * points[28]]), 0.0, 0.3)
    assert np.allclose(ridge, [30.0])
    assert np.allclose(parallax(np.array([10.0, 4.0]), 30.0, -90.0), [[5.0, -10.0], [2.0, -4.0]])


def test_a_full_blink_moves_the_upper_lids_down_by_a_share_of_the_opening():
    points = face_points()  # every eye opening 12 px
    disp = lid_displacements(points, travel=0.5)
    assert np.allclose(disp[[37, 38, 43, 44], 1], 6.0) and np.allclose(disp[[40, 41, 46, 47], 1], -0.9)
    assert np.allclose(disp[17:27, 1], 0.6) and not disp[[36, 39, 42, 45, 30]].any()
