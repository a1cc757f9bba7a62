"""Why a task reruns (issue 23, item 1): each input of a cache key, changed alone, is named as the reason.

The store copied here was built by ``build_options`` (landmarks, align,
magnify, apex; paper defaults); each test changes one thing and reads the
reasons ``mepipe build --dry-run`` prints, from the plan alone.
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from mepipe.pipeline.build import preview_build
from mepipe.pipeline.stages import STAGES, default_params
from mepipe.pipeline.staleness import NEW_CLIP, NOT_STORED, param_changes

from conftest import build_options


def _why(preview, stage: str) -> set[str]:
    """Every reason given for the stage's stale tasks."""
    return {r for (_, name), reasons in preview.reasons.items() if name == stage for r in reasons}


def test_param_changes_name_each_changed_leaf_with_its_old_and_new_value():
    params = default_params()["flow_first_each"]
    recorded = {"size": [112, 112], "compute_at": "size", "tvl1": {"nscales": 3, "warps": 5, "epsilon": 0.01},
                "backend": "opencv", "channel_order": "RGB"}
    changes = param_changes("flow_first_each", recorded, dataclasses.replace(params, backend="opencv"))
    assert 'flow_first_each.compute_at "size" -> "crop"' in changes
    assert "flow_first_each.tvl1.nscales 3 -> 5" in changes
    assert "flow_first_each.tvl1.tau unset -> 0.25" in changes  # not in the record: a parameter added since
    assert not [c for c in changes if ".size " in c or ".warps " in c or ".backend " in c]
    alphas = param_changes("magnify", {"alphas": [5.0, 8.0, 11.0]}, default_params()["magnify"], fields=["alphas"])
    assert alphas == ["magnify.alphas [5.0, 8.0, 11.0] -> [5.0, 6.0, ..., 14.0] (10 values)"]


def test_a_new_store_runs_every_task_as_a_new_clip(small_demo, tmp_path):
    preview = preview_build(build_options(small_demo, tmp_path / "new.zarr"))
    assert {r for rs in preview.reasons.values() for r in rs} == {NEW_CLIP, "after landmarks", "after align",
                                                                "after align, magnify"}
    assert preview.reasons[("001_1_1", "landmarks")] == [NEW_CLIP]


def test_a_changed_parameter_is_named_and_its_descendants_rerun_after_it(store_copy, small_demo):
    params = default_params()
    params["magnify"] = dataclasses.replace(params["magnify"], r1=0.3)
    preview = preview_build(build_options(small_demo, store_copy, params=params))
    assert _why(preview, "magnify") == {"parameter magnify.r1 0.4 -> 0.3"}
    assert _why(preview, "apex") == {"after magnify"}
    assert not _why(preview, "align") and not _why(preview, "landmarks")


def test_a_code_version_bump_and_a_forced_stage_are_named(store_copy, small_demo, monkeypatch):
    built_with = STAGES["align"].version
    monkeypatch.setitem(STAGES, "align", dataclasses.replace(STAGES["align"], version="99"))
    preview = preview_build(build_options(small_demo, store_copy, force=("apex",)))
    assert _why(preview, "align") == {f"code version {built_with} -> 99"}
    assert _why(preview, "magnify") == {"after align"}
    assert _why(preview, "apex") == {"--force", "after align, magnify"}


def test_changed_sources_are_named_for_the_clip_whose_file_changed(demo_copy, tmp_path):
    from mepipe.pipeline.build import run_build

    store = tmp_path / "s.zarr"
    assert run_build(build_options(demo_copy, store, stages=("landmarks",))).exit_code == 0
    frame = sorted((demo_copy / "002").rglob("*.jpg"))[3]
    stat = frame.stat()
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    preview = preview_build(build_options(demo_copy, store, stages=("landmarks", "align")))
    assert preview.reasons[("002_1_1", "landmarks")] == ["sources changed (file names, sizes or modification times)"]
    assert preview.reasons[("001_1_1", "align")] == [NOT_STORED]
    assert ("001_1_1", "landmarks") in preview.cached


@pytest.mark.slow
def test_a_changed_frame_rate_in_the_sheet_is_named(small_demo, tmp_path):
    """lfm keys its lag (fps / 25 frames) on the sheet's fps; a manifest whose fps changes says so."""
    from mepipe.pipeline.build import BuildOptions, run_build

    clip = next(p for p in sorted(small_demo.glob("*/*")) if p.is_dir())
    root = tmp_path / "data"
    (root / "clip").mkdir(parents=True)
    for f in sorted(clip.glob("*.jpg"))[:12]:
        (root / "clip" / f.name).write_bytes(f.read_bytes())
    sheet = root / "manifest.csv"
    sheet.write_text("path,subject,label,fps\nclip,s1,x,200\n")
    options = dict(dataset="manifest", root=root, store=tmp_path / "s.zarr", scheduler="sync", progress=False,
                   stages=("landmarks", "lfm"))
    assert run_build(BuildOptions(**options)).exit_code == 0
    sheet.write_text("path,subject,label,fps\nclip,s1,x,100\n")
    preview = preview_build(BuildOptions(**options))
    assert preview.reasons == {("clip", "lfm"): ["sheet fps 200.0 -> 100.0"]}
