"""Fault suite, issue 24 item 7: everyday mistakes in one line.

Before: an unreachable ``--scheduler`` waited 30 s and printed an 86-line
traceback; a full disk and a read-only destination (build, export, pack,
train) were tracebacks; ``export`` silently replaced an existing table; a
1-frame clip and a still image given as a video were built without a word;
a skipped duplicate row could scroll out of the summary's first ten quirks;
``.mepipe-part-*`` copies of killed packs and pushes stayed for good. Now
each is one line (or a summary line) and the next pack or push sweeps the
parts no live process holds. (``--store`` naming a file: see
test_build_destination.py.)
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_options, one_line_error
from storekit import write_store

import mepipe.pipeline.graph as graph
from mepipe.cli.main import cli
from mepipe.featurestore import IncompleteStoreError, open_store
from mepipe.featurestore.backends.base import part_name
from mepipe.featurestore.backends.parts import hold, release, sweep
from mepipe.featurestore.errors import DiskFullError
from mepipe.featurestore.verify import verify
from mepipe.pipeline.build import run_build

ROOT = os.geteuid() == 0

KILLED = """
import os, signal, sys
from mepipe.featurestore.backends import folder, zipped
def killing(write):
    def wrapper(self, name, data):
        write(self, name, data)
        os.kill(os.getpid(), signal.SIGKILL)
    return wrapper
zipped.ZipBackend.write = killing(zipped.ZipBackend.write)
folder.FolderBackend.write = killing(folder.FolderBackend.write)
from mepipe.cli.main import cli
sys.argv = ["mepipe", *sys.argv[1:]]
cli()
"""
"""Runs ``mepipe ARGS`` and SIGKILLs it right after the first file of a pack's or push's staged copy."""


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, *options: str):
    """A tmpfs mounted at ``path`` (root only); yields a function that remounts it with other options."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path)],
                   check=True)

    def remount(*changes: str) -> None:
        subprocess.run(["mount", "-o", ",".join(["remount", *changes]), str(path)], check=True)

    try:
        yield remount
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing can be written into: a read-only tmpfs (root ignores permission bits), else mode 0o555."""
    target = tmp_path / "ro"
    if ROOT:
        with _tmpfs(target, "1m", "ro"):
            yield target
    else:
        target.mkdir()
        target.chmod(0o555)
        yield target
        target.chmod(0o755)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_after_its_timeout(small_demo, tmp_path, monkeypatch):
    monkeypatch.setattr(graph, "SCHEDULER_TIMEOUT", 0.5)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(cli, ["build", "--dataset", "demo", "--root", str(small_demo), "--store",
                                      str(tmp_path / "s.zarr"), "--features", "landmarks", "--no-progress",
                                      "--no-estimate", "--scheduler", address])
    one_line_error(result, 2, f"--scheduler {address}: no dask scheduler answered within 0.5 s", "dask scheduler")


def test_a_scheduler_that_is_no_address_is_one_line(small_demo, tmp_path):
    result = CliRunner().invoke(cli, ["build", "--dataset", "demo", "--root", str(small_demo), "--store",
                                      str(tmp_path / "s.zarr"), "--features", "landmarks", "--no-progress",
                                      "--no-estimate", "--scheduler", "localhost"])
    one_line_error(result, 2, "--scheduler localhost: not a scheduler address", "tcp://HOST:PORT")


@pytest.mark.slow
def test_a_full_disk_stops_the_build_in_one_line_and_it_resumes_to_the_same_store(small_demo, small_store, tmp_path,
                                                                                   defaults_config, monkeypatch):
    store = tmp_path / "disk" / "s.zarr"
    args = ["build", "--dataset", "demo", "--root", str(small_demo), "--store", str(store), "--features",
            "landmarks,align,apex", "--no-progress", "--no-estimate", "--scheduler", "sync",
            "--config", str(defaults_config)]
    with contextlib.ExitStack() as stack:
        if ROOT:  # a real file system that fills up
            remount = stack.enter_context(_tmpfs(tmp_path / "disk", "2m"))
        else:  # no mount without root: the writer's renames fail as a full disk fails them
            remount = _full_disk_after(monkeypatch, 20)
        result = CliRunner().invoke(cli, args)
        note, _, error = result.output.partition("\n")  # first the note that this config replaces the demo's settings
        assert note.startswith(f"note: {defaults_config} replaces"), result.output
        one_line_error(SimpleNamespace(output=error, exit_code=result.exit_code), 1,
                       f"{store}: no space left on its disk", "run the same build again: it resumes")
        with pytest.raises(IncompleteStoreError):  # never taken for complete
            open_store(str(store))
        remount("size=64m")
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "stages cached: landmarks" in result.output  # what was written before the disk filled is kept
        assert verify(str(store)).ok
        _assert_same_arrays(open_store(str(store)), open_store(str(small_store)))


def _full_disk_after(monkeypatch, writes: int):
    """Simulate a disk that fills after ``writes`` feature groups; returns the function that makes room."""
    from mepipe.featurestore.writer import StoreWriter

    original = StoreWriter._move_into_place
    count = {"n": 0}

    def filling(self, staging, final):
        count["n"] += 1
        if count["n"] > writes:
            raise OSError(28, "No space left on device")
        original(self, staging, final)

    monkeypatch.setattr(StoreWriter, "_move_into_place", filling)
    return lambda *_: monkeypatch.setattr(StoreWriter, "_move_into_place", original)


def _assert_same_arrays(a, b) -> None:
    assert a.sample_ids == b.sample_ids
    for sample in a.sample_ids:
        for feature in ("landmarks", "crops", "intensity", "state"):
            np.testing.assert_array_equal(a.read(feature, sample), b.read(feature, sample), err_msg=sample)


@pytest.mark.slow
def test_a_read_only_destination_is_one_line_for_build_export_pack_and_train(small_demo, small_store, read_only_dir,
                                                                              toy_network, tmp_path):
    commands = {
        "build": ["build", "--dataset", "demo", "--root", str(small_demo), "--store", str(read_only_dir / "s.zarr"),
                  "--features", "landmarks", "--no-progress", "--scheduler", "sync"],
        "export": ["export", str(small_store), "--to", str(read_only_dir / "t.csv")],
        "pack": ["store", "pack", str(small_store), str(read_only_dir / "s.zarr.zip")],
        "train": ["train", "--model", "toy-curve", "--store", str(small_store), "--labels", "samm-3", "--epochs", "1",
                  "--device", "cpu", "--no-progress", "--out", str(read_only_dir / "run")],
    }
    why = "the file system is read-only" if ROOT else "permission denied"
    for name, args in commands.items():
        output = one_line_error(CliRunner().invoke(cli, args), 2, str(read_only_dir), why, "choose a place you can write")
        assert name and "Errno" not in output
    assert not list(read_only_dir.iterdir())


def test_export_over_a_table_is_refused_unless_overwrite(tmp_path):
    store = write_store(tmp_path / "s.zarr")
    table = tmp_path / "t.csv"
    table.write_text("my edits\n")
    one_line_error(CliRunner().invoke(cli, ["export", str(store), "--to", str(table)]), 2, f"{table} exists",
              "--overwrite")
    assert table.read_text() == "my edits\n" and not (tmp_path / "t-clips.csv").exists()
    (tmp_path / "u-clips.csv").write_text("mine\n")
    one_line_error(CliRunner().invoke(cli, ["export", str(store), "--to", str(tmp_path / "u.csv")]), 2, "u-clips.csv exists")
    result = CliRunner().invoke(cli, ["export", str(store), "--to", str(table), "--overwrite"])
    assert result.exit_code == 0 and table.read_text().startswith("sample,"), result.output


@pytest.mark.slow
def test_one_frame_clips_still_images_and_skipped_rows_are_in_the_summary(small_demo, tmp_path):
    clip = next(p for p in sorted(small_demo.glob("*/*")) if p.is_dir())
    frames = sorted(clip.glob("*.jpg"))
    root = tmp_path / "m"
    for name, keep in (("a", frames[:4]), ("one", frames[:1])):
        (root / name).mkdir(parents=True)
        for f in keep:
            shutil.copy(f, root / name / f.name)
    shutil.copy(frames[0], root / "still.jpg")
    with open(root / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "subject", "label", "fps", "sample"], ["a", "1", "Happiness", 200, "a"],
                                 ["one", "1", "Surprise", 200, "one"], ["still.jpg", "1", "Anger", 200, "still"],
                                 ["a", "1", "Fear", 200, "a"]])
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(cli, ["build", "--dataset", "manifest", "--root", str(root), "--store", str(store),
                                      "--features", "landmarks", "--no-progress", "--scheduler", "sync"])
    assert result.exit_code == 0, result.output
    assert "1 sheet row skipped:\n    a: duplicate_sample: row 5 skipped: its sample id repeats row 2" in result.output
    assert f"one: single_frame: {root / 'one'} has 1 frame: no motion to measure" in result.output
    assert f"still: still_image: {root / 'still.jpg'} is a still image, not a video" in result.output
    report = json.loads((store / ".mepipe" / "build-report.json").read_text())
    assert report["skipped_rows"] == [q for q in report["quirks"] if "duplicate_sample" in q] != []
    flags = dict(zip(open_store(str(store)).samples["sample"], open_store(str(store)).samples["flags"]))
    assert flags == {"a": "", "one": "single_frame", "still": "still_image"}


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".mepipe-part-"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["pack", "push-folder", "push-zip"])
def test_the_next_copy_sweeps_the_parts_a_killed_one_left(tmp_path, how):
    store = write_store(tmp_path / "s.zarr")
    out = tmp_path / "out"
    out.mkdir()
    dest = out / ("s.zarr" if how == "push-folder" else "s.zarr.zip")
    args = ["store", "pack", str(store), str(dest)] if how == "pack" else ["store", "push", str(store), dest.as_uri()]
    killed = subprocess.run([sys.executable, "-c", KILLED, *args], capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = _parts(out)
    assert len(left) == 1 and not dest.exists()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _parts(out) == [] and verify(str(dest)).ok


def test_a_part_another_process_is_writing_is_left_alone(tmp_path):
    final = tmp_path / "s.zarr.zip"
    live, dead = tmp_path / part_name(final.name), tmp_path / part_name(final.name)
    live.write_bytes(b"being written")
    dead.mkdir()
    other = tmp_path / part_name("other.zip")  # a part of another destination
    other.write_bytes(b"")
    (tmp_path / f".mepipe-part-{uuid.uuid4().hex[:12]}-s.zarr.zip.bak").write_bytes(b"")  # not a part's name
    fd = hold(live)
    try:
        assert sweep(final) == [dead.name]
        assert live.exists() and other.exists() and len(list(tmp_path.iterdir())) == 3
    finally:
        release(fd)
    assert sweep(final) == [live.name]


def test_a_full_disk_error_is_a_data_error_that_is_an_os_error():
    error = DiskFullError("s.zarr: no space left on its disk")
    assert isinstance(error, OSError) and error.exit_code == 1 and str(error) == "s.zarr: no space left on its disk"


@pytest.mark.slow
def test_a_stage_writing_to_a_full_disk_stops_the_build_instead_of_failing_its_clip(small_demo, tmp_path,
                                                                                    monkeypatch):
    _full_disk_after(monkeypatch, 2)
    with pytest.raises(DiskFullError, match="no space left on its disk"):
        run_build(build_options(small_demo, tmp_path / "s.zarr", stages=("landmarks",)))
