"""Fault suite, issue 24 item 1 (and the file case of item 7): a build never deletes what it did not write.

Before: building one subject's dataset into a store of two subjects (another
root) deleted the second subject's clips, exit 0, logged at INFO only; a
store of dataset ``samm`` silently became ``demo``; ``--store`` naming the
dataset root or a folder of the user's files wrote the store into it and
listed those files in its manifest; ``--store`` naming a file was a
``FileExistsError`` traceback. Now a build from other sources is refused
unless ``--replace``, one that would remove clips unless ``--prune``, a
file or a non-empty folder that is not a store always; the report names
every clip removed.
"""
from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from conftest import build_options, one_line_error

from mepipe.cli.main import cli
from mepipe.featurestore import open_store
from mepipe.featurestore.verify import verify
from mepipe.pipeline.build import preview_build, run_build
from mepipe.pipeline.demo import SHEET_NAME
from mepipe.pipeline.destination import DestinationError, Sources

pytestmark = pytest.mark.slow


def _build(root: Path, store: Path, *extra: str, dataset: str = "demo", features: str = "landmarks,align,apex"
           ) -> list[str]:
    return ["build", "--dataset", dataset, "--root", str(root), "--store", str(store), "--no-progress", "--scheduler",
            "sync", "--features", features, *extra]


def _state(store: Path) -> dict[str, bytes]:
    """Every file of the store with its bytes, to show a refused build changed nothing."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()
            and ".mepipe" not in p.parts}


def _drop_subject(root: Path, subject: str) -> list[str]:
    """Delete a subject's rows from the demo sheet (its frames stay on disk); returns the clips dropped."""
    sheet = root / SHEET_NAME
    book = openpyxl.load_workbook(sheet)
    rows = book.active
    dropped = []
    for row in range(rows.max_row, 0, -1):
        clip = str(rows.cell(row, 2).value or "")
        if clip.startswith(f"{subject}_"):
            dropped.append(clip)
            rows.delete_rows(row)
    book.save(sheet)
    return sorted(dropped)


def test_a_build_from_another_root_is_refused_and_changes_nothing(store_copy, small_demo, demo_copy):
    before = _state(store_copy)
    result = CliRunner().invoke(cli, _build(demo_copy, store_copy))
    one_line_error(result, 2, f"{store_copy} was built from other sources",
                    f"root {small_demo.resolve()}, not {demo_copy.resolve()}", "--replace")
    assert _state(store_copy) == before and verify(str(store_copy)).ok


def test_a_build_of_another_dataset_is_refused(store_copy, small_demo):
    result = CliRunner().invoke(cli, _build(small_demo, store_copy, dataset="samm"))
    one_line_error(result, 2, "dataset 'demo', not 'samm'", "--replace")


def test_a_build_with_other_adapter_options_is_refused(store_copy, small_demo):
    result = CliRunner().invoke(cli, _build(small_demo, store_copy, "--option", "fps=100"))
    one_line_error(result, 2, 'adapter options none, not {"fps": "100"}')


def test_replace_rebuilds_from_the_new_root_and_names_every_clip_removed(store_copy, small_demo, demo_copy):
    gone = _drop_subject(demo_copy, "002")
    assert gone and len(gone) < len(open_store(str(store_copy)).sample_ids)
    result = CliRunner().invoke(cli, _build(demo_copy, store_copy, "--replace", features="landmarks"))
    assert result.exit_code == 0, result.output
    assert f"replaced demo from {small_demo.resolve()} (--replace)" in result.output
    assert f"removed {len(gone)} clip{'' if len(gone) == 1 else 's'} the dataset does not list: {', '.join(gone)}" in result.output
    report = json.loads((store_copy / ".mepipe" / "build-report.json").read_text())
    assert report["removed"] == gone and report["replaced"] == f"demo from {small_demo.resolve()}"
    store = open_store(str(store_copy))
    assert not set(gone) & set(store.sample_ids) and store.record.source_root == str(demo_copy.resolve())
    kept = store.sample_ids[0]
    assert store.has("landmarks", kept) and not store.has("crops", kept)  # align ran on the old sources: removed
    assert set(store.features) == {"frame", "landmarks", "face_found", "face_box"} and verify(str(store_copy)).ok


def test_a_subset_of_the_same_sources_needs_prune(store_copy, demo_copy):
    assert run_build(build_options(demo_copy, store_copy, replace=True)).exit_code == 0  # now demo_copy's store
    gone = _drop_subject(demo_copy, "001")
    before = _state(store_copy)
    with pytest.raises(DestinationError, match=f"would remove {len(gone)} clips .*{gone[-1]}.*--prune"):
        run_build(build_options(demo_copy, store_copy))
    assert _state(store_copy) == before
    report = run_build(build_options(demo_copy, store_copy, prune=True))
    assert report.exit_code == 0 and report.removed == gone and f"removed {len(gone)} clips" in report.summary()
    assert not set(gone) & set(open_store(str(store_copy)).sample_ids)


@pytest.mark.parametrize("where", ["dataset root", "folder of notes"])
def test_a_folder_that_is_not_a_store_is_refused(demo_copy, tmp_path, where):
    target = demo_copy if where == "dataset root" else tmp_path / "mine"
    target.mkdir(exist_ok=True)
    (target / "notes.txt").write_text("my notes\n")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    result = CliRunner().invoke(cli, _build(demo_copy, target))
    one_line_error(result, 2, str(target), "notes.txt", "not a mepipe store", "another --store")
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before


def test_a_file_named_as_the_store_is_one_line(small_demo, tmp_path):
    target = tmp_path / "s.zarr"
    target.write_text("not a store")
    one_line_error(CliRunner().invoke(cli, _build(small_demo, target)), 2, str(target), "is a file")
    assert target.read_text() == "not a store"


def test_an_empty_folder_is_a_new_store(small_demo, tmp_path):
    (tmp_path / "empty").mkdir()
    report = run_build(build_options(small_demo, tmp_path / "empty", stages=("landmarks",)))
    assert report.exit_code == 0 and not report.removed and verify(str(tmp_path / "empty")).ok


def test_sources_differ_by_dataset_root_and_options_but_not_by_unrecorded_options(tmp_path):
    a = Sources.of("samm", tmp_path, {"release": "raw"})
    assert a.differences(Sources.of("samm", tmp_path / ".", {"release": "raw"})) == []
    assert len(a.differences(Sources.of("casme2", tmp_path.parent, {"release": "cropped"}))) == 3
    (tmp_path / "link").symlink_to(tmp_path)
    assert a.differences(Sources.of("samm", tmp_path / "link", {"release": "raw"})) == []
    older = Sources("samm", str(tmp_path.resolve()), None)  # a record written before options were recorded
    assert older.differences(Sources.of("samm", tmp_path, {"release": "cropped"})) == []


def test_an_older_record_without_options_still_guards_the_root(store_copy, small_demo, demo_copy):
    root = json.loads((store_copy / "zarr.json").read_text())
    del root["attributes"]["adapter_options"]
    (store_copy / "zarr.json").write_text(json.dumps(root))
    preview_build(build_options(small_demo, store_copy, adapter_options={"fps": "100"}))  # options not recorded
    with pytest.raises(DestinationError, match=f"root {small_demo.resolve()}, not {demo_copy.resolve()}"):
        preview_build(build_options(demo_copy, store_copy))
