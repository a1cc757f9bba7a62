"""Runs over several stores: namespaced clips, stores that must agree, the plan, megc2019 / cross / lodo, URLs.

The stores are small synthetic ones named like SAMM, CASME II and SMIC-HS
(``tests/corpora.py``): their flow direction encodes the megc-3 class.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import train_cli
from corpora import MEGC, composite_rows, write_corpus_store

from mepipe.featurestore.errors import DataError, UsageError
from mepipe.featurestore.manifest import write_manifest
from mepipe.pipeline.stages.flow import TVL1Params
from mepipe.train import metrics
from mepipe.train.clips import ClipTable, StoreMismatchError
from mepipe.train.plan import PlanError, plan_run
from mepipe.train.protocols import overlapping_subjects
from mepipe.train.report import read_report
from mepipe.train.run import RunParams, run_training

torch.set_num_threads(1)

TINY = (("widths", (4, 8, 8)), ("hidden", 16))
TINY_ARGS = ["--model-arg", "widths=[4,8,8]", "--model-arg", "hidden=16"]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """SAMM (3 people), CASME II (3) and SMIC (2) stores, one clip per person and class, and their composite list.

    The list leaves out CASME II's sub03 surprise clip and names a SAMM clip no store holds; SAMM's 002 anger
    clip failed to build.
    """
    root = tmp_path_factory.mktemp("corpora")
    stores = {
        "samm": write_corpus_store(root / "samm.zarr", "samm", n_clips=1, failed=("002_1_1",)),
        "casme2": write_corpus_store(root / "casme2.zarr", "casme2", n_clips=1, seed=1),
        "smic": write_corpus_store(root / "smic.zarr", "smic", subjects=range(1, 3), n_clips=1, seed=2),
    }
    rows = [r for d, subjects in (("samm", range(1, 4)), ("casme2", range(1, 4)), ("smic", range(1, 3)))
            for r in composite_rows(d, subjects, 1)]
    rows.remove("casme2,sub03,EP04_01f,2")
    rows.append("samm,9,009_2_1,1")
    listing = root / "composite.csv"
    listing.write_text("\n".join(rows) + "\n")
    return {**{k: str(v) for k, v in stores.items()}, "list": str(listing)}


def _params(corpora, datasets=("samm", "casme2", "smic"), **changes):
    return RunParams(**{"model": "shcnn", "store": tuple(corpora[d] for d in datasets), "labels": "megc-3",
                        "epochs": 1, "batch_size": 16, "device": "cpu", "progress": False, "model_args": TINY,
                        **changes})


@pytest.mark.slow
def test_clips_of_several_stores_are_named_by_dataset(corpora):
    clips = ClipTable.open([corpora["samm"], corpora["casme2"]])
    assert clips.ids[:2] == ["samm/001_1_1", "samm/001_2_1"] and "casme2/sub01_EP02_01f" in clips.ids
    row = clips.samples.set_index("sample").loc["casme2/sub01_EP02_01f"]
    assert (row["store"], row["store_sample"], row["subject"]) == (corpora["casme2"], "sub01_EP02_01f", "01")
    single = ClipTable.open([corpora["casme2"]])
    np.testing.assert_array_equal(clips.read("flow_first_each", "casme2/sub01_EP02_01f"),
                                  single.read("flow_first_each", "sub01_EP02_01f"))
    described = clips.describe()
    assert [d["location"] for d in described] == [corpora["samm"], corpora["casme2"]]
    assert [d["n_clips"] for d in described] == [9, 9]
    assert ClipTable.reopen(described).ids == clips.ids
    with pytest.raises(UsageError, match="given twice"):
        ClipTable.open([corpora["samm"], corpora["samm"]])


def test_the_same_clip_in_two_stores_is_refused(corpora, tmp_path):
    copy = shutil.copytree(corpora["samm"], tmp_path / "samm-again.zarr")
    with pytest.raises(StoreMismatchError, match=rf"{corpora['samm']} and {copy} both hold clip samm/001_1_1"):
        ClipTable.open([corpora["samm"], str(copy)])


@pytest.mark.slow
def test_stores_that_computed_a_read_feature_differently_are_refused(corpora, tmp_path):
    other = write_corpus_store(tmp_path / "casme2.zarr", "casme2", n_clips=1,
                               flow_first_each={"tvl1": TVL1Params(nscales=3)})
    params = _params(corpora, ("samm",), store=(corpora["samm"], str(other)))
    with pytest.raises(StoreMismatchError) as caught:
        plan_run(params)
    message = str(caught.value)
    assert corpora["samm"] in message and str(other) in message
    assert "flow_first_each.tvl1.nscales (5 vs 3)" in message
    # STRCN-G with augmentation=scale reads flow_onset_apex, which both stores computed alike: no refusal.
    scale = (("augmentation", "scale"),)
    plan_run(RunParams(model="strcn-g", store=params.store, labels="megc-3", recipe_options=scale))
    upstream = write_corpus_store(tmp_path / "smic.zarr", "smic", n_clips=1, align={"size": 128})
    with pytest.raises(StoreMismatchError, match=r"differ in align.size \(256 vs 128\)"):
        plan_run(RunParams(model="strcn-g", store=(corpora["samm"], str(upstream)), labels="megc-3",
                           recipe_options=scale))


def test_megc2019_plan_names_what_is_missing(corpora):
    plan = plan_run(_params(corpora, protocol="megc2019", composite_list=corpora["list"]))
    described = plan.describe()
    assert described["listed"] == {"samm": 10, "casme2": 8, "smic": 6}
    assert described["clips"]["by_dataset"] == {
        "casme2": {"negative": 3, "positive": 3, "surprise": 2, "total": 8},
        "samm": {"negative": 2, "positive": 3, "surprise": 3, "total": 8},
        "smic": {"negative": 2, "positive": 2, "surprise": 2, "total": 6}}
    assert described["missing"] == {"samm": {"count": 2, "not in any store": ["samm/9/009_2_1"],
                                             "failed to build": ["samm/002_1_1"]}}
    assert described["dropped"]["not_in_list"] == ["casme2/sub03_EP04_01f"]
    assert described["n_folds"] == len(plan.folds) == 8
    for sides in plan.folds:
        assert not overlapping_subjects(sides.fold, plan.table)
    assert any("samm: 2 of 10 listed clips are left out" in w for w in plan.warnings)
    with pytest.raises(DataError, match="--strict"):
        plan_run(_params(corpora, protocol="megc2019", composite_list=corpora["list"], strict=True))


@pytest.mark.slow
def test_capped_composite_folds_test_each_dataset_in_turn(corpora):
    """``folds=N`` on the composite takes each dataset's first people in turn, so every part is tested."""
    whole = plan_run(_params(corpora, protocol="megc2019", composite_list=corpora["list"]))
    capped = plan_run(_params(corpora, protocol="megc2019", composite_list=corpora["list"], folds=4))
    assert [s.fold.name for s in capped.folds] == ["casme2/01", "casme2/02", "samm/001", "smic/s1"]
    assert capped.describe()["n_folds"] == 4 and capped.describe()["n_protocol_folds"] == len(whole.folds) == 8
    one = plan_run(_params(corpora, ("casme2",), folds=2))
    assert [s.fold.name for s in one.folds] == [s.fold.name for s in plan_run(_params(corpora, ("casme2",))).folds][:2]


def test_megc2019_without_a_listed_dataset_runs_on_the_others(corpora):
    plan = plan_run(_params(corpora, ("samm", "casme2"), protocol="megc2019", composite_list=corpora["list"]))
    assert plan.absent_datasets() == ["smic"] and len(plan.folds) == 6
    assert any("smic: no store holds its 6 listed clips" in w for w in plan.warnings)
    with pytest.raises(DataError, match="none of the stores' clips is named by"):
        plan_run(_params(corpora, ("samm",), protocol="megc2019"))  # the official list names no synthetic clip


def test_dry_run_prints_the_plan_as_json_and_trains_nothing(corpora, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "shcnn", "--store", corpora["samm"], "--store", corpora["casme2"], "--store",
        corpora["smic"], "--labels", "megc-3", "--protocol", "megc2019", "--composite-list", corpora["list"],
        "--dry-run", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["clips"]["total"] == 22 and plan["clips"]["by_class"] == {"negative": 7, "positive": 8, "surprise": 7}
    assert plan["missing"]["samm"]["count"] == 2 and plan["absent_datasets"] == []
    assert [f["name"] for f in plan["folds"]][:2] == ["casme2/01", "casme2/02"] and plan["n_folds"] == 8
    assert plan["folds"][0]["test_people"] == ["casme2/01"] and plan["epoch_selection"] == "fixed epochs"
    assert not out.exists()
    text = CliRunner().invoke(train_cli(), [
        "train", "--model", "shcnn", "--store", corpora["samm"], "--labels", "megc-3", "--dry-run"])
    assert text.exit_code == 0 and "samm/001" in text.output and "8 folds" not in text.output


@pytest.mark.slow
def test_megc2019_run_reports_the_challenge_table(corpora, tmp_path):
    report = run_training(_params(corpora, protocol="megc2019", composite_list=corpora["list"],
                                  out=str(tmp_path / "megc")))
    assert report["n_test_clips"] == 22 and len(report["folds"]) == 8
    assert set(report["per_dataset"]) == {"samm", "casme2", "smic"}
    confusion = np.array(report["confusion"])
    per_dataset = [np.array(v["confusion"]) for v in report["per_dataset"].values()]
    np.testing.assert_array_equal(sum(per_dataset), confusion)
    np.testing.assert_array_equal(confusion, metrics.sum_confusions([f["confusion"] for f in report["folds"]]))
    assert report["uf1"] == pytest.approx(metrics.uf1(confusion)) and report["uar"] == pytest.approx(
        metrics.uar(confusion))
    for name, row in report["per_dataset"].items():
        rows = [p for p in report["predictions"] if p["dataset"] == name]
        assert row["n_test_clips"] == len(rows)
        assert row["uf1"] == pytest.approx(metrics.uf1(np.array(row["confusion"])))
    assert [s["location"] for s in report["store"]["stores"]] == [corpora[d] for d in ("samm", "casme2", "smic")]
    assert report["classes"] == list(MEGC) and report["plan"]["missing"]["samm"]["count"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "extra", "folds"), [
    ("cross", {"test_dataset": "samm", "train_datasets": ("casme2",)}, ["casme2->samm"]),
    ("lodo", {}, ["casme2", "samm", "smic"]),
])
def test_cross_and_lodo_report_uf1_and_uar(corpora, tmp_path, protocol, extra, folds):
    report = run_training(_params(corpora, protocol=protocol, out=str(tmp_path / protocol), **extra))
    assert [f["name"] for f in report["folds"]] == folds
    assert 0 <= report["uf1"] <= 1 and 0 <= report["uar"] <= 1
    tested = {p["dataset"] for p in report["predictions"]}
    assert tested == ({"samm"} if protocol == "cross" else {"samm", "casme2", "smic"}) == set(report["per_dataset"])
    if protocol == "cross":
        assert report["store"]["dropped"]["not_in_protocol"] == [f"smic/{s}" for s in ClipTable.open(
            [corpora["smic"]]).ids]


def test_cross_names_an_absent_dataset(corpora):
    with pytest.raises(PlanError, match=r"test datasets \['casme'\] have no samples"):
        plan_run(_params(corpora, protocol="cross", test_dataset="casme"))


@pytest.mark.slow
def test_a_scheme_that_drops_clips_and_a_fold_without_a_class_warn(tmp_path, caplog):
    store = write_corpus_store(tmp_path / "samm.zarr", "samm", subjects=range(1, 3), n_clips=1,
                               failed=("002_3_1",), extra_emotion="Contempt")
    with caplog.at_level("WARNING", logger="mepipe.train.plan"):
        report = run_training(RunParams(model="shcnn", store=str(store), labels="casme2-5", out=str(tmp_path / "r"),
                                        epochs=1, device="cpu", progress=False, model_args=TINY))
    dropped = report["store"]["dropped"]
    # Anger x2 and Contempt: casme2-5 has no class for them.
    assert sorted(dropped["unmapped_by_scheme"]) == ["001_1_1", "001_1_2", "002_1_1"]
    assert dropped["failed"] == ["002_3_1"]
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "labels casme2-5 have no class for 3 clips" in warned and "samm Anger: 2, samm Contempt: 1" in warned
    assert "no clip of the run is disgust or repression or others" in warned
    # The failed clip was subject 002's only surprise clip: the fold holding out 001 trains without surprise.
    assert "fold samm/001: its training clips hold no surprise clip" in warned
    assert "fold samm/002" not in warned
    assert report["warnings"] == [r.getMessage() for r in caplog.records if r.name == "mepipe.train.plan"]


@contextlib.contextmanager
def _serving(store, root):
    """A copy of ``store`` with its manifest, served from ``root`` over HTTP on 127.0.0.1; yields its URL."""
    shutil.copytree(store, root / "served.zarr", ignore=shutil.ignore_patterns(".mepipe"))
    write_manifest(root / "served.zarr")
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/served.zarr"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_cli_trains_one_epoch_from_a_url_and_a_folder(corpora, tmp_path, monkeypatch):
    monkeypatch.setenv("MEPIPE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    (tmp_path / "www").mkdir()
    with _serving(corpora["smic"], tmp_path / "www") as url:
        result = CliRunner().invoke(train_cli(), [
            "train", "--model", "shcnn", "--store", url, "--store", corpora["casme2"], "--labels", "megc-3",
            "--protocol", "cross", "--test-dataset", "smic", "--epochs", "1", "--device", "cpu", "--no-progress",
            "--out", str(out), *TINY_ARGS])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = read_report(out)
    assert report["store"]["stores"][0]["location"] == url and url.startswith("http://127.0.0.1:")
    assert len(report["folds"]) == 1 and report["folds"][0]["epochs"] == 1
    assert {p["dataset"] for p in report["predictions"]} == {"smic"} and report["n_test_clips"] == 6
    assert f"store {url}" in result.output
