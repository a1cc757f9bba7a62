"""``examples/tour.ipynb``: the demo from build to comparison, executed from top to bottom so it never rots.

The notebook is run with nbclient in a fresh kernel, writing into a temporary folder
(``$MEPIPE_TOUR_DIR``) with that folder as its working directory; the committed file carries no
outputs. The notebook is handed the session's small demo (``$MEPIPE_TOUR_DEMO``) and a copy of
``full_store`` (those 6 clips built with the demo's settings) in its folder, which it reuses: its build
command runs and finds every stage it asks for cached instead of building again what a fixture holds.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def _text(cell) -> str:
    """Everything a code cell printed or showed as text."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_the_committed_tour_is_valid_and_carries_no_outputs():
    import nbformat

    notebook = nbformat.read(TOUR, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_the_tour_runs_from_top_to_bottom(tmp_path, monkeypatch, small_demo, full_store):
    import nbformat
    from nbclient import NotebookClient

    work = tmp_path / "tour"
    shutil.copytree(full_store, work / "demo.zarr")
    monkeypatch.setenv("MEPIPE_TOUR_DIR", str(work))
    monkeypatch.setenv("MEPIPE_TOUR_DEMO", str(small_demo))
    before = sorted(p.name for p in TOUR.parent.iterdir())
    notebook = nbformat.read(TOUR, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    printed = "\n".join(_text(c) for c in cells)
    assert "6/6 clips built" in printed and "23 × 2 × 112 × 112" in printed  # info --features on flow_first_each
    report = json.loads((work / "runs" / "shcnn" / "report.json").read_text())
    assert report["n_test_clips"] == 6 and (work / "runs" / "clfm" / "report.json").is_file()
    assert "parameters that differ" in printed and "recall negative" in printed
    images = sum("image/png" in out.get("data", {}) for c in cells for out in c.outputs)
    assert images >= 5  # the intensity plot, two `mepipe show` pictures, the confusion matrix, the recall bars
    assert sorted(p.name for p in TOUR.parent.iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name != "tour"]
