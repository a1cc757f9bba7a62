"""``mepipe reproduce``: the papers' experiments over the given stores, our figures beside the published ones.

The fast tests run on small synthetic stores named like SAMM and CASME II
(``tests/corpora.py``) with a one-epoch, narrow SHCNN in place of the quick
schedule, and a published table extended by test entries for the composite
and cross-dataset protocols (which the real table has only for LFM/CLFM,
whose features the synthetic stores lack). The slow test runs ``--quick``
itself on a small built demo store.
"""
from __future__ import annotations

import json
import os
import re
import statistics
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import command_group, papers_dir
from corpora import composite_rows, write_corpus_store

from mepipe.featurestore import open_store
from mepipe.train import report as report_module
from mepipe.train import reproduce as rp
from mepipe.train.models import get_recipe
from mepipe.train.models import list_models
from mepipe.train.published import Published, corpus_of
from mepipe.train.report import read_report

torch.set_num_threads(1)

TINY = {"epochs": 1, "model_args": (("widths", (4, 8, 8)), ("hidden", 16))}

TEST_ENTRIES = (
    Published("composite", "megc-3", "megc2019", (("uf1", 0.5), ("uar", 0.5)), "test composite"),
    Published("composite", "megc-3", "megc2019", (("uf1", 0.4),), "test composite", part="samm"),
    Published("composite", "megc-3", "megc2019", (("uf1", 0.3),), "test composite", part="smic"),
    Published("samm", "megc-3", "cross", (("accuracy", 0.6),), "test cross", train_corpus="casme2"),
)
"""Added to SHCNN's published figures: the composite and cross protocols on stores SHCNN can read."""

PUBLISHED = [(model, entry) for model in list_models() for entry in get_recipe(model).published]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """SAMM and CASME II stores (2 people each, one clip per class) and their composite list."""
    root = tmp_path_factory.mktemp("reproduce-stores")
    people = range(1, 3)
    samm = write_corpus_store(root / "samm.zarr", "samm", subjects=people, n_clips=1)
    casme2 = write_corpus_store(root / "casme2.zarr", "casme2", subjects=people, n_clips=1, seed=1)
    listing = root / "composite.csv"
    listing.write_text("\n".join(composite_rows("samm", people, 1) + composite_rows("casme2", people, 1)) + "\n")
    return {"samm": str(samm), "casme2": str(casme2), "list": str(listing)}


def _short(mp: pytest.MonkeyPatch) -> None:
    """A one-epoch narrow SHCNN on at most QUICK_FOLDS folds as the quick schedule, the test entries in the
    published table, no run plots."""
    published, quick = rp.published_of, rp.quick_of
    mp.setattr(rp, "published_of", lambda m: published(m) + (TEST_ENTRIES if m == "shcnn" else ()))
    mp.setattr(rp, "quick_of", lambda m: {"folds": rp.QUICK_FOLDS, **TINY} if m == "shcnn" else quick(m))
    mp.setattr(report_module, "plot_run", lambda run, report: ())


def _params(stores, out, **changes):
    values = {"stores": (stores["samm"], stores["casme2"]), "out": str(out), "models": ("shcnn", "kim2017"),
              "seeds": 2, "quick": True, "composite_list": stores["list"], "device": "cpu", **changes}
    return rp.ReproduceParams(**values)


@pytest.fixture(scope="module")
def table(stores, tmp_path_factory):
    """One reproduce of SHCNN (two seeds) and Kim 2017 over both stores, with the test entries added.

    The runs draw no plots (a run's figures are tested with ``mepipe train``; here they would be most of the time).
    """
    out = tmp_path_factory.mktemp("reproduce") / "out"
    with pytest.MonkeyPatch.context() as mp:
        _short(mp)
        result = rp.reproduce(_params(stores, out))
    return {"table": result, "out": out, "markdown": (out / rp.REPRODUCE_MD).read_text()}


def _row(table, model, corpus, protocol="loso", part=None):
    rows = [r for r in table["rows"] if (r["model"], r["corpus"], r["protocol"], r["part"]) ==
            (model, corpus, protocol, part)]
    assert len(rows) == 1, [(r["model"], r["corpus"], r["protocol"]) for r in table["rows"]]
    return rows[0]


def test_rows_put_mean_and_sample_std_over_seeds_beside_the_published_figure(table):
    row = _row(table["table"], "shcnn", "casme2")
    assert row["status"] == "ran" and row["seeds"] == [0, 1]
    assert row["published"] == {"accuracy": 0.7114, "f1": 0.6981} and row["source"] == "Miao et al. 2019, Table 7"
    reports = [read_report(run) for run in row["runs"]]
    assert [r["parameters"]["run"]["seed"] for r in reports] == [0, 1]
    for metric in ("accuracy", "uf1", "uar"):
        values = [r[metric] for r in reports]
        assert row["ours"][metric]["mean"] == pytest.approx(statistics.mean(values))
        assert row["ours"][metric]["std"] == pytest.approx(statistics.stdev(values))
    line = next(x for x in table["markdown"].splitlines() if x.startswith("| shcnn | CASME II |"))
    mean, std = row["ours"]["accuracy"]["mean"], row["ours"]["accuracy"]["std"]
    assert f"{mean:.3f} ± {std:.3f}" in line and "Table 7" in line and "acc 0.711, F1 0.698" in line


def test_each_row_reads_only_its_corpus_with_the_papers_labels(table):
    casme2, samm = _row(table["table"], "shcnn", "casme2"), _row(table["table"], "shcnn", "samm")
    assert [s["dataset"] for s in casme2["stores"]] == ["casme2"] and casme2["labels"] == "casme2-5"
    assert [s["dataset"] for s in samm["stores"]] == ["samm"] and samm["labels"] == "samm-3"
    report = read_report(samm["runs"][0])
    assert report["labels"] == "samm-3" and report["protocol"] == "loso" and list(report["per_dataset"]) == ["samm"]
    assert report["parameters"]["run"]["epochs"] == TINY["epochs"]


def test_rows_pin_store_ids_and_the_mepipe_version(table, stores):
    result = table["table"]
    row = _row(result, "shcnn", "samm")
    assert row["stores"][0]["store_id"] == open_store(stores["samm"]).store_id
    assert {s["location"]: s["store_id"] for s in result["stores"]} == \
        {stores[d]: open_store(stores[d]).store_id for d in ("samm", "casme2")}
    assert result["mepipe"] == version("mepipe") == row["mepipe"]
    assert open_store(stores["casme2"]).store_id in table["markdown"]
    line = next(x for x in table["markdown"].splitlines() if x.startswith("| shcnn | SAMM |"))
    assert f"samm:{row['stores'][0]['store_id'][:rp.ID_SHOWN]}" in line
    assert json.loads((table["out"] / rp.REPRODUCE_JSON).read_text())["rows"] == json.loads(json.dumps(result["rows"]))


def test_composite_rows_give_the_whole_and_each_part_and_name_an_absent_part(table):
    result = table["table"]
    whole, samm = _row(result, "shcnn", "composite", "megc2019"), _row(result, "shcnn", "composite", "megc2019", "samm")
    reports = [read_report(run) for run in whole["runs"]]
    assert whole["ours"]["uf1"]["mean"] == pytest.approx(statistics.mean(r["uf1"] for r in reports))
    assert samm["ours"]["uar"]["mean"] == pytest.approx(statistics.mean(r["per_dataset"]["samm"]["uar"]
                                                                        for r in reports))
    assert samm["runs"] == whole["runs"] and samm["n_test_clips"] == reports[0]["per_dataset"]["samm"]["n_test_clips"]
    smic = _row(result, "shcnn", "composite", "megc2019", "smic")
    assert smic["status"] == "not run" and "SMIC-HS" in smic["reason"]
    assert "no SMIC-HS" in whole["note"]


def test_cross_row_trains_on_one_corpus_and_tests_on_the_other(table):
    row = _row(table["table"], "shcnn", "samm", "cross")
    report = read_report(row["runs"][0])
    assert report["protocol"] == "cross" and list(report["per_dataset"]) == ["samm"]
    assert row["experiment"] == "CASME II → SAMM"


def test_a_row_that_cannot_run_says_why_and_keeps_its_deviations(table):
    row = _row(table["table"], "kim2017", "casme2")
    assert row["status"] == "not run" and "frames_rgb" in row["reason"] and not row["ours"]
    topics = [d.topic for d in get_recipe("kim2017").deviations]
    assert topics and row["deviations"] == topics
    line = next(x for x in table["markdown"].splitlines() if x.startswith("| kim2017 |"))
    assert "not run" in line and "frames_rgb" in line and all(t in line for t in topics)
    section = table["markdown"].split("## Deviations")[1]
    assert all(d.reason[:40] in section for d in get_recipe("kim2017").deviations)


def test_quick_runs_say_so(table):
    markdown = table["markdown"]
    assert "**Quick schedules**" in markdown
    ran = [x for x in markdown.splitlines() if x.startswith("| shcnn |") and "not run" not in x]
    assert ran and all("quick schedule" in x for x in ran)
    assert table["table"]["quick_settings"]["shcnn"]["epochs"] == TINY["epochs"]


def test_quick_rows_state_the_folds_epochs_and_network_they_ran(table):
    """Each quick row says what quick changed: the folds run of the protocol's, the epochs, the network's sizes."""
    recipe_epochs = get_recipe("shcnn").stages[0].epochs
    composite = _row(table["table"], "shcnn", "composite", "megc2019")
    assert read_report(composite["runs"][0])["plan"]["n_folds"] == rp.QUICK_FOLDS
    changes = f"{rp.QUICK_FOLDS} of 4 folds; 1 epoch (recipe {recipe_epochs}); network widths [4, 8, 8], hidden 16"
    assert composite["quick_changes"] == changes
    assert _row(table["table"], "shcnn", "samm")["quick_changes"].startswith("all 2 folds; 1 epoch")
    assert _row(table["table"], "shcnn", "samm", "cross")["quick_changes"].startswith("its 1 fold; 1 epoch")
    line = next(x for x in table["markdown"].splitlines() if x.startswith("| shcnn | MEGC 2019 composite |"))
    assert f"quick schedule: {changes}" in line
    assert "folds = 3" in table["markdown"].split("Quick settings")[1]


def test_a_second_reproduce_keeps_the_finished_runs(table, stores):
    runs = [Path(run) / "report.json" for r in table["table"]["rows"] for run in r.get("runs", [])]
    before = {p: p.stat().st_mtime_ns for p in runs}
    with pytest.MonkeyPatch.context() as mp:
        _short(mp)
        again = rp.reproduce(_params(stores, table["out"]))
    assert {p: p.stat().st_mtime_ns for p in runs} == before
    assert [r["ours"] for r in again["rows"]] == [r["ours"] for r in table["table"]["rows"]]


def test_a_network_that_crashes_fails_its_rows_and_the_table_is_still_written(stores, tmp_path, monkeypatch, caplog):
    def crash(params):
        raise RuntimeError("boom in " + params.model)

    monkeypatch.setattr(rp, "run_training", crash)
    result = rp.reproduce(_params(stores, tmp_path / "out", models=("shcnn",), seeds=1))
    assert [r["corpus"] for r in result["rows"]] == ["casme2", "samm", "meb", "meb", "meb"]
    assert all(r["status"] == "failed" and "RuntimeError: boom in shcnn" in r["reason"] for r in result["rows"])
    assert "**failed**" in (tmp_path / "out" / rp.REPRODUCE_MD).read_text() and "Traceback" in caplog.text


def test_experiments_follow_the_corpora_the_demo_stores_stand_for():
    stores = [{"location": "a", "dataset": "demo"}, {"location": "b", "dataset": "demo-casme2"}]
    planned = rp.plan_experiments(["shcnn", "lfm"], stores)
    shcnn = [(e.stores, e.labels, missing) for e, missing in planned if e.model == "shcnn" and e.protocol == "loso"]
    assert shcnn == [(("b",), "casme2-5", ""), (("a",), "samm-3", "")]
    lfm = {(e.protocol, e.entries[0].corpus): (e, missing) for e, missing in planned if e.model == "lfm"}
    composite, _ = lfm[("megc2019", "composite")]
    assert set(composite.stores) == {"a", "b"} and len(composite.entries) == 4
    assert lfm[("loso", "smic")][1] == "no store holds SMIC-HS"
    assert "SMIC-HS" in lfm[("cross", "casme2")][1] and "SMIC-HS" in lfm[("cross", "smic")][1]
    assert corpus_of("demo-smic") == "smic" and corpus_of("other") is None


def test_unknown_or_unpublished_models_are_refused():
    with pytest.raises(Exception, match="unknown model 'nope'"):
        rp.ReproduceParams(stores=("x",), models=("nope",))
    with pytest.raises(Exception, match="seeds must be >= 1"):
        rp.ReproduceParams(stores=("x",), seeds=0)


def _paper(source: str) -> str:
    names = {"Miao": "miao2019", "Xia": "xia2019", "Kim": "kim2017", "Nag": "nag2019", "Choi": "choi2020"}
    folder = papers_dir()
    prefix = next(v for k, v in names.items() if source.startswith(k))
    return next(folder.glob(f"{prefix}*.txt")).read_text()


@pytest.mark.skipif(papers_dir() is None, reason="the papers are not beside the repository")
@pytest.mark.parametrize(("model", "entry"), PUBLISHED,
                         ids=[f"{m}-{e.protocol}-{e.part or e.corpus}" for m, e in PUBLISHED])
def test_published_figures_are_in_the_tables_they_cite(model, entry):
    text = _paper(entry.source)
    ids = re.findall(r"Tables? ([0-9IVX]+)(?:-([0-9]+))?", entry.source)[0]
    tables = [ids[0]] if not ids[1] else [str(n) for n in range(int(ids[0]), int(ids[1]) + 1)]
    windows = [text[max(0, m.start() - 1500):m.end() + 3000] for t in tables
               for m in re.finditer(rf"table {t}\b", text, flags=re.IGNORECASE)]
    assert windows, entry.source
    for metric, value in entry.figures:
        forms = {f"{value:.4f}", f"{value:.3f}", f"{value:.2f}", f"{100 * value:.2f}"}
        assert any(f in w for f in forms for w in windows), (metric, value, entry.source)


def test_cli_reproduce_lists_rows_that_cannot_run(stores, tmp_path):
    result = CliRunner().invoke(command_group("reproduce_cmd"), ["reproduce", "--store", stores["samm"], "--models", "kim2017",
                                         "--out", str(tmp_path / "r"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "no store holds CASME II" in result.output and "0 of 4 rows ran" in result.output  # and MEB's 3
    assert (tmp_path / "r" / "reproduce.md").exists()
    bad = CliRunner().invoke(command_group("reproduce_cmd"), ["reproduce", "--store", stores["samm"], "--models", "nope",
                                      "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "unknown model 'nope'" in bad.output and "Traceback" not in bad.output


@pytest.mark.slow
def test_cli_reproduce_quick_on_a_built_demo_store(full_store, tmp_path):
    """``--quick`` on a small built demo (SAMM layout): the SAMM rows and the composite run, the others say why."""
    out = tmp_path / "r"
    result = CliRunner().invoke(command_group("reproduce_cmd"), ["reproduce", "--store", str(full_store), "--models", "shcnn,strcn-g,clfm",
                                         "--quick", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "reproduce.json").read_text())
    ran = {(r["model"], r["corpus"], r["part"]) for r in table["rows"] if r["status"] == "ran"}
    assert {("shcnn", "samm", None), ("strcn-g", "samm", None), ("clfm", "composite", None),
            ("clfm", "composite", "samm")} <= ran
    assert all(r["reason"] for r in table["rows"] if r["status"] != "ran")
    assert all(0 <= r["ours"]["uar"]["mean"] <= 1 for r in table["rows"] if r["status"] == "ran")
    assert "Quick schedules" in (out / "reproduce.md").read_text()
    assert os.path.exists(out / "runs")


@pytest.mark.parametrize("model", [m for m in list_models() if get_recipe(m).published])
def test_quick_settings_name_real_run_and_model_arguments(model):
    from mepipe.train.models import create_model
    from mepipe.train.run import RunParams

    changes = rp.quick_of(model)
    assert changes.get("epochs")
    RunParams(model=model, store="x", labels="megc-3", **changes)
    create_model(model, num_classes=3, **dict(changes.get("model_args", ())))


def test_meb_rows_run_the_au_benchmark_beside_mebs_figure_and_say_why_one_cannot(tmp_path, monkeypatch):
    """SAMM and CASME II stores with AU cells: MEB's AU row runs (2 of its 6 corpora), Kim's cannot learn AUs."""
    stores = tuple(str(write_corpus_store(tmp_path / f"{d}.zarr", d, subjects=range(1, 3), n_clips=1, aus=True,
                                          seed=k)) for k, d in enumerate(("samm", "casme2")))
    _short(monkeypatch)
    table = rp.reproduce(rp.ReproduceParams(stores=stores, out=str(tmp_path / "r"), models=("shcnn", "kim2017"),
                                            quick=True, device="cpu"))
    au = _row(table, "shcnn", "meb", "meb")
    assert au["status"] == "ran" and au["labels"] == "au:meb-cross" and au["experiment"] == "MEB cross-dataset (AUs)"
    assert au["published"] == {"f1_macro": 0.683, "f1_binary": 0.405} and "SSSNet" in au["note"]
    report = read_report(au["runs"][0])
    assert report["protocol"] == "meb" and [f["name"] for f in report["folds"]] == ["casme2", "samm"]
    assert au["ours"]["f1_macro"]["mean"] == pytest.approx(report["f1_macro"]) and "accuracy" not in au["ours"]
    assert "over 2 of MEB's 6 corpora (no CASME, 4DME, MMEW, CAS(ME)³)" in au["note"]
    kim = _row(table, "kim2017", "meb", "meb")
    assert kim["status"] == "not run" and "KimStateObjective takes classes only" in kim["reason"]
    samm = _row(table, "shcnn", "meb", "meb", "samm")
    assert samm["labels"] == "objective-5" and samm["published"] == {"uar": 0.8313}
    assert samm["status"] == "not run" and "no clip" in samm["reason"]  # these stores have no objective classes
    line = next(x for x in (tmp_path / "r" / rp.REPRODUCE_MD).read_text().splitlines()
                if x.startswith("| shcnn | MEB cross-dataset (AUs) |"))
    assert "AU F1 macro 0.683" in line and "ours: AU F1 macro" in line
