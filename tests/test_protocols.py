"""Evaluation protocols: folds from a hand-made samples table."""
from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from mepipe.train.protocols import Fold, composite, cross_dataset, loso, lovo, overlapping_subjects

# Subject "01" exists in CASME II and in SAMM: two different people.
ROWS = [
    ("c1", "01", "casme2"),
    ("c2", "01", "casme2"),
    ("c3", "02", "casme2"),
    ("s1", "01", "samm"),
    ("s2", "01", "samm"),
    ("m1", "s1", "smic"),
]
PERSON = {sample: (dataset, subject) for sample, subject, dataset in ROWS}


@pytest.fixture
def samples() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["sample", "subject", "dataset"])


def _people(ids) -> set:
    return {PERSON[s] for s in ids}


def test_loso_one_fold_per_dataset_qualified_subject(samples):
    folds = loso(samples)
    assert [(f.name, f.test) for f in folds] == [
        ("casme2:01", ("c1", "c2")),
        ("casme2:02", ("c3",)),
        ("samm:01", ("s1", "s2")),
        ("smic:s1", ("m1",)),
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


def test_composite_is_loso_over_all_datasets(samples):
    assert composite(samples) == loso(samples)
    folds = composite(samples, datasets=("casme2", "samm"))
    assert [f.name for f in folds] == ["casme2:01", "casme2:02", "samm:01"]
    assert all("m1" not in f.train + f.test for f in folds)
    with pytest.raises(ValueError, match=r"\['casme'\] have no samples"):
        composite(samples, datasets=("casme", "samm"))


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
