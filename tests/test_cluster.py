"""The same build on a dask.distributed LocalCluster with two worker processes."""
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
    built, reference = open_store(tmp_path / "cluster.zarr"), open_store(small_store)
    assert built.record.build.scheduler == cluster.scheduler_address
    for sid in reference.sample_ids:
        assert np.array_equal(built.read("crops", sid), reference.read("crops", sid))
