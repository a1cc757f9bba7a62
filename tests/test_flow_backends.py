"""Flow backends in a build: resolution of ``auto``, cache keys, records, batching and GPU placement.

No test needs a GPU: a CUDA device is simulated where it only decides
scheduling (``cuda=True`` in the graph, a worker started with the resource
``GPU=1``), and the torch solver then runs on the CPU.
"""
from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from distributed.diagnostics.plugin import SchedulerPlugin

from mepipe.featurestore import open_store
from mepipe.featurestore.writer import StoreWriter
from mepipe.pipeline.stages import STAGES, default_params, resolve_devices
from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.flow_agreement import agreement
from mepipe.pipeline.graph import Plan, build_graph, plan_build
from mepipe.pipeline.stages import flow, tvl1_torch
from mepipe.pipeline.stages.flow import TVL1Params
from mepipe.pipeline.stages.flow_first_each import FirstEachFlowParams, flow_first_each

from conftest import build_options, demo_build_params

FLOW_STAGES = ("flow_onset_apex", "flow_first_each", "flow_consecutive")
FAST = TVL1Params(nscales=3, warps=2, epsilon=0.05)


def _moving_crops(n_frames=5, size=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((size + 16, size + 16)) * 255
    from scipy import ndimage

    base = ndimage.gaussian_filter(base, 2.0)
    return np.stack([np.clip(base[8:-8, 8 + t:8 + t + size] * 1.0, 0, 255) for t in range(n_frames)]).astype(np.uint8)


@pytest.mark.parametrize("backend, cuda, expected", [
    ("auto", True, "torch"), ("auto", False, "opencv"), ("torch", False, "torch"), ("opencv", True, "opencv"),
])
def test_auto_means_torch_with_cuda_and_opencv_without(backend, cuda, expected):
    assert flow.resolve_backend(backend, cuda) == expected


def test_the_build_resolves_auto_before_keys_and_the_backend_changes_the_key():
    params = default_params()
    assert {params[n].backend for n in FLOW_STAGES} == {"auto"}
    for cuda, backend in ((False, "opencv"), (True, "torch")):
        resolved = resolve_devices(params, cuda)
        assert {resolved[n].backend for n in FLOW_STAGES} == {backend}
        assert resolved["align"] is params["align"]
    ctx = ClipContext("s1", ("a.png", "b.png"), (1, 2), None, 200.0, (0, 1, None))
    keys = {}
    for cuda in (False, True):
        plan = plan_build(StoreWriter("/nonexistent/store.zarr"), [ctx], ["landmarks", "align", "flow_first_each"],
                          resolve_devices(params, cuda))
        keys[cuda] = plan.keys[("s1", "flow_first_each")]
        assert plan.keys[("s1", "align")] == plan.keys.get(("s1", "align"))
    assert keys[False] != keys[True]


def test_a_torch_flow_task_solves_all_pairs_of_its_clip_in_one_call(monkeypatch):
    calls = []
    solve = tvl1_torch.tvl1_batch

    def counting(prev, nxt, *args, **kwargs):
        calls.append(len(prev))
        return solve(prev, nxt, *args, **kwargs)

    monkeypatch.setattr(tvl1_torch, "tvl1_batch", counting)
    crops = _moving_crops(6)
    params = FirstEachFlowParams(size=(32, 32), tvl1=FAST, backend="torch")
    torch_flow = flow_first_each(crops, params)
    assert calls == [5]
    opencv_flow = flow_first_each(crops, dataclasses.replace(params, backend="opencv"))
    assert agreement(torch_flow, opencv_flow).within()


def test_several_clips_share_one_solver_call_and_a_bad_clip_fails_alone(monkeypatch):
    calls = []
    solve = tvl1_torch.tvl1_batch
    monkeypatch.setattr(tvl1_torch, "tvl1_batch", lambda p, n, *a, **k: calls.append(len(p)) or solve(p, n, *a, **k))
    stage = STAGES["flow_consecutive"]
    params = default_params()
    params["flow_consecutive"] = dataclasses.replace(params["flow_consecutive"], size=(32, 32), tvl1=FAST,
                                                     backend="torch")
    ctxs = [ClipContext(f"s{i}", (), (), None, 200.0, (None, None, None)) for i in range(3)]
    inputs = [{"crops": _moving_crops(4, seed=1)}, {"crops": _moving_crops(1)}, {"crops": _moving_crops(5, seed=2)}]
    outs = stage.run_many(ctxs, inputs, params)
    assert calls == [3 + 4]
    assert isinstance(outs[1], ValueError) and "at least 2" in str(outs[1])
    assert outs[0].arrays["flow_consecutive"].shape == (3, 2, 32, 32)
    assert outs[2].arrays["flow_consecutive"].shape == (4, 2, 32, 32)
    assert outs[0].events["flow_backend"] == "torch" and outs[0].events["flow_device"] == "cpu"
    alone = stage.run(ctxs[2], inputs[2], params)
    np.testing.assert_array_equal(alone.arrays["flow_consecutive"], outs[2].arrays["flow_consecutive"])


def test_backend_record_names_library_and_device():
    import cv2
    import torch

    assert flow.backend_record("opencv") == {"flow_backend": "opencv", "flow_device": "cpu",
                                             "flow_library": f"opencv {cv2.__version__}"}
    record = flow.backend_record("torch")
    assert record["flow_backend"] == "torch" and record["flow_library"] == f"torch {torch.__version__}"
    assert record["flow_device"] == ("cuda" if torch.cuda.is_available() else "cpu") or \
        record["flow_device"].startswith("cuda")


def _plan(samples, stages):
    plan = Plan()
    for s in samples:
        for n in stages:
            plan.keys[(s, n)] = f"{s}-{n}-key".ljust(32, "0")
            plan.stale.append((s, n))
    return plan


def _resources(task):
    return task.__dask_graph__().layers[task.key].annotations


@pytest.mark.parametrize("backend, cuda", [("torch", True), ("torch", False), ("opencv", True)])
def test_flow_tasks_ask_for_a_gpu_only_when_torch_runs_on_cuda(backend, cuda):
    samples = [f"s{i}" for i in range(40)]
    stages = ["landmarks", "align", "apex", *FLOW_STAGES]
    params = default_params()
    for n in FLOW_STAGES:
        params[n] = dataclasses.replace(params[n], backend=backend)
    contexts = {s: ClipContext(s, ("f.png",), (1,), None, 200.0, (None, None, None)) for s in samples}
    tasks = build_graph(_plan(samples, stages), contexts, "/tmp/store.zarr", params, cuda=cuda)
    on_gpu = backend == "torch" and cuda
    for n in ("landmarks", "align", "apex"):
        assert all(_resources(tasks[(s, n)]) is None for s in samples)
    for n in FLOW_STAGES:
        distinct = {tasks[(s, n)].key: tasks[(s, n)] for s in samples}
        if on_gpu:
            per_task = STAGES[n].placement.clips_per_task
            assert len(distinct) == -(-len(samples) // per_task)
            assert all(_resources(t) == {"resources": {"GPU": 1}} for t in distinct.values())
        else:
            assert len(distinct) == len(samples)
            assert all(_resources(t) is None for t in distinct.values())


class _RestrictionLog(SchedulerPlugin):
    """A scheduler plugin that records each task's resource restrictions as it is scheduled."""

    name = "restriction-log"

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.seen = {}

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "processing":
            self.seen[str(key)] = self.scheduler.tasks[key].resource_restrictions


@pytest.mark.slow
def test_gpu_flow_tasks_run_only_on_the_gpu_worker(small_demo, store_copy):
    """A cluster with one worker started with ``GPU=1`` and one without: torch flows go to the first."""
    from distributed import Client, Nanny, Scheduler, SpecCluster, get_task_stream

    from mepipe.pipeline.build import run_build

    params = demo_build_params()
    for n, size in (("flow_onset_apex", (48, 40)), ("flow_consecutive", (32, 32))):
        params[n] = dataclasses.replace(params[n], size=size, backend="auto")
    cluster = SpecCluster(scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0", "dashboard": False}},
                          workers={"gpu": {"cls": Nanny, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
                                   "cpu": {"cls": Nanny, "options": {"nthreads": 1}}})
    restrictions = _RestrictionLog(cluster.scheduler)
    try:
        cluster.scheduler.add_plugin(restrictions)
        with Client(cluster) as client:
            names = {w["name"]: addr for addr, w in client.scheduler_info()["workers"].items()}
            with get_task_stream(client) as stream:
                report = run_build(build_options(small_demo, store_copy, scheduler=cluster.scheduler_address,
                                                 stages=("flow_onset_apex", "flow_consecutive"), params=params))
            assert report.exit_code == 0, report.summary()
            where = {t["key"]: t["worker"] for t in stream.data}
    finally:
        cluster.close()
    flow_keys = {k for k in where if str(k).startswith("flow_")}
    assert flow_keys and all(restrictions.seen[k] == {"GPU": 1} for k in flow_keys)
    assert {where[k] for k in flow_keys} == {names["gpu"]}
    assert sum(str(k).startswith("flow_consecutive-batch") for k in where) == 1  # 6 clips in one task
    store = open_store(store_copy)
    sample = store.samples["sample"].iloc[0]
    attrs = StoreWriter(store_copy).feature_attrs(sample, "flow_consecutive")
    assert attrs["events"]["flow_backend"] == "torch"
    stages = StoreWriter(store_copy).root_attrs()["stages"]
    assert stages["flow_consecutive"]["params"]["backend"] == "torch"
