"""The MEGC 2019 composite list: the shipped copy, name matching, and the plan on the real sheets.

The plan test parses the real SAMM and CASME II sheets with the pipeline's
adapters (the test may import the pipeline; training may not) and writes an
SMIC-HS folder tree for the list's SMIC clips, as the SMIC adapter reads it,
so every name the list writes its own way (SAMM ``6``, CASME II ``sub01``,
SMIC ``s01_ne_01``) meets the adapters' names.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import annotations_dir

from mepipe.featurestore.errors import DataError
from mepipe.train.composite import (OFFICIAL_LIST, CompositeEntry, CompositeList, name_key, read_composite_list,
                                    select_composite, subject_key)
from mepipe.train.labels import apply_scheme
from mepipe.train.protocols import megc2019, overlapping_subjects

SHARED_LIST = Path(__file__).resolve().parents[2] / "shared" / "protocols" / OFFICIAL_LIST
PACKAGED_LIST = Path(__file__).resolve().parents[1] / "train" / "lists" / OFFICIAL_LIST
SMIC_LABELS = {"ne": "negative", "po": "positive", "sur": "surprise"}


@pytest.mark.skipif(not SHARED_LIST.exists(), reason="../shared/protocols is not beside the repository")
def test_shipped_list_is_byte_identical_to_the_published_one():
    assert PACKAGED_LIST.read_bytes() == SHARED_LIST.read_bytes()


def test_official_list_counts():
    listing = read_composite_list()
    assert listing.counts() == {"casme2": 145, "samm": 133, "smic": 164}
    people = {(e.dataset, subject_key(e.subject)) for e in listing.entries}
    assert Counter(d for d, _ in people) == {"casme2": 24, "samm": 28, "smic": 16}
    assert Counter(e.label for e in listing.entries) == {"negative": 250, "positive": 109, "surprise": 83}


@pytest.mark.parametrize(("a", "b"), [("s01_ne_01", "s1_ne_01"), ("EP02_01f", "ep02_01F"), ("006_1_2", "6_1_2")])
def test_names_match_with_numbers_compared_as_numbers(a, b):
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(("listed", "stored"), [("6", "006"), ("sub01", "01"), ("s01", "s1"), ("sub10", "10")])
def test_subjects_match_by_their_number(listed, stored):
    assert subject_key(listed) == subject_key(stored)
    assert subject_key("sub01") != subject_key("sub10") and name_key("EP02_01f") != name_key("EP02_01")


def test_a_bad_row_or_a_repeated_clip_is_refused_by_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("samm,6,006_1_2,0\nsamm,6,006_1_3,3\n")
    with pytest.raises(DataError, match=r"bad.csv row 2: .*class 0 \(negative\)"):
        read_composite_list(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("casme2,sub01,EP02_01f,1\r\ncasme2,sub1,EP02_01f,0\r\n")
    with pytest.raises(DataError, match="rows 1 and 2 name the same clip"):
        read_composite_list(twice)


def test_two_store_clips_at_one_name_are_refused():
    listing = CompositeList("l", (CompositeEntry("samm", "6", "006_1_2", "negative", 1),))
    table = pd.DataFrame({"sample": ["a", "b"], "dataset": "samm", "subject": ["006", "6"],
                          "clip": ["006_1_2", "6_1_2"]})
    with pytest.raises(DataError, match="'a' and 'b' of samm both match"):
        select_composite(table, listing)


def _sheet_samples(adapter: str, sheet: str, root: Path) -> list:
    from mepipe.pipeline.datasets import get_adapter

    # No frames on disk: every clip is read from its sheet row (and flagged as missing its folder).
    return get_adapter(adapter)(root, annotations_dir() / sheet).samples


def _smic_tree(root: Path, listing) -> Path:
    """The SMIC-HS folders of the list's SMIC clips, one empty frame each, named as the release names them."""
    for entry in listing.entries:
        if entry.dataset != "smic":
            continue
        subject = f"s{int(re.findall(r'[0-9]+', entry.subject)[0])}"
        clip = re.sub(r"^s0*(\d+)", r"s\1", entry.clip)
        folder = root / "HS" / subject / "micro" / SMIC_LABELS[clip.split("_")[1]] / clip
        folder.mkdir(parents=True)
        (folder / "image000001.bmp").write_bytes(b"")
    return root


@pytest.mark.skipif(annotations_dir() is None, reason="../shared/annotations is not beside the repository")
def test_megc2019_plan_on_the_real_sheets(tmp_path):
    from mepipe.pipeline.datasets import get_adapter

    listing = read_composite_list()
    (tmp_path / "casme2" / "CASME2_RAW_selected").mkdir(parents=True)
    samples = (_sheet_samples("samm", "SAMM_Micro_FACS_Codes_v2.xlsx", tmp_path)
               + _sheet_samples("casme2", "CASME2-coding-20190701.xlsx", tmp_path / "casme2"))
    table = pd.DataFrame([{"sample": f"{s.dataset}/{s.sample}", "dataset": s.dataset, "subject": s.subject,
                           "clip": s.clip, "emotion": s.emotion} for s in samples])
    selection = select_composite(table, listing)
    assert Counter(selection.table["dataset"]) == {"samm": 133, "casme2": 145}
    assert {d: len(v) for d, v in selection.missing.items()} == {"smic": 164}
    assert selection.absent_datasets() == ["smic"]
    # The list, not the sheet, decides: megc-3 maps 150 CASME II sheet rows, the list keeps 145 of them.
    sheet_labels, classes, _ = apply_scheme(table, "megc-3")
    mapped = Counter(table.loc[sheet_labels.index, "dataset"])
    assert mapped == {"samm": 133, "casme2": 150}
    assert len(set(selection.unlisted) & set(table.loc[sheet_labels.index, "sample"])) == 5
    folds = megc2019(table, listing)
    assert len(folds) == 28 + 24
    assert all(not overlapping_subjects(f, selection.table) and not set(f.train) & set(f.test) for f in folds)

    smic = get_adapter("smic")(_smic_tree(tmp_path / "SMIC", listing)).samples
    assert len(smic) == 164
    table = pd.concat([table, pd.DataFrame([{"sample": f"smic/{s.sample}", "dataset": "smic", "subject": s.subject,
                                             "clip": s.clip, "emotion": s.emotion} for s in smic])])
    selection = select_composite(table, listing)
    assert Counter(selection.table["dataset"]) == {"samm": 133, "casme2": 145, "smic": 164}
    assert selection.missing == {}
    folds = megc2019(table, listing)
    assert len(folds) == 68 and sum(len(f.test) for f in folds) == 442
    # Where the sheets (and SMIC's folders) label a listed clip, megc-3 agrees with the list.
    labels, classes, _ = apply_scheme(selection.table, "megc-3")
    assert len(labels) == 442
    assert [classes[i] for i in labels] == selection.table.loc[labels.index, "list_label"].tolist()
