"""Long-video readers (SAMM Long Videos, CAS(ME)²) and ``casme-sq --option unit=clips``, on releases in their real
layouts.

SAMM Long Videos: nine preamble rows and the header on row 10, Filenames
``<subject>_<video>_<k>``, Types ``Micro - 1/2`` and ``Macro``, a macro with
onset 0, an apex of -1, emotions joined from the SAMM sheet. CAS(ME)²: no
header, three tabs, subject and video codes from the naming tabs (one code
written as a number, its zeros lost), an offset of 0 for "none", folders
``s15/15_0101disgustingteeth``. Frame files are empty.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mepipe.pipeline.datasets import get_adapter
from mepipe.pipeline.datasets.casme_sq import read_casme_sq
from mepipe.pipeline.datasets.samm_lv import read_samm_lv
from sheet_files import by_id, touch_frames, write_xlsx

SAMM_LV_PREAMBLE = [["SAMM Long Videos"], [], ["Symbol Key:"], ['"/" = or'], [], ["AU Help:"], [], [], []]
SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]


@pytest.fixture
def samm_lv_root(tmp_path) -> Path:
    frames = tmp_path / "SAMM_longvideos"
    touch_frames(frames / "006_1", range(1, 401), lambda n: f"006_1_{n:04d}.jpg")
    touch_frames(frames / "007_2", range(1, 201), lambda n: f"007_2_{n:04d}.jpg")
    touch_frames(frames / "008_3", range(1, 51), lambda n: f"008_3_{n:04d}.jpg")  # no expression annotated
    write_xlsx(tmp_path / "SAMM_LongVideos_V2_Release.xlsx", [
        *SAMM_LV_PREAMBLE, SAMM_LV_HEADER,
        [6, "006_1_2", 1, 100, 120, 140, 41, "Micro - 1/2", "R12", None],
        ["006", "006_1_5", 1, 0, 150, 390, 391, "Macro", "4+7", "very long"],
        [7, "007_2_1", 2, 30, -1, 60, 31, "Micro - 1/2", "1+2", None],
        [7, "007_2_9", 2, 90, 95, 99, 10, "Micro - 1/2", "14", None],
        [9, "009_4_1", 4, 10, 20, 30, 21, "Micro - 1/2", "4", None],  # video folder absent
        [7, "007_2", 2, 10, 20, 30, 21, "Micro - 1/2", "4", None],  # Filename without interval number
    ])
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [
        ["SAMM Dataset - Master FACS Codes"], [], SAMM_HEADER,
        [6, "006_1_2", 1, 100, 120, 140, 41, "Micro - 1/2", "R12", "Happiness", 1, None],
        [7, "007_2_1", 2, 30, 45, 60, 31, "Micro - 1/2", "1+2", "Surprise", 2, None],
    ])
    return tmp_path


def test_samm_lv_table_groups_intervals_by_video(samm_lv_root):
    table = read_samm_lv(samm_lv_root, samm_sheet=samm_lv_root / "SAMM_Micro_FACS_Codes_v2.xlsx")
    videos = {v.video: v for v in table.videos}
    assert list(videos) == ["006_1", "007_2", "008_3", "009_4"]
    first = videos["006_1"]
    assert (first.subject, first.fps, first.frame_numbers[:2], len(first.frame_files)) == ("006", 200.0, (1, 2), 400)
    assert [(i.name, i.kind, i.onset, i.apex, i.offset) for i in first.intervals] == [
        ("006_1_2", "micro", 100, 120, 140), ("006_1_5", "macro", 0, 150, 390)]
    assert first.intervals[0].emotion == "Happiness" and first.intervals[1].emotion == ""
    assert first.intervals[1].flags == ("onset_not_on_disk",)  # onset 0: the very long macro
    assert videos["008_3"].intervals == () and videos["008_3"].error is None
    assert videos["009_4"].error.startswith("missing folder") and len(videos["009_4"].intervals) == 1


def test_samm_lv_quirks_are_reported(samm_lv_root):
    table = read_samm_lv(samm_lv_root, samm_sheet=samm_lv_root / "SAMM_Micro_FACS_Codes_v2.xlsx")
    kinds = {(q.sample, q.kind) for q in table.quirks}
    assert kinds == {("006_1_5", "onset_not_on_disk"), ("007_2_1", "apex_unparsable"), ("007_2_9", "no_emotion_label"),
                     ("009_4_1", "no_emotion_label"), ("009_4", "missing_folder"), ("007_2", "incomplete_row")}
    frame = table.intervals()
    row = frame.set_index("name").loc["007_2_1"]
    assert pd.isna(row["apex"]) and (row["onset"], row["emotion"], row["au_codes"]) == (30, "Surprise", "1+2")
    assert len(frame) == 5 and table.assumptions


def test_samm_lv_without_the_samm_sheet_has_no_emotions(samm_lv_root):
    table = read_samm_lv(samm_lv_root)
    assert {i.emotion for v in table.videos for i in v.intervals} == {""}
    assert not any(q.kind == "no_emotion_label" for q in table.quirks)


def casme_sq_sheet(path: Path) -> Path:
    expressions = [
        [1, "disgust1_1", 120, 130, 140, "4+L10", "negative", "micro-expression", "disgust"],
        [1, "disgust1_2", 300, 315, 0, "4", "negative", "micro-expression", "disgust"],  # offset 0 = none
        [1, "disgust1_3", 400, 450, 520, "4+7+10", "negative", "macro-expression", "disgust"],
        [2, "anger2_1", 10, 14, 20, "12", "positive", "micro-expression", "happy"],
        [3, "anger2_1", 10, 14, 20, "12", "positive", "micro-expression", "happy"],  # subject 3 is not named
    ]
    subjects = [["jiang", "s15", 1], ["wang", 16, 2]]  # a code written as a number
    videos = [["0101", "disgust1"], [401, "anger2"]]  # Excel dropped 0401's leading zero
    return write_xlsx(path, expressions, title="CASFEcode_final",
                      more={"naming rule1": subjects, "naming rule2": videos})


@pytest.fixture
def casme_sq_root(tmp_path) -> Path:
    touch_frames(tmp_path / "rawpic" / "s15" / "15_0101disgustingteeth", range(1, 601), lambda n: f"img{n}.jpg")
    touch_frames(tmp_path / "rawpic" / "s16" / "16_0401girlcrashing",
                 [n for n in range(1, 100) if n != 12], lambda n: f"img{n}.jpg")
    casme_sq_sheet(tmp_path / "CAS(ME)^2code_final.xlsx")
    return tmp_path


def test_casme_sq_table_maps_naming_tabs_to_folders(casme_sq_root):
    table = read_casme_sq(casme_sq_root)
    videos = {v.video: v for v in table.videos}
    assert list(videos) == ["s15_0101", "s16_0401"]
    assert Path(videos["s15_0101"].frames.folder).name == "15_0101disgustingteeth"
    assert (videos["s15_0101"].fps, len(videos["s15_0101"].frame_numbers)) == (30.0, 600)
    names = [(i.name, i.kind, i.onset, i.apex, i.offset) for i in videos["s15_0101"].intervals]
    assert names == [("s15_disgust1_1", "micro", 120, 130, 140), ("s15_disgust1_2", "micro", 300, 315, None),
                     ("s15_disgust1_3", "macro", 400, 450, 520)]
    assert videos["s15_0101"].intervals[1].flags == ("offset_missing",)
    assert {(q.sample, q.kind) for q in table.quirks} == {("s15_disgust1_2", "offset_missing"),
                                                          ("row 5", "incomplete_row")}


def test_casme_sq_short_clips_cut_micro_expressions(casme_sq_root):
    result = get_adapter("casme-sq")(casme_sq_root, unit="clips")
    assert set(by_id(result)) == {"s15_disgust1_1", "s15_disgust1_2", "s16_anger2_1"}
    clip = by_id(result)["s15_disgust1_1"]
    assert (clip.dataset, clip.subject, clip.clip, clip.fps) == ("casme-sq", "s15", "disgust1_1", 30.0)
    assert clip.frame_numbers == tuple(range(120, 141)) and Path(clip.frame_files[0]).name == "img120.jpg"
    assert (clip.emotion, clip.au_codes) == ("negative", "4+10")
    no_offset = by_id(result)["s15_disgust1_2"]
    assert no_offset.frame_numbers == tuple(range(300, 316)) and no_offset.flags == ("offset_missing",)
    gap = by_id(result)["s16_anger2_1"]
    assert 12 not in gap.frame_numbers and gap.flags == ("frame_gap",)
    assert {(q.sample, q.kind) for q in result.quirks} == {
        ("s15_disgust1_2", "offset_missing"), ("row 5", "incomplete_row"), ("s16_anger2_1", "frame_gap")}


def test_casme_sq_macro_clips_on_request(casme_sq_root):
    assert set(by_id(get_adapter("casme-sq")(casme_sq_root, unit="clips", kind="macro"))) == {"s15_disgust1_3"}
    assert len(get_adapter("casme-sq")(casme_sq_root, unit="clips", kind="all").samples) == 4
    with pytest.raises(ValueError, match="kind 'both' is unknown"):
        get_adapter("casme-sq")(casme_sq_root, unit="clips", kind="both")


def test_casme_sq_sheet_without_naming_tabs_is_a_clear_error(tmp_path):
    write_xlsx(tmp_path / "CAS(ME)^2code_final.xlsx", [[1, "disgust1_1", 1, 2, 3, "4", "negative", "x", "y"]])
    with pytest.raises(ValueError, match="1 tab.*naming"):
        read_casme_sq(tmp_path)


# --- the same corpora as long videos (the default unit) ------------------------------------------


def test_samm_lv_as_long_videos_with_their_intervals(samm_lv_root):
    result = get_adapter("samm-lv")(samm_lv_root)
    assert result.unit == "video"
    videos = by_id(result)
    assert list(videos) == ["006_1", "007_2", "008_3", "009_4"]
    first = videos["006_1"]
    assert (first.dataset, first.subject, first.clip, first.fps, first.n_frames) == ("samm-lv", "006", "006_1",
                                                                                     200.0, 400)
    assert first.onset is None and first.error is None
    assert "missing" in videos["009_4"].error  # annotated, no folder: a video that fails alone
    table = result.intervals
    assert list(table["name"]) == ["006_1_2", "006_1_5", "007_2_1", "007_2_9", "009_4_1"]
    assert table.iloc[0][["video", "onset", "apex", "offset", "kind", "au_codes", "emotion"]].tolist() == [
        "006_1", 100, 120, 140, "micro", "12", "Happiness"]  # the SAMM sheet beside the release gives emotions
    assert pd.isna(table.iloc[2]["apex"]) and "apex_unparsable" in table.iloc[2]["flags"]
    assert {q.kind for q in result.quirks} >= {"incomplete_row", "apex_unparsable"}


def test_casme_sq_as_long_videos(casme_sq_root):
    result = get_adapter("casme-sq")(casme_sq_root)
    assert result.unit == "video" and list(by_id(result)) == ["s15_0101", "s16_0401"]
    assert by_id(result)["s16_0401"].frame_numbers[:12] == (*range(1, 12), 13)  # frame 12 is missing
    table = result.intervals
    assert list(table["name"]) == ["s15_disgust1_1", "s15_disgust1_2", "s15_disgust1_3", "s16_anger2_1"]
    assert list(table["kind"]) == ["micro", "micro", "macro", "micro"] and pd.isna(table.iloc[1]["offset"])


def test_the_unit_an_adapter_builds_follows_its_option():
    from mepipe.pipeline.datasets import adapter_unit

    assert [adapter_unit(*a) for a in [("samm-lv", {}), ("casme-sq", {"unit": "clips"}), ("demo-lv", {}),
                                      ("manifest", {}), ("manifest", {"unit": "videos"}), ("samm", {})]] == [
        "video", "clip", "video", "clip", "video", "clip"]
    with pytest.raises(ValueError, match="unit 'frames' is unknown"):
        get_adapter("samm-lv")(Path("."), unit="frames")


@pytest.fixture
def manifest_of_videos(tmp_path) -> Path:
    touch_frames(tmp_path / "lab" / "p1_a", range(0, 300), lambda n: f"f{n:05d}.png")
    touch_frames(tmp_path / "lab" / "p2_a", range(5, 100), lambda n: f"f{n:05d}.png")
    (tmp_path / "manifest.csv").write_text("path,subject,fps\nlab/p1_a,p1,30\nlab/p2_a,p2,30\n")
    (tmp_path / "intervals.csv").write_text(
        "video,onset,apex,offset,kind,emotion\n"
        "lab_p1_a,10,15,20,micro,happy\n"
        "lab_p1_a,100,,180,Macro,\n"
        "lab_p2_a,1,6,9,micro,\n"           # onset 1 is before the video's first frame (5)
        "lab_p9_a,1,2,3,micro,\n"           # no such video
        "lab_p2_a,40,45,50,blink,\n")       # a kind neither micro nor macro
    return tmp_path


def test_a_manifest_of_long_videos_with_an_intervals_file(manifest_of_videos):
    result = get_adapter("manifest")(manifest_of_videos, unit="videos", intervals="intervals.csv")
    assert result.unit == "video" and list(by_id(result)) == ["lab_p1_a", "lab_p2_a"]
    assert by_id(result)["lab_p1_a"].n_frames == 300 and by_id(result)["lab_p1_a"].emotion == ""
    table = result.intervals
    assert list(table["name"]) == ["lab_p1_a_1", "lab_p1_a_2", "lab_p2_a_1", "lab_p2_a_2"]
    assert list(table["kind"]) == ["micro", "macro", "micro", ""]
    assert table.iloc[0][["onset", "apex", "offset", "emotion"]].tolist() == [10, 15, 20, "happy"]
    assert table.iloc[2]["flags"] == "onset_not_on_disk"
    assert {(q.sample, q.kind) for q in result.quirks} == {
        ("lab_p2_a_1", "onset_not_on_disk"), ("row 5", "unknown_video"), ("lab_p2_a_2", "unknown_type")}


def test_a_manifest_without_intervals_has_an_empty_table_and_intervals_need_videos(manifest_of_videos):
    assert get_adapter("manifest")(manifest_of_videos, unit="videos").intervals.empty
    with pytest.raises(ValueError, match="add unit=videos"):
        get_adapter("manifest")(manifest_of_videos, intervals="intervals.csv")
    with pytest.raises(FileNotFoundError, match="intervals file nowhere.csv not found"):
        get_adapter("manifest")(manifest_of_videos, unit="videos", intervals="nowhere.csv")
