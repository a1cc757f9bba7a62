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


@pytest.mark.slow
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


def test_rows_put_the_runs_clips_per_class_beside_the_papers_and_train_the_papers_label_version(table):
    """CASME II rows train with the labels the papers used (casme2-2014) and show the run's clips per class with
    Miao's counts (246 clips: surprise 25) beside them; SAMM's with Miao's 133 in three classes."""
    row = _row(table["table"], "shcnn", "casme2")
    report = read_report(row["runs"][0])
    assert row["label_version"] == "casme2-2014" == report["parameters"]["run"]["label_version"]
    expected = {c: n for c, n in report["plan"]["clips"]["by_dataset"]["casme2"].items() if c != "total"}
    assert row["class_counts"]["ours"] == expected and sum(expected.values()) == 6
    assert row["class_counts"]["paper"] == {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25,
                                            "others": 99}
    line = next(x for x in table["markdown"].splitlines() if x.startswith("| shcnn | CASME II |"))
    assert f"surprise {expected['surprise']} (25)" in line and "total 6 (246)" in line
    assert "label version casme2-2014" in line
    samm = _row(table["table"], "shcnn", "samm")
    assert samm["label_version"] is None and samm["class_counts"]["paper"] == {"negative": 92, "positive": 26,
                                                                                "surprise": 15}
    assert "Miao et al. 2019 §III-A (246 clips)" in table["markdown"].split("Clips per class")[1]
    kim = _row(table["table"], "kim2017", "casme2")  # not run: the papers' counts only
    assert kim["class_counts"]["ours"] is None and kim["class_counts"]["paper"]["surprise"] == 25


def test_published_figures_without_a_figure_of_ours_say_why(table):
    row = _row(table["table"], "shcnn", "casme2")
    assert row["no_column"] == {"f1": rp.NO_COLUMN["f1"]}  # Miao's F1 is undefined; accuracy has ours
    line = next(x for x in table["markdown"].splitlines() if x.startswith("| shcnn | CASME II |"))
    assert f"no F1 of ours: {rp.NO_COLUMN['f1']}" in line
    assert _row(table["table"], "shcnn", "composite", "megc2019")["no_column"] == {}  # UF1 and UAR are ours
    # An entry's own reason wins (Xia's pooled F1), and a spotting AUC no run computed says so.
    xia = next(e for e in get_recipe("strcn-g").published if e.corpus == "samm")
    assert dict(xia.no_column)["f1"].startswith("Xia pool precision and recall over the classes")
    spotting = Published("samm", "samm-3", "loso", (("accuracy", 0.5), ("spotting_auc", 0.9)), "test")
    report = read_report(_row(table["table"], "shcnn", "samm")["runs"][0])
    built = rp._row("shcnn", spotting, _params({"samm": "a", "casme2": "b", "list": None}, "x"), stores_used=[],
                    reports=[report])
    assert built["no_column"] == {"spotting_auc": rp.NO_COLUMN["spotting_auc"]}
    assert "no spotting AUC of ours" in rp.format_row_lines(built, "out") and "deviations: layers; flow colour scale" in rp.format_row_lines(built, "out")


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


def test_the_terminal_lines_put_the_published_figure_beside_ours(table):
    row = _row(table["table"], "shcnn", "casme2")
    lines = rp.format_row_lines(row, table["out"]).splitlines()
    mean, std = row["ours"]["accuracy"]["mean"], row["ours"]["accuracy"]["std"]
    assert lines[0] == "shcnn · CASME II · loso  (casme2, 2 seeds)"
    assert lines[1].split()[:5] == ["ours", "acc", f"{mean:.3f}", "±", f"{std:.3f},"]
    assert lines[2] == "  published  acc 0.711, F1 0.698  (Miao et al. 2019, Table 7)"
    assert lines[3] == f"  figure     {table['out'] / row['figure']}"
    kim = _row(table["table"], "kim2017", "casme2")
    missing = rp.format_row_lines(kim, table["out"]).splitlines()
    assert missing[1].startswith("  not run ") and "frames_rgb" in missing[1] and missing[2].startswith("  published")
    hostile = rp.format_row_lines({**kim, "reason": "a store's \x1b[2J reason", "dataset": "x\ny"}, table["out"])
    assert "\x1b" not in hostile and "\\x1b[2J" in hostile and len(hostile.splitlines()) == len(missing)


def test_each_row_that_ran_has_a_figure_of_ours_beside_the_published(table):
    rows = table["table"]["rows"]
    ran = [r for r in rows if r["status"] == "ran"]
    assert ran and all(r["figure"] is None for r in rows if r["status"] != "ran")
    figures = [table["out"] / r["figure"] for r in ran]
    assert len(set(figures)) == len(ran) and all(f.parent == table["out"] / rp.FIGURES_DIR for f in figures)
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)


def test_a_row_figure_draws_our_mean_and_spread_and_the_published_values(table):
    from mepipe.train.reproduce_figures import row_figure

    row = _row(table["table"], "shcnn", "casme2")  # published: accuracy and the paper's F1; ours: acc, UF1, UAR
    ax = row_figure(row).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["accuracy", "F1 (paper's)", "UF1", "UAR"]
    spread, ours, published = ax.containers  # error bars (mean ± sample std over the seeds), our bars, theirs
    heights = [bar.get_height() for bar in ours]
    assert heights[0] == pytest.approx(row["ours"]["accuracy"]["mean"]) and heights[1] != heights[1]  # F1: NaN
    assert heights[3] == pytest.approx(row["ours"]["uar"]["mean"])
    assert [bar.get_height() for bar in published][:2] == pytest.approx([0.7114, 0.6981])
    segments = spread.lines[2][0].get_segments()
    assert segments[0][1][1] - segments[0][0][1] == pytest.approx(2 * row["ours"]["accuracy"]["std"])
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("n/a") == 3  # ours F1; published UF1 and UAR
    assert f"{row['ours']['uf1']['mean']:.3f}" in texts and "0.711" in texts and "0.698" in texts
    dots = [line for line in ax.lines if line.get_marker() == "."]
    assert len(dots) == 3 and all(len(d.get_ydata()) == 2 for d in dots)  # each seed of acc, UF1, UAR
    assert "quick schedule" in ax.get_title() and "Table 7" in ax.get_legend().get_texts()[1].get_text()


def test_row_figure_names_are_file_names_whatever_the_store_calls_its_dataset():
    from mepipe.train.reproduce_figures import row_slug

    row = {"model": "shcnn", "protocol": "cross", "train_corpus": "casme2", "corpus": "samm", "part": None,
           "dataset": "../../etc/passwd"}
    assert row_slug(row) == "shcnn-cross-casme2-to-samm-_etc_passwd"
    assert row_slug({**row, "protocol": "megc2019", "train_corpus": None, "corpus": "composite", "part": "smic",
                     "dataset": "smic"}) == "shcnn-megc2019-smic-smic"


def test_compare_names_reproduce_runs_by_their_row_and_seed(table):
    from mepipe.train.compare import compare_runs

    samm = _row(table["table"], "shcnn", "samm")
    composite = _row(table["table"], "shcnn", "composite", "megc2019")
    names = [r["name"] for r in compare_runs([*samm["runs"], composite["runs"][0]])["runs"]]
    assert names == ["shcnn · SAMM · loso · seed 0", "shcnn · SAMM · loso · seed 1",
                     "shcnn · MEGC 2019 composite · megc2019 · seed 0"]


def test_the_progress_bar_counts_the_runs_and_names_the_row(stores, tmp_path, monkeypatch, capsys):
    def crash(params):
        raise RuntimeError("boom")

    monkeypatch.setattr(rp, "run_training", crash)
    rp.reproduce(_params(stores, tmp_path / "out", models=("shcnn",), seeds=2, progress=True))
    err = capsys.readouterr().err
    assert "reproduce" in err and "8/8 [" in err  # (two corpora + MEB's AU and emotion rows) x 2 seeds
    assert "shcnn · MEB cross-dataset (emotions): SAMM held out · meb, seed 0" in err  # the row it last ran


@pytest.mark.slow
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
    topics = [d.topic for d in get_recipe("kim2017").deviations]
    assert "  deviations: " + "; ".join(topics) in result.output
    assert "clips per class, ours (papers': Miao et al. 2019 §III-A (246 clips)): happiness — (32)" in result.output
    assert (tmp_path / "r" / "reproduce.md").exists()
    bad = CliRunner().invoke(command_group("reproduce_cmd"), ["reproduce", "--store", stores["samm"], "--models", "nope",
                                      "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "unknown model 'nope'" in bad.output and "Traceback" not in bad.output


@pytest.mark.slow
def test_cli_reproduce_quick_on_a_built_demo_store(full_store, tmp_path, monkeypatch):
    """``--quick`` on a small built demo (SAMM layout): the SAMM rows and the composite run, the others say why.

    The runs draw no plots, as in ``table``: a run's figures are tested with ``mepipe train``.
    """
    monkeypatch.setattr(report_module, "plot_run", lambda run, report: ())
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


@pytest.mark.slow
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
