"""A build killed with SIGKILL resumes on rerun and never exposes a half-written array."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import build_options, wait_for
from mepipe.featurestore import IncompleteStoreError, open_store
from mepipe.pipeline.build import run_build


def _build_cmd(root, store, *extra):
    return [sys.executable, "-m", "mepipe.cli", "build", "--dataset", "demo", "--root", str(root),
            "--store", str(store), "--no-progress", "--no-estimate", "--features", "core", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", [["--scheduler", "sync"], ["--workers", "2"]], ids=["sync", "processes"])
def test_killed_build_resumes(small_demo, small_store, tmp_path, scheduler, defaults_config):
    store = tmp_path / "killed.zarr"
    proc = subprocess.Popen(_build_cmd(small_demo, store, "--config", str(defaults_config), *scheduler),
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(list(store.glob("clips/*/crops"))) >= 2), "build never wrote crops"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    with pytest.raises(IncompleteStoreError):
        open_store(store)
    partial, reference = open_store(store, allow_incomplete=True), open_store(small_store)
    assert "crops" in partial.features
    visible = [(clip.name, feature.name) for clip in (store / "clips").iterdir() if clip.is_dir()
               for feature in clip.iterdir() if feature.is_dir()]
    assert len(visible) >= 2
    for sample, feature in visible:  # every visible array is the complete array a finished build writes
        np.testing.assert_array_equal(partial.read(feature, sample), reference.read(feature, sample),
                                      err_msg=f"{sample}/{feature}")

    report = run_build(build_options(small_demo, store))
    assert report.exit_code == 0
    assert sum(report.tasks_cached.values()) >= 2
    assert sum(report.tasks_run.values()) + sum(report.tasks_cached.values()) == 24
    resumed = open_store(store)
    assert not any((store / ".mepipe" / "staging").iterdir())
    for sid in reference.sample_ids:
        for feature in ("landmarks", "crops", "intensity"):
            assert np.array_equal(resumed.read(feature, sid), reference.read(feature, sid)), (sid, feature)
