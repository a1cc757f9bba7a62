"""Label schemes of SPEC §5 on a hand-made sample table (and the real sheets when present)."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import annotations_dir
from mepipe.train.labels import (
    AU_SETS, SCHEMES, apply_scheme, apply_version, au_matrix, class_counts, count_table, get_scheme, list_schemes,
)

ROWS = [
    # name, dataset, emotion, objective_class
    ("c1", "casme2", "disgust", "3"),
    ("c2", "casme2", "repression", "7"),
    ("c3", "casme2", " Happiness ", "1"),
    ("c4", "casme2", "fear", "6"),
    ("c5", "casme2", "others", "7"),
    ("s1", "samm", "Anger", "2"),
    ("s2", "samm", "Other", "7"),
    ("s3", "samm", "Happiness", "I"),
    ("s4", "samm", "Surprise", "5"),
    ("s5", "samm", "Contempt", ""),
    ("m1", "smic", "negative", None),
]


@pytest.fixture
def samples() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["name", "dataset", "emotion", "objective_class"])
    return frame.set_index("name")


def _by_name(labels: pd.Series, classes: list[str]) -> dict[str, str]:
    return {name: classes[i] for name, i in labels.items()}


def test_schemes_are_listed():
    assert list_schemes() == ["4dme-5", "casme-8", "casme-sq-4", "casme2-5", "casme2-7", "casme3-7", "ckplus-7",
                              "megc-3", "mmew-7", "objective", "objective-5", "samm-3", "samm-8", "strcn-4"]
    with pytest.raises(KeyError, match="known: 4dme-5, casme-8"):
        get_scheme("megc3")


MORE_ROWS = [
    # name, dataset, emotion, objective_class: the corpora MEB adds, CAS(ME)², CASME, CK+ and a demo
    ("a1", "casme3", "happy", "1"), ("a2", "casme3", "sad", "5"), ("a3", "casme3", "others", "7"),
    ("a4", "demo-casme3", "anger", ""),
    ("f1", "4dme", "Repression", ""), ("f2", "4dme", "Surprise+Positive", ""), ("f3", "4dme", "Others", ""),
    ("m1", "mmew", "fear", ""), ("m2", "mmew", "others", ""),
    ("q1", "casme-sq", "negative", ""), ("q2", "casme-sq", "others", ""),
    ("k1", "casme", "tense", ""), ("k2", "casme", "contempt", ""),
    ("c1", "ckplus", "happy", ""), ("c2", "ckplus", "neutral", ""),
]


def test_megc3_maps_every_corpus_and_its_demo():
    samples = pd.DataFrame(MORE_ROWS, columns=["name", "dataset", "emotion", "objective_class"]).set_index("name")
    labels, classes, dropped = apply_scheme(samples, "megc-3")
    assert _by_name(labels, classes) == {
        "a1": "positive", "a2": "negative", "a4": "negative", "f1": "negative", "m1": "negative", "q1": "negative",
        "k2": "negative", "c1": "positive"}
    # others, 4DME's combination, tense and CK+'s neutral are left out
    assert dropped == 7


def test_each_corpus_has_a_scheme_of_its_own_emotions():
    samples = pd.DataFrame(MORE_ROWS, columns=["name", "dataset", "emotion", "objective_class"]).set_index("name")
    labels, classes, dropped = apply_scheme(samples, "casme3-7")
    assert _by_name(labels, classes) == {"a1": "happy", "a2": "sad", "a3": "others", "a4": "anger"}
    assert dropped == len(MORE_ROWS) - 4
    labels, classes, _ = apply_scheme(samples, "4dme-5")
    assert _by_name(labels, classes) == {"f1": "repression", "f3": "others"}
    assert get_scheme("casme-sq-4").classes == ("positive", "negative", "surprise", "others")


def test_objective5_drops_classes_6_and_7(samples):
    labels, classes, dropped = apply_scheme(samples, "objective-5")
    assert classes == ["1", "2", "3", "4", "5"]
    assert _by_name(labels, classes) == {"c1": "3", "c3": "1", "s1": "2", "s3": "1", "s4": "5"}
    assert dropped == 6  # 6 and 7 (c2, c4, c5, s2), empty and missing


def test_au_matrix_is_multi_hot_over_a_vocabulary():
    samples = pd.DataFrame({"au_codes": ["4+10", "", "1+2+43", None]})
    matrix, names = au_matrix(samples, (1, 2, 4, 10))
    assert names == ["AU1", "AU2", "AU4", "AU10"]
    assert matrix.tolist() == [[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]  # AU43 is not in it
    assert matrix.dtype == "uint8"
    meb, names = au_matrix(samples, "meb-cross")
    assert len(names) == len(AU_SETS["meb-cross"]) == 12 and meb.sum() == 4
    with pytest.raises(KeyError, match="au_codes.*mepipe build"):
        au_matrix(samples.rename(columns={"au_codes": "x"}), "samm")


CASME2_SUB24 = [
    # subject, clip, emotion in the 2019 sheet
    ("24", "EP07_01", "surprise"), ("24", "EP07_04f", "surprise"), ("24", "EP10_03", "surprise"),
    ("24", "EP18_03", "surprise"), ("17", "EP15_01", "sadness"), ("05", "EP03_01", "disgust"),
]


def test_casme2_2014_labels_move_three_surprise_clips_to_sadness():
    samples = pd.DataFrame(CASME2_SUB24, columns=["subject", "clip", "emotion"]).assign(dataset="casme2")
    relabelled = apply_version(samples, "casme2-2014")
    assert relabelled["emotion"].tolist() == ["sadness", "sadness", "sadness", "surprise", "sadness", "disgust"]
    assert samples["emotion"].tolist()[:3] == ["surprise"] * 3  # a copy
    demo = apply_version(samples.assign(dataset="demo-casme2"), "casme2-2014")
    assert demo["emotion"].tolist() == samples["emotion"].tolist()  # demos are not relabelled
    assert class_counts(samples, "casme2-5").tolist() == [0, 1, 0, 4, 0]
    assert class_counts(samples, "casme2-5", "casme2-2014").tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(KeyError, match="known: casme2-2014"):
        apply_version(samples, "casme2-2017")


def test_megc3_maps_casme2_disgust_and_repression_to_negative(samples):
    labels, classes, dropped = apply_scheme(samples, "megc-3")
    assert classes == ["negative", "positive", "surprise"]
    assert _by_name(labels, classes) == {
        "c1": "negative", "c2": "negative", "c3": "positive",
        "s1": "negative", "s3": "positive", "s4": "surprise", "s5": "negative",
        "m1": "negative",
    }
    assert dropped == 3  # CASME II fear and others, SAMM Other
    assert labels.dtype == "int64" and labels.name == "label"


def test_casme2_5_drops_what_it_does_not_name(samples):
    labels, classes, dropped = apply_scheme(samples, "casme2-5")
    assert classes == ["happiness", "disgust", "repression", "surprise", "others"]
    assert _by_name(labels, classes) == {
        "c1": "disgust", "c2": "repression", "c3": "happiness", "c5": "others",
        "s3": "happiness", "s4": "surprise",
    }
    assert dropped == 5  # fear, Anger, Other (SAMM's singular), Contempt, negative
    assert labels.tolist() == [1, 2, 0, 4, 0, 3]  # class indices, in table order


def test_samm3_and_strcn4(samples):
    labels, classes, dropped = apply_scheme(samples, "samm-3")
    assert {n: c for n, c in _by_name(labels, classes).items() if n.startswith("s")} == {
        "s1": "negative", "s3": "positive", "s4": "surprise", "s5": "negative"}
    assert dropped == 4  # repression, others, Other, SMIC negative
    labels, classes, dropped = apply_scheme(samples, "strcn-4")
    assert classes == ["positive", "negative", "surprise", "other"]
    assert _by_name(labels, classes) == {
        "c1": "negative", "c2": "other", "c3": "positive", "c4": "negative", "c5": "other",
        "s1": "negative", "s2": "other", "s3": "positive", "s4": "surprise", "s5": "negative",
        "m1": "negative",
    }
    assert dropped == 0


def test_objective_classes_read_the_objective_column(samples):
    labels, classes, dropped = apply_scheme(samples, "objective")
    assert classes == ["1", "2", "3", "4", "5", "6", "7"]
    assert _by_name(labels, classes) == {
        "c1": "3", "c2": "7", "c3": "1", "c4": "6", "c5": "7", "s1": "2", "s2": "7", "s3": "1", "s4": "5"}
    assert dropped == 2  # empty and missing objective class


def test_missing_columns_raise(samples):
    with pytest.raises(KeyError, match="objective_class"):
        apply_scheme(samples.drop(columns="objective_class"), "objective")


def test_every_scheme_maps_only_to_its_classes():
    for scheme in SCHEMES.values():
        for mapping in scheme.rules.values():
            assert set(mapping.values()) <= set(scheme.classes)


_SHEETS = annotations_dir()


@pytest.mark.skipif(_SHEETS is None, reason="real annotation sheets not available")
def test_real_sheets_class_counts():
    # Counts of the sheets' "Estimated Emotion" column, tallied by hand from the files:
    # CASME II (2019): others 99, disgust 63, happiness 32, surprise 28, repression 27, sadness 4, fear 2.
    # SAMM v2: Anger 57, Other 26, Happiness 26, Surprise 15, Contempt 12, Disgust 9, Fear 8, Sadness 6.
    casme2 = pd.read_excel(_SHEETS / "CASME2-coding-20190701.xlsx")
    casme2 = pd.DataFrame({"dataset": "casme2", "emotion": casme2["Estimated Emotion"], "objective_class": ""})
    labels, classes, dropped = apply_scheme(casme2, "casme2-5")
    assert (len(labels), dropped) == (249, 6)
    raw = pd.read_excel(_SHEETS / "SAMM_Micro_FACS_Codes_v2.xlsx", header=None)
    header = raw.index[raw[0].astype(str).str.strip() == "Subject"][0]
    samm = raw.iloc[header + 1:].set_axis(raw.iloc[header], axis=1)
    samm = pd.DataFrame({"dataset": "samm", "emotion": samm["Estimated Emotion"], "objective_class": ""})
    labels, classes, dropped = apply_scheme(samm, "samm-3")
    # Miao §III-A: positive 26, negative 92, surprise 15 (133 clips).
    assert labels.value_counts().sort_index().tolist() == [92, 26, 15] and dropped == 26


@pytest.mark.skipif(_SHEETS is None, reason="real annotation sheets not available")
def test_real_casme2_counts_under_the_2014_labels_are_the_papers():
    sheet = pd.read_excel(_SHEETS / "CASME2-coding-20190701.xlsx", dtype=object)
    samples = pd.DataFrame({"dataset": "casme2", "subject": sheet["Subject"].astype(str).str.zfill(2),
                            "clip": sheet["Filename"], "emotion": sheet["Estimated Emotion"], "objective_class": ""})
    table = count_table(samples).set_index(["scheme", "class"])
    assert table.groupby("scheme").sum().loc["casme2-5"].tolist() == [249, 246, 246]  # sheet, 2014, paper
    assert table.loc[("casme2-5", "surprise")].tolist() == [28, 25, 25]
    assert table.loc[("strcn-4", "negative")].tolist() == [69, 72, 72]
    assert (table["casme2-2014"] == table["paper"]).all()


def _casme2_store(path):
    """A CASME II-named store: the sub24 clips of :data:`CASME2_SUB24` plus a disgust and a happiness clip of two
    other people, each with a small first->each flow (what shcnn reads)."""
    import numpy as np

    from conftest import finish_synthetic_store
    from mepipe.featurestore.schema import SAMPLE_COLUMNS
    from mepipe.featurestore.writer import StoreWriter

    writer = StoreWriter(path)
    writer.create()
    rows = []
    clips = [c for c in CASME2_SUB24 if c[0] == "24"] + [("05", "EP03_01", "disgust"), ("17", "EP02_02", "happiness")]
    for k, (subject, clip, emotion) in enumerate(clips):
        sample = f"sub{subject}_{clip}"
        writer.write_feature(sample, "flow_first_each", np.full((2, 2, 16, 16), k, np.float32), "synthetic")
        writer.write_feature(sample, "frame", np.arange(3), "synthetic")
        row = dict.fromkeys(SAMPLE_COLUMNS, "")
        row.update(sample=sample, dataset="casme2", subject=subject, clip=clip, fps=200.0, n_frames=3,
                   emotion=emotion, onset=0, apex=1, offset=2, status="ok", onset_est=None, apex_est=None,
                   offset_est=None, apex_ncc=None)
        rows.append(row)
    writer.write_samples(pd.DataFrame(rows))
    finish_synthetic_store(writer, "casme2", flow_first_each={"size": (16, 16)})
    return path


@pytest.mark.slow
def test_label_version_option_relabels_the_clips_of_a_run_and_is_recorded(tmp_path):
    """--label-version casme2-2014: sub24's EP07_01, EP07_04f and EP10_03 are sadness (dropped by casme2-5), so
    one surprise clip is left of four; the plan names the three, and the run's report records the version."""
    import json

    from click.testing import CliRunner

    from conftest import train_cli
    from mepipe.train.params import RunParams, RunParamsError

    store = _casme2_store(tmp_path / "casme2.zarr")
    runner = CliRunner()
    base = ["train", "--model", "shcnn", "--store", str(store), "--labels", "casme2-5", "--dry-run", "--json"]
    sheet = json.loads(runner.invoke(train_cli(), base, catch_exceptions=False).output)
    assert sheet["clips"]["by_class"]["surprise"] == 4 and "label_version" not in sheet
    result = runner.invoke(train_cli(), base + ["--label-version", "casme2-2014"], catch_exceptions=False)
    paper = json.loads(result.output)
    assert paper["clips"]["by_class"] == {"happiness": 1, "disgust": 1, "repression": 0, "surprise": 1, "others": 0}
    assert paper["label_version"] == "casme2-2014"
    assert sorted(paper["relabelled_by_version"]) == ["sub24_EP07_01", "sub24_EP07_04f", "sub24_EP10_03"]
    assert sorted(paper["dropped"]["unmapped_by_scheme"]) == sorted(paper["relabelled_by_version"])
    text = runner.invoke(train_cli(), base[:-1] + ["--label-version", "casme2-2014"], catch_exceptions=False).output
    assert "labels casme2-5 (label version casme2-2014)" in text and "relabels 3 clips: sub24_EP07_01" in text
    out = tmp_path / "run"
    result = runner.invoke(train_cli(), ["train", "--model", "shcnn", "--store", str(store), "--labels", "casme2-5",
                                         "--label-version", "casme2-2014", "--epochs", "1", "--folds", "1",
                                         "--model-arg", "widths=[2,2,2]", "--model-arg", "hidden=4",
                                         "--no-progress", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["label_version"] == report["parameters"]["run"]["label_version"] == "casme2-2014"
    assert "(label version casme2-2014)" in result.output
    with pytest.raises(RunParamsError, match="unknown label version 'casme2-2017'; known: casme2-2014"):
        RunParams(model="shcnn", store=str(store), labels="casme2-5", label_version="casme2-2017")
    with pytest.raises(RunParamsError, match="megc2019 protocol takes its labels from the composite list"):
        RunParams(model="shcnn", store=str(store), labels="megc-3", protocol="megc2019", label_version="casme2-2014")
