"""The CASME II, SMIC-HS and CAS(ME)³ demo corpora: real layouts, read by the real adapters, and their composite
list."""
from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from mepipe.pipeline.datasets import get_adapter
from mepipe.pipeline.demo import PRESETS, TRUTH_NAME, true_landmarks, write_demo
from mepipe.pipeline.demo.composite import COMPOSITE_PATH, composite_rows, composite_text
from mepipe.train.labels import apply_scheme

CASME2_SMALL = dataclasses.replace(PRESETS["demo-casme2"], n_subjects=1, n_clips=1, composite_skip=())
SMIC_SMALL = dataclasses.replace(PRESETS["demo-smic"], n_subjects=1, n_clips=1)
CASME3_SMALL = dataclasses.replace(PRESETS["demo-casme3"], n_subjects=2, classes=("happy", "disgust"))


@pytest.fixture(scope="module")
def casme2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casme2") / "demo-casme2"
    write_demo(root, CASME2_SMALL)
    return root


@pytest.fixture(scope="module")
def smic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smic") / "demo-smic"
    write_demo(root, SMIC_SMALL)
    return root


@pytest.fixture(scope="module")
def casme3(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casme3") / "demo-casme3"
    write_demo(root, CASME3_SMALL)
    return root


@pytest.mark.slow
def test_casme3_demo_cuts_several_clips_from_one_video(casme3):
    truth = pd.read_csv(casme3 / TRUTH_NAME)
    videos = truth.groupby(["subject", "filename"])
    assert sorted(videos.groups) == [("spNO.1", "a"), ("spNO.1", "b"), ("spNO.2", "a"), ("spNO.2", "b")]
    for (subject, video), clips in videos:
        folder = casme3 / subject / video / "color"
        names = [p.name for p in folder.iterdir()]
        assert all(re.fullmatch(r"\d+\.jpg", n) for n in names), names
        # one clip per class, each in its own block of the video's frame numbers
        spans = [range(c.first_frame, c.last_frame + 1) for c in clips.itertuples()]
        assert sorted(int(n[:-4]) for n in names) == sorted(n for span in spans for n in span)
        assert sorted(clips["emotion"]) == ["disgust", "happy"] and len(clips) == 2
        assert all(c.first_frame < c.onset < c.apex < c.offset < c.last_frame for c in clips.itertuples())
    frame = cv2.imread(str(next((casme3 / "spNO.1" / "a" / "color").iterdir())), cv2.IMREAD_UNCHANGED)
    assert frame.shape == (480, 640, 3) and not np.array_equal(frame[..., 0], frame[..., 2])


def test_casme3_demo_sheet_has_the_part_a_format(casme3):
    book = openpyxl.load_workbook(casme3 / "cas(me)3_part_A_ME_label_JpgIndex_demo.xlsx")
    assert book.sheetnames == ["label"]
    rows = list(book["label"].values)
    assert rows[0] == ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")
    assert {(r[5], r[7]) for r in rows[1:]} == {("12", "happy"), ("4,7", "disgust")}
    assert [r[:2] for r in rows[1:]] == [("spNO.1", "a")] * 2 + [("spNO.1", "b")] * 2 + [("spNO.2", "a")] * 2 + [
        ("spNO.2", "b")] * 2


def test_casme3_adapter_reads_the_demo_and_flags_the_erratum(casme3):
    result = get_adapter("demo-casme3")(casme3)
    table = result.table().set_index("sample")
    truth = pd.read_csv(casme3 / TRUTH_NAME)
    for t in truth.itertuples():
        row = table.loc[f"{t.subject}_{t.filename}_{t.onset}"]
        assert (row["dataset"], row["fps"], row["n_frames"]) == ("demo-casme3", 30.0, t.offset - t.onset + 1)
        if t.erratum:  # spNO.2's happy clip in video b: apex written with a digit lost
            assert (t.subject, t.filename, t.emotion) == ("spNO.2", "b", "happy")
            assert pd.isna(row["apex"]) and row["flags"] == "apex_outside_span"
        else:
            assert row["apex"] == t.apex and row["flags"] == ""
    assert set(table["au_codes"]) == {"12", "4+7"}
    labels, classes, dropped = apply_scheme(table, "megc-3")
    assert dropped == 0 and {classes[c] for c in labels} == {"positive", "negative"}


@pytest.mark.slow
def test_casme2_demo_has_the_raw_release_layout(casme2):
    truth = pd.read_csv(casme2 / TRUTH_NAME)
    assert sorted(truth["filename"]) == ["EP01_01", "EP02_01", "EP03_01", "EP06_01", "EP07_02"]
    for row in truth.itertuples():
        folder = casme2 / "CASME2_RAW_selected" / "sub01" / row.filename
        names = sorted(p.name for p in folder.iterdir())
        assert all(re.fullmatch(r"img\d+\.jpg", n) for n in names), names
        numbers = sorted(int(n[3:-4]) for n in names)
        # a raw CASME II folder holds onset..offset, numbered as the sheet counts
        assert numbers == list(range(row.onset, row.offset + 1))
        frame = cv2.imread(str(folder / names[0]), cv2.IMREAD_UNCHANGED)
        assert frame.shape == (480, 640, 3)
        assert not np.array_equal(frame[..., 0], frame[..., 2]), "CASME II frames are colour"


def test_casme2_demo_sheet_has_the_2019_format_with_a_slash_apex(casme2):
    rows = list(openpyxl.load_workbook(casme2 / "CASME2-coding-demo.xlsx").active.values)
    assert rows[0] == ("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                       "Action Units", "Estimated Emotion", "Objective Classes")
    body = {r[1]: r for r in rows[1:]}
    assert {type(r[0]) for r in body.values()} == {int}
    assert body["EP03_01"][4] == "/"
    assert {r[8] for r in body.values()} == {"happiness", "surprise", "disgust", "repression", "others"}


@pytest.mark.slow
def test_only_the_erratum_clip_has_a_slash_apex(tmp_path):
    params = dataclasses.replace(PRESETS["demo-casme2"], n_subjects=2, n_clips=1, classes=("disgust",),
                                 extra_clips=(), composite_skip=())
    write_demo(tmp_path, params)
    table = get_adapter("demo-casme2")(tmp_path).table().set_index("sample")
    assert table["apex"].isna().to_dict() == {"sub01_EP03_01": True, "sub02_EP03_01": False}


def test_casme2_adapter_reads_the_demo_and_flags_the_slash(casme2):
    result = get_adapter("demo-casme2")(casme2)
    table = result.table().set_index("sample")
    assert set(table["dataset"]) == {"demo-casme2"} and set(table["subject"]) == {"01"}
    assert table.loc["sub01_EP03_01", "flags"] == "apex_unparsable"
    assert pd.isna(table.loc["sub01_EP03_01", "apex"])
    truth = pd.read_csv(casme2 / TRUTH_NAME).set_index("filename")
    assert table.loc["sub01_EP01_01", "apex"] == truth.loc["EP01_01", "apex"]
    assert (table["n_frames"] == CASME2_SMALL.n_frames).all()


def test_smic_demo_has_the_hs_layout_and_no_apex(smic):
    result = get_adapter("demo-smic")(smic)
    table = result.table().set_index("sample")
    assert sorted(table.index) == ["s1_ne_01", "s1_po_01", "s1_sur_01"]
    assert set(table["emotion"]) == {"negative", "positive", "surprise"}
    assert set(table["fps"]) == {100.0} and table["apex"].isna().all() and set(table["dataset"]) == {"demo-smic"}
    folder = smic / "HS" / "s1" / "micro" / "negative" / "s1_ne_01"
    names = sorted(p.name for p in folder.iterdir())
    assert all(re.fullmatch(r"image\d{6}\.bmp", n) for n in names) and len(names) == SMIC_SMALL.n_frames
    assert cv2.imread(str(folder / names[0]), cv2.IMREAD_UNCHANGED).shape == (300, 400, 3)


def test_megc3_maps_every_demo_emotion_but_casme2_others(casme2, smic):
    for name, root in (("demo-casme2", casme2), ("demo-smic", smic)):
        table = get_adapter(name)(root).table()
        labels, classes, dropped = apply_scheme(table, "megc-3")
        kept = table.loc[labels.index]
        assert dropped == (table["emotion"] == "others").sum()
        assert {(e, classes[c]) for e, c in zip(kept["emotion"], labels)} <= {
            ("happiness", "positive"), ("surprise", "surprise"), ("disgust", "negative"),
            ("repression", "negative"), ("positive", "positive"), ("negative", "negative"),
        }


@pytest.mark.slow
def test_same_seed_same_bytes_in_every_layout(casme2, smic, casme3, tmp_path):
    for params, root in ((CASME2_SMALL, casme2), (SMIC_SMALL, smic), (CASME3_SMALL, casme3)):
        again = tmp_path / root.name
        write_demo(again, params)
        files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
        for rel in files:
            assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_true_landmarks_name_clips_in_every_layout(casme2):
    truth = true_landmarks(CASME2_SMALL, "sub01/EP06_01")
    assert truth.shape == (CASME2_SMALL.n_frames, 68, 2)
    with pytest.raises(ValueError, match="not among"):
        true_landmarks(CASME2_SMALL, "EP06_01")


def test_presets_give_each_corpus_its_own_people():
    used = [i for p in PRESETS.values() for i in p.identities[: p.n_subjects]]
    assert len(used) == len(set(used))


def test_shipped_composite_list_is_the_generated_one():
    assert COMPOSITE_PATH.read_text() == composite_text()


def test_composite_list_names_clips_as_the_official_list_does():
    rows = composite_rows()
    official = Path(__file__).resolve().parents[2] / "shared" / "protocols" / "megc2019-composite-3class.csv"
    if official.is_file():
        with open(official, newline="") as f:
            first = {r[0]: r for r in csv.reader(f)}
        assert re.fullmatch(r"sub\d\d", first["casme2"][1]) and re.fullmatch(r"s\d\d", first["smic"][1])
    by = {d: [r for r in rows if r[0] == d] for d in ("demo", "demo-casme2", "demo-smic")}
    assert ("demo", "1", "001_1_1", 1) in by["demo"]
    assert all(re.fullmatch(r"sub\d\d", r[1]) for r in by["demo-casme2"])
    assert all(re.fullmatch(r"s\d\d", r[1]) and r[2].startswith(r[1] + "_") for r in by["demo-smic"])
    # the list, not the sheet, decides: "others" and the preset's skipped clip are left out
    assert not any(r[2].startswith("EP07") for r in by["demo-casme2"])
    assert ("demo-casme2", "sub03", "EP06_01", 0) not in rows
    assert {r[3] for r in rows} == {0, 1, 2}


def test_smic_takes_no_erratum():
    with pytest.raises(ValueError, match="no sheet"):
        write_demo(Path("/nonexistent"), dataclasses.replace(SMIC_SMALL, erratum_clip="s1_ne_01"))


@pytest.mark.slow
def test_build_synthesises_a_missing_demo_corpus_and_reads_it_with_the_real_adapter(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import mepipe.pipeline.demo as demo
    from mepipe.cli.main import cli
    from mepipe.featurestore import open_store

    monkeypatch.setitem(demo.PRESETS, "demo-smic", SMIC_SMALL)
    args = ["build", "--dataset", "demo-smic", "--data-root", str(tmp_path), "--scheduler", "sync",
            "--features", "core", "--no-progress", "--no-estimate"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (tmp_path / "datasets" / "demo-smic" / "demo.json").is_file()
    samples = open_store(str(tmp_path / "stores" / "demo-smic.zarr")).samples
    assert set(samples["dataset"]) == {"demo-smic"} and set(samples["subject"]) == {"s1"}
    assert len(samples) == 3


@pytest.mark.slow
def test_demo_casme3_builds_and_every_protocol_runs_on_it(tmp_path, full_store):
    """``mepipe build --dataset demo-casme3`` on a fresh data root, then LOSO, LOVO, LODO and cross-dataset runs."""
    from click.testing import CliRunner

    from mepipe.cli.main import cli
    from mepipe.featurestore import open_store
    from mepipe.train.params import RunParams
    from mepipe.train.run import run_training

    args = ["build", "--dataset", "demo-casme3", "--data-root", str(tmp_path), "--scheduler", "sync", "--no-progress",
            "--no-estimate", "--features", "flow_first_each"]  # what the runs below read (SHCNN); every stage is
    # built on the demo; worker processes and the estimate have their own tests
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "assumed: demo-casme3: sheet frame numbers" in result.output
    store = tmp_path / "stores" / "demo-casme3.zarr"
    samples = open_store(str(store)).samples
    assert len(samples) == 18 and samples["subject"].nunique() == 3 and set(samples["dataset"]) == {"demo-casme3"}
    assert set(samples["au_codes"]) == {"12", "1+2", "4+7"}
    shcnn = {"model": "shcnn", "labels": "megc-3", "epochs": 1, "batch_size": 8, "folds": 1, "device": "cpu",
             "progress": False, "model_args": (("widths", (8, 16, 32)), ("hidden", 64))}
    runs = {
        "loso": RunParams(store=str(store), protocol="loso", **shcnn),
        "lovo": RunParams(store=str(store), protocol="lovo", **shcnn),
        "lodo": RunParams(store=(str(full_store), str(store)), protocol="lodo", **shcnn),
        "cross": RunParams(store=(str(full_store), str(store)), protocol="cross", test_dataset="demo-casme3",
                           train_datasets=("demo",), **shcnn),
    }
    for name, params in runs.items():
        report = run_training(dataclasses.replace(params, out=str(tmp_path / "runs" / name)))
        assert len(report["folds"]) == 1, name
        tested = {"loso": 6, "lovo": 1, "lodo": 6, "cross": 18}[name]  # LODO's first fold tests the SAMM demo
        assert report["n_test_clips"] == tested, (name, report["n_test_clips"])
