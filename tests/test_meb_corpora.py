"""The corpora MEB adds (CAS(ME)³ part A, 4DME, MMEW) on small synthetic releases in their real layouts.

Each fixture writes a few clips as the release lays them out, with the
sheet's quirks: CAS(ME)³'s repeated Filenames (several expressions cut from
one video), a subject folder in another case, comma-separated AUs, a row
whose offset lies beyond the video; 4DME's ``(k)`` AUs and combined
emotions; MMEW's clip stored under another emotion's folder. Frame files are
empty (adapters map them by name).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from mepipe.pipeline.datasets import get_adapter
from sheet_files import by_id, kinds, touch_frames, write_xlsx

CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]


def casme3_video(root: Path, subject: str, video: str, numbers, stream: str = "color") -> Path:
    folder = root / subject / video / stream
    touch_frames(folder, numbers, lambda n: f"{n}.jpg")
    return folder


@pytest.fixture
def casme3_root(tmp_path) -> Path:
    """spNO.1 video a holds two expressions (355..370, 500..512); spNO.2's folder is spelled spNo.2 on disk."""
    root = tmp_path / "part_A" / "data"
    casme3_video(root, "spNO.1", "a", range(300, 560))
    casme3_video(root, "spNO.1", "a", range(300, 560), stream="depth")
    casme3_video(root, "spNo.2", "b", [n for n in range(1, 90) if n != 40])
    write_xlsx(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [
        CASME3_HEADER,
        ["spNO.1", "a", 355, 362, 370, "4,7", 3, "disgust"],
        ["spNO.1", "a", 500, 505, 512, "12", 1, "happy"],
        ["spNO.2", "b", 30, 44, 50, "1+2", 2, "surprise"],
        ["spNO.2", "b", 70, 80, 95, "4，10", 4, "anger"],
        ["spNO.1", "a", 355, 360, 371, "4", 3, "disgust"],
    ], title="label")
    return tmp_path


def test_casme3_cuts_each_expression_from_its_video(casme3_root):
    result = get_adapter("casme3")(casme3_root)
    assert set(by_id(result)) == {"spNO.1_a_355", "spNO.1_a_500", "spNO.2_b_30", "spNO.2_b_70"}
    first, second = by_id(result)["spNO.1_a_355"], by_id(result)["spNO.1_a_500"]
    assert (first.dataset, first.subject, first.clip, first.fps) == ("casme3", "spNO.1", "a", 30.0)
    assert first.frame_numbers == tuple(range(355, 371)) and second.frame_numbers == tuple(range(500, 513))
    assert all(Path(f).parent.name == "color" for f in first.frame_files)
    assert (first.onset, first.apex, first.offset, first.emotion, first.objective_class) == (
        355, 362, 370, "disgust", "3")
    assert (first.action_units, first.au_codes) == ("4,7", "4+7")
    assert not first.flags and not second.flags
    assert kinds(result, "spNO.1_a_355") == {"duplicate_sample"}  # the repeated row, skipped


def test_casme3_subject_folder_in_another_case_and_clip_quirks(casme3_root):
    result = get_adapter("casme3")(casme3_root)
    gap, beyond = by_id(result)["spNO.2_b_30"], by_id(result)["spNO.2_b_70"]
    assert gap.error is None and 40 not in gap.frame_numbers and gap.flags == ("frame_gap",)
    assert Path(gap.frame_files[0]).parts[-4:-1] == ("spNo.2", "b", "color")
    assert beyond.frame_numbers == tuple(range(70, 90)) and beyond.au_codes == "4+10"
    assert set(beyond.flags) == {"frame_gap", "offset_not_on_disk"}  # 90..95 are past the video's end
    (case,) = [q for q in result.quirks if q.kind == "folder_case"]
    assert case.sample == "spNO.2" and "spNo.2" in case.message
    assert any("Onset..Offset" in line for line in result.assumptions)


def test_casme3_depth_stream_only_when_asked(casme3_root):
    depth = by_id(get_adapter("casme3")(casme3_root, stream="depth"))
    assert all(Path(f).parent.name == "depth" for f in depth["spNO.1_a_355"].frame_files)
    assert depth["spNO.2_b_30"].flags == ("missing_folder",)  # spNo.2 has no depth frames here
    with pytest.raises(ValueError, match="stream 'ir' is unknown"):
        get_adapter("casme3")(casme3_root, stream="ir")


FOURDME_HEADER = ["sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset", "AUs", "AU1", "AU4", "fold",
                  "eye blink", "Positive", "Negative", "Surprise", "Repression", "Others"]


@pytest.fixture
def fourdme_root(tmp_path) -> Path:
    for sub, fold, numbers in (("S01", "S01_02", range(11, 41)), ("S02", "03", range(1, 25))):
        touch_frames(tmp_path / "gray_micro" / sub / fold, numbers, lambda n: f"Frame_{n:09d}.jpg")
    write_xlsx(tmp_path / "4DME_Labelling_Micro_release v1.xlsx", [
        FOURDME_HEADER,
        ["S01", "S01_02", "Negative", 12, 20, 38, "AU4+AU7(k)", 0, 1, 1, 0, 0, 1, 0, 0, 0],
        ["S02", "03", "Surprise+Positive", 2, 9, 24, "AU1+AU2+AU12", 1, 0, 2, 1, 1, 0, 1, 0, 0],
    ])
    return tmp_path


def test_4dme_reads_gray_micro_and_drops_k_aus(fourdme_root):
    result = get_adapter("4dme")(fourdme_root)
    a, b = by_id(result)["S01_02"], by_id(result)["S02_03"]
    assert (a.dataset, a.subject, a.clip, a.fps) == ("4dme", "S01", "S01_02", 60.0)
    assert (a.onset, a.apex, a.offset, a.n_frames) == (12, 20, 38, 30)
    assert (a.action_units, a.au_codes, a.emotion) == ("AU4+AU7(k)", "4", "Negative")
    assert (b.emotion, b.au_codes, b.frame_numbers[0]) == ("Surprise+Positive", "1+2+12", 1)
    assert not result.quirks and any("(k)" in line for line in result.assumptions)


def test_4dme_cropped_frames_folder_is_an_option(fourdme_root):
    (fourdme_root / "gray_micro").rename(fourdme_root / "gray_micro_crop")
    assert kinds(get_adapter("4dme")(fourdme_root), "S01_02") == {"missing_folder"}
    result = get_adapter("4dme")(fourdme_root, frames_dir="gray_micro_crop")
    assert all(s.error is None for s in result.samples)


MMEW_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
               "Estimated Emotion", "remarks"]


@pytest.fixture
def mmew_root(tmp_path) -> Path:
    frames = tmp_path / "Micro_Expression"
    touch_frames(frames / "happiness" / "S01-01-001", range(1, 40), lambda n: f"{n}.jpg")
    touch_frames(frames / "repression" / "S02-03-004", range(1, 50), lambda n: f"{n}.jpg")
    write_xlsx(tmp_path / "MMEW_Micro_Exp.xlsx", [
        MMEW_HEADER,
        ["S01", "S01-01-001", 3, 15, 30, "AU6+AU12", "happiness", None],
        ["S02", "S02-03-004", 5, 60, 40, "AU14", "others", "apex after offset"],
    ])
    return tmp_path


def test_mmew_finds_clips_under_any_emotion_folder(mmew_root):
    result = get_adapter("mmew")(mmew_root)
    happy, other = by_id(result)["S01-01-001"], by_id(result)["S02-03-004"]
    assert (happy.dataset, happy.subject, happy.fps, happy.au_codes) == ("mmew", "01", 90.0, "6+12")
    assert (happy.onset, happy.apex, happy.offset) == (3, 15, 30) and not happy.flags
    assert other.error is None and Path(other.frame_files[0]).parts[-3] == "repression"
    assert other.emotion == "others" and (other.apex, other.flags) == (None, ("apex_outside_span",))
    assert kinds(result, "S02-03-004") == {"apex_outside_span", "folder_emotion"}


@pytest.mark.parametrize("name", ["casme3", "4dme", "mmew", "casme-sq"])
def test_missing_root_and_sheet_are_clear_errors(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        get_adapter(name)(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="--annotations FILE"):
        get_adapter(name)(tmp_path)
