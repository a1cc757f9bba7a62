"""Label schemes of SPEC §5 on a hand-made sample table (and the real sheets when present)."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import annotations_dir
from mepipe.train.labels import SCHEMES, apply_scheme, get_scheme, list_schemes

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
    assert list_schemes() == ["casme2-5", "megc-3", "objective", "samm-3", "strcn-4"]
    with pytest.raises(KeyError, match="known: casme2-5, megc-3"):
        get_scheme("megc3")


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
