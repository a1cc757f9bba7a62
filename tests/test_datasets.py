"""Dataset adapters on tiny synthetic layouts, and on the real sheets when present.

Frame files are empty: adapters map files by name and never decode them.
The real annotation sheets are read in place (never copied into the repo);
their tests skip when the shared ``annotations`` folder is absent.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mepipe.featurestore.errors import ConfigError
from mepipe.pipeline.datasets import adapter_names, get_adapter
from mepipe.pipeline.datasets.sheets import find_sheet, normalise_subject, parse_frame, read_sheet
from sheet_files import by_id, kinds, touch_frames, write_xlsx

SAMM_HEADER = [
    "Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
    "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes",
]
CASME2_HEADER = [
    "Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
    "Action Units", "Estimated Emotion", "Objective Classes",
]
PREAMBLE = [["SAMM Dataset - Master FACS Codes"], [], ["Symbol Key:"], ['"/" = or'], []]


def _annotations_dir() -> Path | None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "annotations"
    if shared.is_dir():
        return shared
    env = os.environ.get("MEPIPE_ANNOTATIONS")
    return Path(env) if env and Path(env).is_dir() else None


ANNOTATIONS = _annotations_dir()
needs_real_sheets = pytest.mark.skipif(ANNOTATIONS is None, reason="shared annotations folder not found")


def samm_row(subject, clip, onset, apex, offset, emotion="Anger", objective=3, aus="4+7") -> list[object]:
    return [subject, clip, 1, onset, apex, offset, None, "Micro - 1/2", aus, emotion, objective, None]


def write_samm_sheet(path: Path, rows: list[list[object]], preamble: list[list[object]] = PREAMBLE) -> Path:
    return write_xlsx(path, [*preamble, SAMM_HEADER, *rows])


def samm_frames(root: Path, subject: str, clip: str, numbers) -> Path:
    folder = root / subject / clip
    touch_frames(folder, numbers, lambda n: f"{subject}_{n:05d}.jpg")
    return folder


def casme2_frames(root: Path, subject: str, clip: str, numbers, prefix: str = "img") -> None:
    touch_frames(root / f"sub{subject}" / clip, numbers, lambda n: f"{prefix}{n}.jpg")


# --- sheet helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "width", "expected"),
    [(6, 3, "006"), ("006", 3, "006"), (6.0, 3, "006"), (" 6 ", 3, "006"), (1, 2, "01"), ("01", 2, "01"), ("sub1", 2, "01")],
)
def test_normalise_subject(value, width, expected):
    assert normalise_subject(value, width) == expected


@pytest.mark.parametrize(
    ("cell", "number"),
    [(46, 46), (46.0, 46), ("46", 46), (np.int64(7), 7), ("/", None), (None, None), (float("nan"), None), ("", None), ("n/a", None), (4.5, None)],
)
def test_parse_frame(cell, number):
    value, why = parse_frame(cell)
    assert value == number
    assert (why is None) == (number is not None)


@pytest.mark.parametrize("preamble", [[], PREAMBLE, PREAMBLE + [["notes"], []]])
def test_header_row_found_after_any_preamble(tmp_path, preamble):
    sheet = read_sheet(write_samm_sheet(tmp_path / "s.xlsx", [samm_row("006", "006_1_2", 10, 12, 14)], preamble))
    assert [r.row for r in sheet.rows] == [len(preamble) + 2]
    assert sheet.rows[0].get("clip") == "006_1_2"


def test_csv_sheet_keeps_excel_row_numbers(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("Title line,,\n\nSubject,Filename,OnsetFrame,ApexFrame,OffsetFrame\n\n01,EP01,1,2,3\n")
    sheet = read_sheet(path)
    assert [r.row for r in sheet.rows] == [5]
    assert sheet.rows[0].get("subject") == "01"


def test_missing_column_names_file_and_header(tmp_path):
    path = write_xlsx(tmp_path / "bad.xlsx", [["Subject", "Filename", "Apex"], ["006", "006_1", 3]])
    with pytest.raises(ValueError, match=r"bad\.xlsx.*onset.*Onset Frame"):
        read_sheet(path)


def test_no_header_row_is_a_clear_error(tmp_path):
    path = write_xlsx(tmp_path / "bad.xlsx", [["not a sheet"], ["at all"]])
    with pytest.raises(ValueError, match=r"bad\.xlsx.*'Subject'.*--annotations"):
        read_sheet(path)


def test_find_sheet_error_names_pattern_and_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"SAMM_Micro_FACS_Codes\*\.xlsx.*--annotations FILE"):
        get_adapter("samm")(tmp_path)


def test_find_sheet_prefers_newest_and_ignores_lock_files(tmp_path):
    for name in ("CASME2-coding-20140508.xlsx", "CASME2-coding-20190701.xlsx", "~$CASME2-coding-20990101.xlsx"):
        (tmp_path / name).write_bytes(b"")
    assert find_sheet(tmp_path, ("CASME2-coding-*.xlsx",)).name == "CASME2-coding-20190701.xlsx"


def test_registry_lists_every_adapter():
    assert set(adapter_names()) >= {"samm", "demo", "casme2", "casme", "smic", "ckplus", "manifest", "casme3", "4dme",
                                    "mmew", "casme-sq", "demo-casme3"}
    with pytest.raises(KeyError, match="known: "):
        get_adapter("nope")


# --- SAMM and demo -------------------------------------------------------------------------------


@pytest.fixture
def samm_root(tmp_path) -> Path:
    """Two clips; 006_1_2 has frames outside onset..offset and a gap at 105."""
    root = tmp_path / "SAMM"
    samm_frames(root, "006", "006_1_2", [n for n in range(95, 121) if n != 105])
    samm_frames(root, "007", "007_3_1", range(10, 21))
    write_samm_sheet(
        root / "SAMM_Micro_FACS_Codes_v2.xlsx",
        [samm_row(6, "006_1_2", 100, 110, 115), samm_row("007", "007_3_1", 10, 15, 20, "Happiness", 1, 12)],
    )
    return root


def test_samm_adapter(samm_root):
    result = get_adapter("samm")(samm_root)
    assert result.sheet.endswith("SAMM_Micro_FACS_Codes_v2.xlsx")
    s = by_id(result)["006_1_2"]
    assert (s.dataset, s.subject, s.clip, s.fps) == ("samm", "006", "006_1_2", 200.0)
    assert (s.onset, s.apex, s.offset) == (100, 110, 115)
    assert (s.emotion, s.objective_class, s.action_units) == ("Anger", "3", "4+7")
    assert by_id(result)["007_3_1"].action_units == "12"
    assert s.flags == ("frame_gap",) and s.error is None  # 105 is missing: reported, not fatal
    assert [(q.sample, q.kind) for q in result.quirks] == [("006_1_2", "frame_gap")]
    assert "miss 105 (1 frame)" in result.quirks[0].message
    assert len(result.table()) == 2


def test_samm_frames_mapped_by_number_not_position(samm_root):
    s = by_id(get_adapter("samm")(samm_root))["006_1_2"]
    assert s.frame_numbers[0] == 95 and 105 not in s.frame_numbers and s.n_frames == 25
    for number, file in zip(s.frame_numbers, s.frame_files):
        assert Path(file).name == f"006_{number:05d}.jpg"
    assert Path(s.frame_files[s.index_of(s.onset)]).name == "006_00100.jpg"
    assert Path(s.frame_files[s.index_of(s.offset)]).name == "006_00115.jpg"
    assert s.index_of(105) is None


def test_subject_written_as_6_finds_folder_006(samm_root):
    s = by_id(get_adapter("samm")(samm_root))["006_1_2"]
    assert s.subject == "006" and s.error is None


def test_samm_root_may_be_parent_of_samm_folder(samm_root):
    result = get_adapter("samm")(samm_root.parent, samm_root / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert all(s.error is None for s in result.samples)


def test_apex_outside_span_is_kept_with_apex_none(tmp_path):
    samm_frames(tmp_path, "028", "028_4_1", range(1071, 1135))
    sheet = write_samm_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [samm_row("028", "028_4_1", 1071, 1143, 1134)])
    result = get_adapter("samm")(tmp_path)
    s = by_id(result)["028_4_1"]
    assert (s.onset, s.apex, s.offset) == (1071, None, 1134)
    assert s.flags == ("apex_outside_span",)
    (quirk,) = result.quirks
    assert (quirk.sample, quirk.kind, quirk.row) == ("028_4_1", "apex_outside_span", len(PREAMBLE) + 2)
    assert quirk.source == sheet.name and "1143" in quirk.message


def test_onset_after_offset_clears_all_three(tmp_path):
    samm_frames(tmp_path, "006", "006_1_2", range(90, 121))
    write_samm_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [samm_row("006", "006_1_2", 120, 110, 100)])
    result = get_adapter("samm")(tmp_path)
    s = by_id(result)["006_1_2"]
    assert (s.onset, s.apex, s.offset) == (None, None, None)
    assert s.flags == ("onset_after_offset",) and s.error is None
    assert "SAMM_Micro_FACS_Codes_v2.xlsx row 7" in str(result.quirks[0])


def test_missing_folder_gives_sample_with_error(tmp_path):
    samm_frames(tmp_path, "006", "006_1_2", range(1, 4))
    write_samm_sheet(
        tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx",
        [samm_row("006", "006_1_2", 1, 2, 3), samm_row("006", "006_9_9", 1, 2, 3)],
    )
    result = get_adapter("samm")(tmp_path)
    s = by_id(result)["006_9_9"]
    assert s.error == f"missing folder {tmp_path / '006' / '006_9_9'}"
    assert s.flags == ("missing_folder",) and s.n_frames == 0
    (quirk,) = result.quirks
    assert (quirk.sample, quirk.kind, quirk.row) == ("006_9_9", "missing_folder", len(PREAMBLE) + 3)


def test_ground_truth_not_on_disk_is_flagged(tmp_path):
    samm_frames(tmp_path, "006", "006_1_2", range(100, 111))
    write_samm_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [samm_row("006", "006_1_2", 100, 105, 118)])
    result = get_adapter("samm")(tmp_path)
    s = by_id(result)["006_1_2"]
    assert s.offset == 118 and s.flags == ("offset_not_on_disk",) and s.index_of(s.offset) is None


def test_unparsable_cells_and_bad_rows_are_quirks(tmp_path):
    samm_frames(tmp_path, "006", "006_1_2", range(1, 10))
    write_samm_sheet(
        tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx",
        [samm_row("006", "006_1_2", 1, "?", None), samm_row("006", None, 1, 2, 3), samm_row("006", "006_1_2", 1, 2, 3)],
    )
    result = get_adapter("samm")(tmp_path)
    s = by_id(result)["006_1_2"]
    assert (s.onset, s.apex, s.offset) == (1, None, None)
    assert s.flags == ("apex_unparsable", "offset_unparsable")
    assert {q.kind for q in result.quirks} == {"apex_unparsable", "offset_unparsable", "incomplete_row", "duplicate_sample"}


def test_duplicate_frame_numbers_give_error_not_exception(tmp_path):
    folder = samm_frames(tmp_path, "006", "006_1_2", range(1, 4))
    (folder / "006_0002.jpg").write_bytes(b"")
    write_samm_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [samm_row("006", "006_1_2", 1, 2, 3)])
    s = by_id(get_adapter("samm")(tmp_path))["006_1_2"]
    assert s.flags == ("ambiguous_frames",) and "appears twice" in s.error


def test_demo_adapter_reads_samm_layout(tmp_path):
    samm_frames(tmp_path, "001", "001_1_1", range(0, 40))
    write_samm_sheet(tmp_path / "SAMM_Micro_FACS_Codes_demo.xlsx", [samm_row(1, "001_1_1", 5, 20, 35, "Happiness", 1, 12)])
    (s,) = get_adapter("demo")(tmp_path).samples
    assert (s.dataset, s.subject, s.fps, s.onset, s.apex, s.offset) == ("demo", "001", 200.0, 5, 20, 35)
    assert s.n_frames == 40


# --- CASME II and CASME --------------------------------------------------------------------------


def write_casme2_sheet(path: Path, rows: list[list[object]]) -> Path:
    return write_xlsx(path, [CASME2_HEADER, *rows])


def casme2_row(subject, clip, onset, apex, offset, aus="12", emotion="happiness", objective=1) -> list[object]:
    return [subject, clip, None, onset, apex, offset, None, aus, emotion, objective]


@pytest.mark.parametrize(("folder", "prefix", "release"), [("CASME2_RAW_selected", "img", "raw"), ("Cropped", "reg_img", "cropped")])
def test_casme2_adapter(tmp_path, folder, prefix, release):
    casme2_frames(tmp_path / folder, "01", "EP02_01f", range(46, 87), prefix)
    casme2_frames(tmp_path / folder, "04", "EP12_01f", range(261, 322), prefix)
    write_casme2_sheet(
        tmp_path / "CASME2-coding-20190701.xlsx",
        [casme2_row(1, "EP02_01f", 46, 59, 86), casme2_row("04", "EP12_01f", 261, "/", 321, "4+7+L10", "disgust", 4)],
    )
    for option in (None, release):
        result = get_adapter("casme2")(tmp_path, release=option)
        s = by_id(result)["sub01_EP02_01f"]
        assert (s.dataset, s.subject, s.clip, s.fps) == ("casme2", "01", "EP02_01f", 200.0)
        assert (s.onset, s.apex, s.offset, s.n_frames) == (46, 59, 86, 41)
        assert Path(s.frame_files[0]).name == f"{prefix}46.jpg"
        slash = by_id(result)["sub04_EP12_01f"]
        assert slash.apex is None and slash.flags == ("apex_unparsable",)
        (quirk,) = result.quirks
        assert (quirk.kind, quirk.row) == ("apex_unparsable", 3) and "'/'" in quirk.message


def test_casme2_release_detected_inside_release_folder(tmp_path):
    casme2_frames(tmp_path / "Cropped", "01", "EP02_01f", range(46, 50), "reg_img")
    sheet = write_casme2_sheet(tmp_path / "sheet.xlsx", [casme2_row("01", "EP02_01f", 46, 47, 49)])
    (s,) = get_adapter("casme2")(tmp_path / "Cropped", sheet).samples
    assert s.error is None and Path(s.frame_files[0]).name == "reg_img46.jpg"
    with pytest.raises(ValueError, match="cropped CASME II release, not the raw"):
        get_adapter("casme2")(tmp_path / "Cropped", sheet, release="raw")
    with pytest.raises(ValueError, match="release 'both' is unknown"):
        get_adapter("casme2")(tmp_path, sheet, release="both")


def test_casme_adapter_accepts_other_column_names(tmp_path):
    root = tmp_path / "CASME"
    touch_frames(root / "CASME_raw_selected" / "sub01" / "EP01_5", range(1, 30), lambda n: f"EP01_5-{n}.jpg")
    header = ["Subject", "Filename", None, "OnsetF", "ApexF1", "ApexF2", "OffsetF", None, "Action Units", "Emotion"]
    write_xlsx(root / "CASME-coding-20140508.xlsx", [header, [1, "EP01_5", None, 3, 10, None, 25, None, "4", "tense"]])
    (s,) = get_adapter("casme")(root).samples
    assert (s.dataset, s.sample, s.subject, s.fps) == ("casme", "sub01_EP01_5", "01", 60.0)
    assert (s.onset, s.apex, s.offset, s.emotion, s.action_units) == (3, 10, 25, "tense", "4")
    assert s.frame_numbers == tuple(range(1, 30)) and not s.flags


def test_absent_apex_column_reads_none_without_quirk(tmp_path):
    touch_frames(tmp_path / "sub02" / "EP03_1", range(1, 9), lambda n: f"{n}.jpg")
    write_xlsx(tmp_path / "CASME-coding.xlsx", [["Subject", "Filename", "Onset", "Offset"], ["2", "EP03_1", 1, 8]])
    result = get_adapter("casme")(tmp_path)
    (s,) = result.samples
    assert (s.onset, s.apex, s.offset) == (1, None, 8) and not s.flags and not result.quirks


@pytest.mark.parametrize("name", ["samm", "demo", "casme2", "casme", "smic", "ckplus"])
def test_missing_root_is_a_clear_error(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        get_adapter(name)(tmp_path / "nowhere")


# --- SMIC, CK+, manifest -------------------------------------------------------------------------


def test_smic_adapter(tmp_path):
    for modality in ("HS", "VIS"):
        micro = tmp_path / modality / "s1" / "micro"
        touch_frames(micro / "negative" / "s1_ne_01", range(106030, 106040), lambda n: f"image{n}.bmp")
        touch_frames(micro / "surprise" / "s1_sur_01", range(5, 12), lambda n: f"image{n}.bmp")
    (tmp_path / "HS" / "s1" / "non_micro").mkdir()
    result = get_adapter("smic")(tmp_path)
    s = by_id(result)["s1_ne_01"]
    assert (s.dataset, s.subject, s.emotion, s.fps) == ("smic", "s1", "negative", 100.0)
    assert (s.onset, s.apex, s.offset, s.n_frames) == (106030, None, 106039, 10)
    assert by_id(result)["s1_sur_01"].emotion == "surprise" and not result.quirks
    assert {s.fps for s in get_adapter("smic")(tmp_path, modality="vis").samples} == {25.0}
    with pytest.raises(ValueError, match="modality 'IR'"):
        get_adapter("smic")(tmp_path, modality="IR")


def test_ckplus_adapter(tmp_path):
    images = tmp_path / "cohn-kanade-images"
    touch_frames(images / "S005" / "001", range(1, 12), lambda n: f"S005_001_{n:08d}.png")
    touch_frames(images / "S005" / "002", range(1, 6), lambda n: f"S005_002_{n:08d}.png")
    (tmp_path / "Emotion" / "S005" / "001").mkdir(parents=True)
    (tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000011_emotion.txt").write_text("   3.0000000e+00\n")
    (tmp_path / "FACS" / "S005" / "001").mkdir(parents=True)
    (tmp_path / "FACS" / "S005" / "001" / "S005_001_00000011_facs.txt").write_text(
        "   9.0000000e+00   0.0000000e+00\n   1.7000000e+01   0.0000000e+00\n"
    )
    result = get_adapter("ckplus")(tmp_path)
    s = by_id(result)["S005_001"]
    assert (s.dataset, s.subject, s.clip, s.fps, s.emotion, s.action_units) == ("ckplus", "S005", "001", 30.0, "disgust", "9+17")
    assert (s.onset, s.apex, s.offset) == (1, 11, 11) and not s.flags
    unlabelled = by_id(result)["S005_002"]
    assert unlabelled.emotion == "" and unlabelled.flags == ("no_emotion_label",) and unlabelled.error is None
    assert kinds(result, "S005_002") == {"no_emotion_label"}


def write_video(path: Path, n_frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (16, 16))
    for i in range(n_frames):
        writer.write(np.full((16, 16, 3), i * 20, np.uint8))
    writer.release()


def test_manifest_adapter(tmp_path):
    data = tmp_path / "data"
    touch_frames(data / "lab" / "p1_clip", range(0, 20), lambda n: f"frame_{n:04d}.png")
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "take1.avi", 6, 25.0)
    csv = tmp_path / "manifest.csv"
    pd.DataFrame(
        [
            {"path": "lab/p1_clip", "subject": "p1", "label": "happy", "onset": 2, "apex": 8, "offset": 15, "fps": 100, "sample": ""},
            {"path": "videos/take1.avi", "subject": "p2", "label": "surprise", "onset": "", "apex": "", "offset": "", "fps": "", "sample": "t1"},
            {"path": "lab/absent", "subject": "p3", "label": "fear", "onset": "", "apex": "", "offset": "", "fps": 30, "sample": ""},
        ]
    ).to_csv(csv, index=False)
    result = get_adapter("manifest")(data, csv)
    folder, video, missing = (by_id(result)[k] for k in ("lab_p1_clip", "t1", "lab_absent"))
    assert (folder.subject, folder.emotion, folder.fps, folder.onset, folder.apex, folder.offset) == ("p1", "happy", 100.0, 2, 8, 15)
    assert folder.n_frames == 20 and folder.video is None and not folder.flags
    assert video.video == str(tmp_path / "videos" / "take1.avi") and video.frame_files == ()
    assert (video.frame_numbers, video.fps, video.onset) == (tuple(range(6)), 25.0, None)
    assert missing.error.startswith("missing path 'lab/absent'") and missing.flags == ("missing_path",)
    (quirk,) = result.quirks
    assert (quirk.sample, quirk.source, quirk.row) == ("lab_absent", "manifest.csv", 4)
    assert len(get_adapter("manifest")(csv).samples) == 3


def test_manifest_span_annotated_cuts_each_row_to_its_onset_offset(tmp_path):
    """predict cuts spotted intervals out of one long video: only onset..offset is a clip's frames."""
    write_video(tmp_path / "take.avi", 12, 25.0)
    touch_frames(tmp_path / "f", range(1, 10), lambda n: f"{n}.jpg")
    (tmp_path / "manifest.csv").write_text("path,subject,label,onset,apex,offset,sample\n"
                                           "take.avi,s,x,3,5,7,a\nf,s,x,2,4,6,b\ntake.avi,s,x,,,,c\n")
    whole = by_id(get_adapter("manifest")(tmp_path, fps=25))
    cut = by_id(get_adapter("manifest")(tmp_path, fps=25, span="annotated"))
    assert whole["a"].frame_numbers == tuple(range(12)) and cut["a"].frame_numbers == (3, 4, 5, 6, 7)
    assert cut["b"].frame_numbers == (2, 3, 4, 5, 6) and [Path(f).name for f in cut["b"].frame_files] == [
        "2.jpg", "3.jpg", "4.jpg", "5.jpg", "6.jpg"]
    assert (cut["a"].onset, cut["a"].apex, cut["a"].offset) == (3, 5, 7)
    assert cut["c"].error == "span=annotated needs an onset and an offset" and whole["c"].error is None
    with pytest.raises(ConfigError, match="span 'part'"):
        get_adapter("manifest")(tmp_path, fps=25, span="part")


def test_manifest_flags_contradictions_and_unknown_fps(tmp_path):
    touch_frames(tmp_path / "c", range(1, 10), lambda n: f"{n}.jpg")
    (tmp_path / "manifest.csv").write_text("subject,path,label,onset,apex,offset\ns1,c,x,5,9,2\n")
    result = get_adapter("manifest")(tmp_path)
    (s,) = result.samples
    assert (s.onset, s.apex, s.offset) == (None, None, None)
    assert s.flags == ("onset_after_offset", "no_fps") and "fps" in s.error
    assert get_adapter("manifest")(tmp_path, fps=50).samples[0].fps == 50.0


# --- real sheets (read in place, never copied) ---------------------------------------------------


@pytest.fixture
def tree_dir(tmp_path) -> Iterator[Path]:
    """A folder for a real-sheet tree (~12k-17k empty files): in RAM when a tmpfs is at hand.

    Creating that many inodes on a busy disk takes tens of seconds; on
    ``/dev/shm`` it takes a fraction of one. Falls back to ``tmp_path``.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="mepipe-test-") as folder:
        yield Path(folder)


def _real_rows(path: Path) -> pd.DataFrame:
    """The sheet's data rows under its ``Subject`` header, read independently of the adapters."""
    raw = pd.read_excel(path, header=None, dtype=object)
    header = next(i for i, v in enumerate(raw[0]) if str(v).strip() == "Subject")
    rows = raw.iloc[header + 1 :].dropna(how="all")
    rows.columns = [str(c).strip() for c in raw.iloc[header]]
    return rows


def _frames_for_rows(rows: pd.DataFrame, onset: str, offset: str, folder) -> None:
    """Empty frame files onset..offset for every row; ``folder(row)`` gives (folder, file name of n)."""
    for _, row in rows.iterrows():
        where, name = folder(row)
        touch_frames(where, range(int(row[onset]), int(row[offset]) + 1), name)


@needs_real_sheets
def test_real_samm_sheet(tree_dir):
    sheet = ANNOTATIONS / "SAMM_Micro_FACS_Codes_v2.xlsx"
    rows = _real_rows(sheet)
    subjects = {normalise_subject(v, 3) for v in rows["Subject"]}
    assert (len(rows), len(subjects)) == (159, 29)

    def folder(row):
        subject = normalise_subject(row["Subject"], 3)
        return tree_dir / subject / row["Filename"], lambda n: f"{subject}_{n:05d}.jpg"

    _frames_for_rows(rows, "Onset Frame", "Offset Frame", folder)
    result = get_adapter("samm")(tree_dir, sheet)
    assert len(result.samples) == 159 and len({s.subject for s in result.samples}) == 29
    assert all(s.error is None for s in result.samples)
    flagged = {s.sample: s.flags for s in result.samples if s.flags}
    # the two apexes outside onset..offset, the five AU cells with "or" and the one with "soft focus"
    ambiguous = ("007_6_1", "007_6_5", "011_4_2", "014_5_2", "035_7_2")
    assert flagged == {"028_4_1": ("apex_outside_span",), "032_3_1": ("apex_outside_span",),
                       **dict.fromkeys(ambiguous, ("action_units_ambiguous",)),
                       "026_5_1": ("action_units_unparsable",)}
    spans = {s.sample: s.apex for s in result.samples if "apex_outside_span" in s.flags}
    assert spans == {"028_4_1": None, "032_3_1": None}
    assert {(q.sample, q.row) for q in result.quirks if q.kind == "apex_outside_span"} == {
        ("028_4_1", 140), ("032_3_1", 147)}
    assert by_id(result)["035_7_2"].au_codes == "" and by_id(result)["026_5_1"].au_codes == "14+17"


@needs_real_sheets
def test_real_casme2_sheet(tree_dir):
    sheet = ANNOTATIONS / "CASME2-coding-20190701.xlsx"
    rows = _real_rows(sheet)
    assert (len(rows), rows["Subject"].map(lambda v: normalise_subject(v, 2)).nunique()) == (255, 26)
    slash = {f"sub{normalise_subject(r['Subject'], 2)}_{r['Filename']}" for _, r in rows.iterrows() if str(r["ApexFrame"]).strip() == "/"}
    assert slash == {"sub04_EP12_01f"}

    def folder(row):
        subject = normalise_subject(row["Subject"], 2)
        return tree_dir / "CASME2_RAW_selected" / f"sub{subject}" / row["Filename"], lambda n: f"img{n}.jpg"

    _frames_for_rows(rows, "OnsetFrame", "OffsetFrame", folder)
    result = get_adapter("casme2")(tree_dir, sheet)
    assert len(result.samples) == 255 and len({s.subject for s in result.samples}) == 26
    assert all(s.error is None for s in result.samples)
    flagged = {s.sample: s for s in result.samples if s.flags}
    assert set(flagged) == slash
    assert all(s.apex is None and s.flags == ("apex_unparsable",) for s in flagged.values())
    assert {e.emotion for e in result.samples} == {"happiness", "disgust", "repression", "surprise", "others", "sadness", "fear"}
