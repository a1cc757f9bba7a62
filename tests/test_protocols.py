"""Evaluation protocols: folds from a hand-made samples table."""
from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from mepipe.train.composite import CompositeEntry, CompositeList
from mepipe.train.protocols import (DATASET_LISTS, Fold, cross_dataset, lodo, loso, lovo, megc2019,
                                    overlapping_subjects, validation_split)

# Subject "01" exists in CASME II and in SAMM: two different people.
ROWS = [
    ("c1", "01", "casme2"),
    ("c2", "01", "casme2"),
    ("c3", "02", "casme2"),
    ("s1", "01", "samm"),
    ("s2", "01", "samm"),
    ("m1", "s1", "smic"),
]
CLIPS = {"c1": "EP02_01f", "c2": "EP03_02", "c3": "EP02_01f", "s1": "001_1_1", "s2": "001_2_1", "m1": "s1_ne_01"}
PERSON = {sample: (dataset, subject) for sample, subject, dataset in ROWS}


@pytest.fixture
def samples() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["sample", "subject", "dataset"])


def _people(ids) -> set:
    return {PERSON[s] for s in ids}


def test_loso_one_fold_per_dataset_qualified_subject(samples):
    folds = loso(samples)
    assert [(f.name, f.test) for f in folds] == [
        ("casme2/01", ("c1", "c2")),
        ("casme2/02", ("c3",)),
        ("samm/01", ("s1", "s2")),
        ("smic/s1", ("m1",)),
    ]
    # CASME II's subject 01 held out; SAMM's subject 01 still trains.
    assert folds[0].train == ("c3", "s1", "s2", "m1")


def test_loso_tests_each_sample_once_without_subject_overlap(samples):
    folds = loso(samples)
    assert Counter(s for f in folds for s in f.test) == Counter(list(PERSON))
    for fold in folds:
        assert not _people(fold.train) & _people(fold.test)
        assert set(fold.train) | set(fold.test) == set(PERSON) and not set(fold.train) & set(fold.test)
        assert overlapping_subjects(fold, samples) == set()


def test_lovo_one_fold_per_sample(samples):
    folds = lovo(samples)
    assert [f.test for f in folds] == [(s,) for s, _, _ in ROWS]
    assert Counter(s for f in folds for s in f.test) == Counter(list(PERSON))
    assert folds[0] == Fold("c1", ("c2", "c3", "s1", "s2", "m1"), ("c1",))
    # LOVO keeps the subject's other clips in training, and the helper sees it.
    assert overlapping_subjects(folds[0], samples) == {("casme2", "01")}


def _no_leak(folds, samples):
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert not _people(fold.train) & _people(fold.test)
        assert overlapping_subjects(fold, samples) == set()


def test_megc2019_holds_only_listed_clips_one_person_out(samples):
    # The list writes subjects and clips its own way: sub01 for casme2's 01, s01_ne_01 for smic's s1_ne_01.
    listing = CompositeList("test", (CompositeEntry("casme2", "sub01", "EP02_01f", "negative", 1),
                                     CompositeEntry("casme2", "sub02", "EP02_01f", "positive", 2),
                                     CompositeEntry("smic", "s01", "s01_ne_01", "negative", 3),
                                     CompositeEntry("samm", "1", "001_9_9", "surprise", 4)))
    table = samples.assign(clip=samples["sample"].map(CLIPS))
    folds = megc2019(table, listing)
    assert [(f.name, f.test) for f in folds] == [("casme2/01", ("c1",)), ("casme2/02", ("c3",)),
                                                 ("smic/s1", ("m1",))]
    assert folds[0].train == ("c3", "m1")  # c2 (unlisted EP03_02) and SAMM (its listed clip absent) are in no fold
    _no_leak(folds, samples)


def test_lodo_one_fold_per_dataset(samples):
    folds = lodo(samples)
    assert [(f.name, f.test) for f in folds] == [("casme2", ("c1", "c2", "c3")), ("samm", ("s1", "s2")),
                                                 ("smic", ("m1",))]
    assert folds[1].train == ("c1", "c2", "c3", "m1")
    assert Counter(s for f in folds for s in f.test) == Counter(list(PERSON))
    _no_leak(folds, samples)
    with pytest.raises(ValueError, match="at least two datasets"):
        lodo(samples[samples["dataset"] == "samm"])


def test_lodo_over_a_named_list_leaves_the_other_datasets_out(samples):
    assert DATASET_LISTS["meb"] == ("casme", "casme2", "samm", "4dme", "mmew", "casme3")
    folds = lodo(samples, "meb")  # SMIC is not among MEB's six corpora
    assert [(f.name, f.train, f.test) for f in folds] == [("casme2", ("s1", "s2"), ("c1", "c2", "c3")),
                                                          ("samm", ("c1", "c2", "c3"), ("s1", "s2"))]
    assert [f.name for f in lodo(samples, ["samm", "smic"])] == ["samm", "smic"]
    with pytest.raises(ValueError, match=r"at least two datasets; the samples hold \['smic'\]"):
        lodo(samples, ["smic", "mmew"])


def test_a_demo_corpus_stands_for_its_corpus_in_mebs_list():
    """demo, demo-casme2 and demo-casme3 are written as SAMM, CASME II and CAS(ME)³; demo-smic as SMIC, not MEB's."""
    table = pd.DataFrame([(f"{d}/{k}", f"{k}", d) for d in ("demo", "demo-casme2", "demo-smic", "demo-casme3")
                          for k in range(2)], columns=["sample", "subject", "dataset"])
    folds = lodo(table, "meb")
    assert [f.name for f in folds] == ["demo", "demo-casme2", "demo-casme3"]
    assert folds[0].test == ("demo/0", "demo/1") and not any("demo-smic" in s for f in folds for s in f.train)


def test_validation_people_come_from_the_training_side_only(samples):
    for fold in loso(samples):
        split = validation_split(fold, samples, 1, seed=3)
        assert set(split.fit) | set(split.validation) == set(fold.train)
        assert not set(split.fit) & set(split.validation)
        assert not _people(split.validation) & _people(fold.test) and not _people(split.validation) & _people(split.fit)
        assert {f"{d}/{s}" for d, s in _people(split.validation)} == set(split.people) and len(split.people) == 1
        assert split == validation_split(fold, samples, 1, seed=3)  # reproducible
    draws = {validation_split(loso(samples)[0], samples, 1, seed=s).people for s in range(20)}
    assert len(draws) == 3  # drawn among the three training people of casme2/01's fold
    with pytest.raises(ValueError, match="none to fit on"):
        validation_split(loso(samples)[0], samples, 3)


def test_cross_dataset(samples):
    (fold,) = cross_dataset(samples, train="casme2", test="samm")
    assert fold == Fold("casme2->samm", ("c1", "c2", "c3"), ("s1", "s2"))
    (fold,) = cross_dataset(samples, train=["casme2", "smic"], test="samm")
    assert fold.train == ("c1", "c2", "c3", "m1") and fold.name == "casme2+smic->samm"
    assert overlapping_subjects(fold, samples) == set()
    with pytest.raises(ValueError, match="both sides"):
        cross_dataset(samples, train="samm", test=["samm", "smic"])
    with pytest.raises(ValueError, match="have no samples"):
        cross_dataset(samples, train="casme", test="samm")


def test_bad_tables_raise(samples):
    with pytest.raises(ValueError, match="unique"):
        loso(pd.concat([samples, samples.iloc[:1]]))
    with pytest.raises(KeyError, match="subject"):
        lovo(samples.drop(columns="subject"))
    blank = samples.copy()
    blank.loc[2, "subject"] = ""
    with pytest.raises(ValueError, match="lack a sample id, subject or dataset"):
        loso(blank)
