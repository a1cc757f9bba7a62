"""Ctrl-C (issue 23, item 2): one line saying how to resume, exit 130, and the rerun resumes.

A terminal's Ctrl-C reaches the whole process group, so these send SIGINT
to the group of a real ``mepipe`` process (the build's worker processes
included) once it has finished some work, then rerun the same command.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_for
from mepipe.featurestore import open_store

MESSAGE = "interrupted; run the same command again to resume"


def _default_ctrl_c() -> None:
    """SIGINT as a terminal's shell leaves it: pytest-xdist's workers ignore it, and an ignored signal is inherited,
    so without this the command would never see the Ctrl-C the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(command: list[str], started) -> subprocess.CompletedProcess:
    """Run ``command``, send SIGINT to its process group once ``started()``, and wait for it to end."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=_default_ctrl_c)
    try:
        assert wait_for(lambda: started() or proc.poll() is not None, timeout=600), "it never got going"
        assert proc.poll() is None, "it finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _mepipe(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("mepipe")), *args]


@pytest.mark.slow
def test_ctrl_c_stops_a_build_in_one_line_and_the_rerun_resumes_to_a_clean_build_s_result(small_demo, small_store,
                                                                                         defaults_config, tmp_path):
    """The clean build is ``small_store``: the same corpus, stages and (default) parameters, not interrupted."""
    store, clean = tmp_path / "interrupted.zarr", small_store
    build = ["build", "--dataset", "demo", "--root", str(small_demo), "--features", "landmarks,align,apex",
             "--config", str(defaults_config), "--workers", "2", "--no-progress", "--no-estimate"]
    stopped = _interrupt(_mepipe(*build, "--store", str(store)), lambda: any(store.glob("clips/*/crops")))
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == MESSAGE
    assert "Traceback" not in stopped.stderr and "KeyboardInterrupt" not in stopped.stderr
    resumed = subprocess.run(_mepipe(*build, "--store", str(store)), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    cached = next(line for line in resumed.stdout.splitlines() if line.startswith("  stages cached:"))
    assert "landmarks" in cached, resumed.stdout  # what the interrupted build finished was kept
    a, b = open_store(store), open_store(clean)
    assert a.sample_ids == b.sample_ids and set(a.features) == set(b.features)
    for sample in b.sample_ids:
        for feature in b.features:
            if b.has(feature, sample):
                np.testing.assert_array_equal(a.read(feature, sample), b.read(feature, sample), err_msg=feature)


@pytest.mark.slow
def test_ctrl_c_stops_training_in_one_line_and_the_rerun_resumes_from_the_finished_folds(full_store, tmp_path):
    run = tmp_path / "run"
    train = ["train", "--model", "shcnn", "--store", str(full_store), "--labels", "samm-3", "--epochs", "1",
             "--folds", "3", "--no-progress", "--out", str(run)]
    stopped = _interrupt(_mepipe(*train), lambda: any((run / "folds").glob("fold-*.json")))
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == MESSAGE and "Traceback" not in stopped.stderr
    resumed = subprocess.run(_mepipe(*train), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "folds kept from an interrupted attempt" in resumed.stdout
