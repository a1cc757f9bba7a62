"""The same build on dask.distributed clusters: a LocalCluster, and a scheduler and workers started as
separate processes (``dask scheduler``, ``dask worker``) as on a real cluster."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import build_options
from mepipe.featurestore import open_store
from mepipe.pipeline.build import run_build


@pytest.mark.slow
def test_build_on_a_local_cluster(small_demo, small_store, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      scheduler_kwargs={"dashboard": False}) as cluster:  # no fixed port: no "8787 in use" warning
        opts = build_options(small_demo, tmp_path / "cluster.zarr", scheduler=cluster.scheduler_address)
        report = run_build(opts)
    assert report.exit_code == 0 and report.tasks_run == {"landmarks": 6, "align": 6, "magnify": 6, "apex": 6}
    from distributed.client import _get_global_client

    assert _get_global_client() is None  # the build's client never became the session's default
    built, reference = open_store(tmp_path / "cluster.zarr"), open_store(small_store)
    assert built.record.build.scheduler == cluster.scheduler_address
    for sid in reference.sample_ids:
        assert np.array_equal(built.read("crops", sid), reference.read("crops", sid))


def _dask(*args):
    """``dask`` of this interpreter's environment (the command a cluster's machines run)."""
    return [str(Path(sys.executable).with_name("dask")), *args]


@pytest.fixture
def separate_cluster(tmp_path):
    """A scheduler and two single-threaded workers started as ``dask scheduler`` / ``dask worker`` processes.

    Listens on 127.0.0.1 at ports the OS picks, without dashboards; the
    address comes from the scheduler file, as on a cluster with a shared
    file system. Yields the address; both processes are stopped afterwards.
    """
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker")]
    procs = [subprocess.Popen(_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                    "--scheduler-file", str(scheduler_file)),
                              stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen(_dask("worker", "--scheduler-file", str(scheduler_file), "--nworkers", "2",
                                            "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"),
                                      stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"}))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()


@pytest.mark.slow
def test_cli_build_on_separately_started_scheduler_and_workers(separate_cluster, small_demo, small_store, tmp_path,
                                                               defaults_config):
    """``mepipe build --scheduler tcp://...`` on separately started processes writes what a local build writes."""
    store = tmp_path / "shared" / "demo.zarr"
    done = subprocess.run([sys.executable, "-m", "mepipe.cli", "build", "--dataset", "demo", "--root", str(small_demo),
                           "--store", str(store), "--scheduler", separate_cluster, "--features", "core",
                           "--config", str(defaults_config), "--no-progress", "--no-estimate"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    built, reference = open_store(store), open_store(small_store)
    assert built.record.build.scheduler == separate_cluster
    assert built.sample_ids == reference.sample_ids and set(built.features) == set(reference.features)
    for sid in reference.sample_ids:
        for feature in reference.features:
            if reference.has(feature, sid):
                assert np.array_equal(built.read(feature, sid), reference.read(feature, sid), equal_nan=True), \
                    (sid, feature)
