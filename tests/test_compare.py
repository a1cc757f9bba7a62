"""``mepipe runs compare``: figures, differing parameters and store ids side by side; per-class recall as a PNG."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import command_group
from corpora import write_corpus_store

from mepipe.featurestore import open_store
from mepipe.train.compare import CELL_LINES, CELL_WIDTH, compare_runs, format_comparison, recall_figure
from mepipe.train.models import get_recipe
from mepipe.train.run import RunParams, run_training

torch.set_num_threads(1)

TINY = (("widths", (4, 8, 8)), ("hidden", 16))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two one-epoch SHCNN runs on a small SAMM-like store, differing in seed and learning rate."""
    root = tmp_path_factory.mktemp("compare")
    store = write_corpus_store(root / "samm.zarr", "samm", subjects=range(1, 3), n_clips=1)
    out = []
    for name, seed, lr in (("a", 0, 1e-3), ("b", 1, 5e-3)):
        params = RunParams(model="shcnn", store=str(store), labels="samm-3", out=str(root / name), epochs=1,
                           model_args=TINY, seed=seed, lr=lr, device="cpu", progress=False)
        run_training(params)
        out.append(root / name)
    return {"runs": out, "store": store}


@pytest.mark.slow
def test_figures_and_store_ids_come_from_each_report(runs):
    table = compare_runs(runs["runs"])
    for entry, run in zip(table["runs"], runs["runs"]):
        report = json.loads((run / "report.json").read_text())
        assert entry["name"] == run.name
        assert entry["figures"]["uar"] == report["uar"] and entry["figures"]["accuracy"] == report["accuracy"]
        assert entry["stores"][0]["store_id"] == open_store(runs["store"]).store_id


def test_recall_per_class_is_the_confusion_diagonal_over_its_rows(runs):
    table = compare_runs(runs["runs"])
    for entry, run in zip(table["runs"], runs["runs"]):
        confusion = json.loads((run / "report.json").read_text())["confusion"]
        expected = [row[i] / sum(row) if sum(row) else None for i, row in enumerate(confusion)]
        assert entry["recall"] == pytest.approx(expected)
        assert np.mean([r for r in expected if r is not None]) == pytest.approx(entry["figures"]["uar"])


def test_only_differing_parameters_are_listed(runs):
    table = compare_runs(runs["runs"])
    assert table["differences"]["run.seed"] == [0, 1]
    assert table["differences"]["run.lr"] == [1e-3, 5e-3]
    assert table["differences"]["stage.network.lr"] == [1e-3, 5e-3]
    assert table["differences"]["stage.network.seed"] == [0, 1]
    assert "run.out" not in table["differences"] and "run.model" not in table["differences"]
    assert table["same"] > 10
    text = format_comparison(table)
    assert "parameters that differ (4;" in text and "run.lr" in text and open_store(runs["store"]).store_id in text


def test_recall_figure_names_runs_axes_and_full_class_names(runs):
    figure = recall_figure(compare_runs(runs["runs"]))
    ax = figure.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 2 and legend[0].startswith("a (shcnn") and legend[1].startswith("b (shcnn")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["negative", "positive", "surprise"]
    assert "recall" in ax.get_ylabel() and "class" in ax.get_xlabel()


def test_cli_prints_the_comparison_and_writes_the_png(runs, tmp_path):
    png = tmp_path / "recall.png"
    result = CliRunner().invoke(command_group("reproduce_cmd"), ["runs", "compare", *map(str, runs["runs"]), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "recall negative" in result.output and "run.seed" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_no_png_unless_asked(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    around = runs["runs"][0].parent
    before = {p for p in around.rglob("*.png")}
    result = CliRunner().invoke(command_group("reproduce_cmd"), ["runs", "compare", *map(str, runs["runs"])])
    assert result.exit_code == 0, result.output
    assert "recall negative" in result.output and "per-class recall:" not in result.output
    assert {p for p in around.rglob("*.png")} == before and not list(tmp_path.rglob("*.png"))


def test_settings_of_how_a_run_executed_are_not_compared(runs, tmp_path):
    """A run that differs from "a" only in its folder, progress bars and in-memory reading shows no difference."""
    store = runs["store"]
    params = RunParams(model="shcnn", store=str(store), labels="samm-3", out=str(tmp_path / "c"), epochs=1,
                       model_args=TINY, seed=0, lr=1e-3, device="cpu", progress=True, in_memory=True)
    run_training(params)
    reports = [json.loads((run / "report.json").read_text()) for run in (runs["runs"][0], tmp_path / "c")]
    assert [r["parameters"]["stages"][0]["train"]["progress"] for r in reports] == [False, True]
    assert [r["parameters"]["run"]["in_memory"] for r in reports] == [False, True]
    table = compare_runs([runs["runs"][0], tmp_path / "c"])
    assert table["differences"] == {}
    assert f"parameters: all {table['same']} the same" in format_comparison(table)


def test_long_values_wrap_and_are_cut_saying_their_length(runs):
    """A recipe's deviations (as runs of two networks differ in them) no longer pad a column to 600 characters."""
    table = compare_runs(runs["runs"])
    deviations = json.dumps([vars(d) for d in get_recipe("strcn-g").deviations])
    assert len(deviations) > CELL_WIDTH * CELL_LINES
    table["differences"]["recipe.deviations"] = [deviations, "[]"]
    lines = format_comparison(table).split("\nstores:")[0].splitlines()
    label = max(len(k) for k in table["differences"]) + 2
    assert max(len(line) for line in lines) <= label + 2 * (CELL_WIDTH + 2)
    shown = [line for line in lines if line.startswith("recipe.deviations")]
    start = lines.index(shown[0])
    assert lines[start + CELL_LINES - 1].rstrip().endswith(f"… ({len(deviations)} chars)")
    assert deviations[:20] in shown[0] and "[]" in shown[0]
    assert compare_runs(runs["runs"])["differences"].get("recipe.deviations") is None


def test_cli_refuses_a_folder_that_is_not_a_run(runs, tmp_path):
    result = CliRunner().invoke(command_group("reproduce_cmd"), ["runs", "compare", str(runs["runs"][0]), str(tmp_path)])
    assert result.exit_code == 2 and "is not a finished run" in result.output and "Traceback" not in result.output
