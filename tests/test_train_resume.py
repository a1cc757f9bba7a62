"""A killed ``mepipe train`` resumes at the fold it was in: finished folds are kept, not retrained.

Each fold's result is written atomically to ``RUN/folds/`` once its
checkpoint is in place, and ``RUN/run.json`` records what the run computes;
a rerun with the same settings keeps the finished folds, and one with other
settings is refused unless ``--overwrite``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from conftest import train_cli
from corpora import write_corpus_store

from mepipe.train.report import read_report
from mepipe.train.run import RunParams, run_training
from mepipe.train.runstate import FOLDS_DIR, RUN_FILE, ExistingRunError, fold_path

torch.set_num_threads(1)

TINY = (("widths", (4, 8, 8)), ("hidden", 16))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_corpus_store(tmp_path_factory.mktemp("resume") / "samm.zarr", "samm", subjects=range(1, 4),
                              n_clips=1)


def _params(store, out, **changes):
    return RunParams(**{"model": "shcnn", "store": str(store), "labels": "megc-3", "out": str(out), "epochs": 1,
                        "device": "cpu", "progress": False, "model_args": TINY, **changes})


def _stamps(out):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((out / FOLDS_DIR).glob("*.json"))}


@pytest.mark.slow
def test_an_interrupted_run_keeps_its_finished_folds(store, tmp_path):
    out = tmp_path / "run"
    whole = run_training(_params(store, out))
    assert [f["name"] for f in whole["folds"]] == ["samm/001", "samm/002", "samm/003"]
    # As a kill during the last fold leaves it: no report, no result for that fold.
    (out / "report.json").unlink()
    fold_path(out, "samm/003").unlink()
    kept = _stamps(out)
    checkpoints = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("fold-samm_00[12].pt")}
    resumed = run_training(_params(store, out))
    assert resumed["resumed_folds"] == ["samm/001", "samm/002"]
    assert {k: v for k, v in _stamps(out).items() if k in kept} == kept
    assert {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("fold-samm_00[12].pt")} == checkpoints
    assert resumed["predictions"] == whole["predictions"] and resumed["confusion"] == whole["confusion"]
    assert resumed["folds"][:2] == whole["folds"][:2]  # kept as written, timings included
    assert [h["loss"] for h in resumed["folds"][2]["history"]] == [h["loss"] for h in whole["folds"][2]["history"]]


@pytest.mark.slow
def test_other_settings_are_refused_unless_overwrite(store, tmp_path):
    out = tmp_path / "run"
    run_training(_params(store, out, folds=1))
    (out / "report.json").unlink()
    with pytest.raises(ExistingRunError, match=r"unfinished run with other settings \(parameters.seed: 0 -> 1"):
        run_training(_params(store, out, folds=1, seed=1))
    cli = CliRunner().invoke(train_cli(), ["train", "--model", "shcnn", "--store", str(store), "--labels", "megc-3",
                                           "--out", str(out), "--epochs", "2", "--folds", "1", "--device", "cpu",
                                           "--no-progress", "--model-arg", "widths=[4,8,8]", "--model-arg",
                                           "hidden=16"])
    assert cli.exit_code == 2 and "parameters.epochs: 1 -> 2" in cli.output and "Traceback" not in cli.output
    again = run_training(_params(store, out, folds=1, seed=1, overwrite=True))
    assert again["resumed_folds"] == [] and json.loads((out / RUN_FILE).read_text())["identity"]["parameters"][
        "seed"] == 1
    with pytest.raises(ExistingRunError, match="already holds a finished run"):
        run_training(_params(store, out, folds=1, seed=1))


def _command(store, out):
    return [sys.executable, "-m", "mepipe.cli", "train", "--model", "shcnn", "--store", str(store), "--labels",
            "megc-3", "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out),
            "--model-arg", "widths=[4,8,8]", "--model-arg", "hidden=16"]


KILLED_PEOPLE = 4
"""People (LOSO folds) of the killed run: enough that a kill after the first fold leaves some to resume."""


@pytest.mark.slow
def test_sigkill_mid_run_resumes_at_the_fold_it_was_in(tmp_path):
    store = write_corpus_store(tmp_path / "samm.zarr", "samm", subjects=range(1, KILLED_PEOPLE + 1), n_clips=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(store, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((out / FOLDS_DIR).glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = _stamps(out)
    print(f"SIGKILL after {len(finished)} of {KILLED_PEOPLE} folds")
    assert process.returncode == -signal.SIGKILL and 1 <= len(finished) < KILLED_PEOPLE
    assert not (out / "report.json").exists()
    assert not list((out / FOLDS_DIR).glob("*.tmp"))  # a fold file is either whole or absent
    rerun = subprocess.run(_command(store, out), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming an interrupted run; {len(finished)} finished folds are kept" in rerun.stderr
    assert {k: v for k, v in _stamps(out).items() if k in finished} == finished  # not rewritten
    report = read_report(out)
    assert len(report["resumed_folds"]) == len(finished) and len(report["folds"]) == KILLED_PEOPLE
    reference = run_training(_params(store, tmp_path / "uninterrupted"))  # what _command runs, in-process
    assert report["predictions"] == reference["predictions"]
