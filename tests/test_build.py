"""End-to-end builds of the small demo: contents, accuracy, caching rules and failures."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from conftest import build_options
from mepipe.featurestore import open_store
from mepipe.featurestore.lock import BuildLock, StoreLockedError
from mepipe.pipeline.build import run_build
from mepipe.pipeline.stages import default_params

CORE = ["crops", "face_found", "frame", "intensity", "landmarks", "landmarks_aligned", "state", "stddiff"]


def test_demo_store_contents(small_store, small_demo_params):
    store = open_store(small_store)
    df = store.samples
    assert len(df) == 6 and set(df["status"]) <= {"ok", "flagged"}
    for col in ("sample", "dataset", "subject", "clip", "fps", "n_frames", "emotion", "objective_class", "onset",
                "apex", "offset", "onset_est", "apex_est", "apex_ncc", "status"):
        assert col in df.columns
    assert set(CORE) <= set(store.features)
    sid = store.sample_ids[0]
    n = small_demo_params.n_frames
    assert store.read("landmarks", sid).shape == (n, 68, 2)
    assert store.read("crops", sid).shape == (n, 256, 256, 1)
    assert store.dataset("crops")["crops"].shape[0] == 6 * n
    assert store.record.stages["align"].params["size"] == 256
    assert store.record.annotations.sha256


def test_erratum_row_is_flagged_not_fatal(small_store):
    df = open_store(small_store).samples.set_index("sample")
    flagged = df[df["flags"] != ""]
    assert len(flagged) == 1
    row = flagged.iloc[0]
    assert pd.isna(row["apex"]) and not pd.isna(row["apex_est"]) and row["status"] == "flagged"


def _truth(demo):
    return pd.read_csv(demo / "demo_truth.csv", dtype={"subject": str, "filename": str}).set_index("filename")


def test_apex_estimate_is_close_to_truth(small_store, small_demo):
    df = open_store(small_store).samples.set_index("sample")
    truth = _truth(small_demo)
    err = (df["apex_est"].astype(float) - truth.loc[df.index, "apex"]).abs()
    assert err.median() <= 2, err


def test_alignment_removes_head_motion(small_store, small_demo, small_demo_params):
    """True stable points (eye corners, nose) of every frame land within 1 px of the first frame's."""
    from mepipe.pipeline.demo.face import make_subject
    from mepipe.pipeline.demo.motion import expression_class
    from mepipe.pipeline.demo.synth import ClipTruth, clip_landmarks

    store = open_store(small_store)
    stable = [p - 1 for p in default_params()["align"].stable_points]
    worst = []
    for name, row in _truth(small_demo).iterrows():
        truth = ClipTruth(filename=name, **row.to_dict())
        subject = make_subject(int(truth.subject), small_demo_params)
        true_points = clip_landmarks(subject, expression_class(truth.emotion), truth, small_demo_params)[:, stable]
        m = store.read("transforms", name).astype(np.float64)
        in_crop = np.einsum("tij,tkj->tki", m[:, :, :2], true_points) + m[:, None, :, 2]
        deviation = np.linalg.norm(in_crop - in_crop[0], axis=-1)
        worst.append(deviation.mean(axis=1).max())
        head_motion = np.linalg.norm(true_points - true_points[0], axis=-1).max()
        assert head_motion > 1.0, "the demo clip should move the head by more than a pixel"
    assert max(worst) < 1.0, worst


@pytest.mark.slow
def test_rebuild_with_nothing_changed_does_no_stage_work(store_copy, small_demo):
    report = run_build(build_options(small_demo, store_copy))
    assert report.tasks_run == {} and report.exit_code == 0
    assert sum(report.tasks_cached.values()) == 6 * 4  # landmarks, align, magnify (apex reads it), apex


@pytest.mark.slow
def test_changing_one_stage_parameter_recomputes_it_and_descendants(store_copy, small_demo):
    before = open_store(store_copy).read("landmarks", "001_1_1")
    params = default_params()
    params["align"] = dataclasses.replace(params["align"], size=128)
    report = run_build(build_options(small_demo, store_copy, params=params))
    assert report.tasks_run == {"align": 6, "magnify": 6, "apex": 6}
    assert report.tasks_cached == {"landmarks": 6}
    store = open_store(store_copy)
    assert store.read("crops", "001_1_1").shape[1:] == (128, 128, 1)
    assert np.array_equal(store.read("landmarks", "001_1_1"), before)


@pytest.mark.slow
def test_force_recomputes_on_demand(store_copy, small_demo):
    report = run_build(build_options(small_demo, store_copy, force=("apex",)))
    assert report.tasks_run == {"apex": 6} and report.tasks_cached == {"landmarks": 6, "align": 6, "magnify": 6}


@pytest.mark.slow
def test_adding_clips_computes_only_them(store_copy, small_demo, tmp_path):
    import openpyxl

    from mepipe.pipeline.demo import SHEET_NAME

    # first build from a sheet that lacks subject 002's rows, then from the full sheet
    book = openpyxl.load_workbook(small_demo / SHEET_NAME)
    sheet = book.active
    for row in reversed(range(1, sheet.max_row + 1)):
        if str(sheet.cell(row, 2).value or "").startswith("002_"):
            sheet.delete_rows(row)
    partial = tmp_path / "partial.xlsx"
    book.save(partial)
    fresh = tmp_path / "fresh.zarr"
    first = run_build(build_options(small_demo, fresh, annotations=partial))
    assert first.n_samples == 3
    second = run_build(build_options(small_demo, fresh))
    assert second.n_samples == 6 and second.tasks_run == {"landmarks": 3, "align": 3, "magnify": 3, "apex": 3}


@pytest.mark.slow
def test_bad_clips_fail_alone_and_are_reported(demo_copy, tmp_path):
    import cv2

    clips = sorted(p for p in demo_copy.glob("*/*") if p.is_dir())
    corrupt = sorted(clips[0].glob("*.jpg"))[5]
    corrupt.write_bytes(b"not a jpeg at all")
    for f in clips[1].glob("*.jpg"):
        cv2.imwrite(str(f), np.full((384, 384), 128, np.uint8))
    report = run_build(build_options(demo_copy, tmp_path / "s.zarr"))
    assert report.exit_code == 1
    failed = {f["sample"]: f for f in report.failures}
    assert set(failed) == {clips[0].name, clips[1].name}
    assert failed[clips[0].name]["file"].endswith(corrupt.name) and "decoded" in failed[clips[0].name]["reason"]
    assert "no face" in failed[clips[1].name]["reason"] and failed[clips[1].name]["stage"] == "landmarks"
    store = open_store(tmp_path / "s.zarr")
    df = store.samples.set_index("sample")
    assert (df.loc[list(failed), "status"] == "failed").all()
    assert (df.loc[list(failed), "error"] != "").all()
    ok = [s for s in store.sample_ids if s not in failed]
    assert len(ok) == 4 and all(store.has("intensity", s) for s in ok)


@pytest.mark.slow
def test_missing_frame_is_a_named_failure(demo_copy, tmp_path):
    """A frame deleted inside the expression (not the sheet's onset, apex or offset) is named in the report."""
    clip = sorted(p for p in demo_copy.glob("*/*") if p.is_dir())[1]
    truth = _truth(demo_copy).loc[clip.name]
    marks = {int(truth["onset"]), int(truth["apex"]), int(truth["offset"])}
    victim = next(f for f in sorted(clip.glob("*.jpg"))
                  if int(truth["onset"]) < int(f.stem.rsplit("_", 1)[1]) < int(truth["apex"])
                  and int(f.stem.rsplit("_", 1)[1]) not in marks)
    victim.unlink()
    report = run_build(build_options(demo_copy, tmp_path / "s.zarr"))
    named = [m for m in [f["error"] for f in report.failures] + report.quirks if clip.name in m]
    assert any(victim.stem.rsplit("_", 1)[1].lstrip("0") in m or victim.name in m for m in named), named


@pytest.mark.slow
def test_concurrent_build_is_refused(store_copy, small_demo):
    with BuildLock(store_copy):
        with pytest.raises(StoreLockedError, match="is being built by"):
            run_build(build_options(small_demo, store_copy))


def test_summary_counts_in_words_that_agree_with_the_number():
    from mepipe.pipeline.build import BuildReport

    def summary(quirks):
        return BuildReport(store="s", dataset="d", started="", seconds=1.0, n_samples=1, n_ok=1, tasks_run={},
                           tasks_cached={}, stage_seconds={}, failures=[], quirks=quirks, exit_code=0).summary()

    one = summary(["001_3_1: apex outside onset..offset"]).splitlines()
    line = one.index("  1 sheet/data quirk handled (see the report):")
    assert one[line + 1] == "    001_3_1: apex outside onset..offset"
    assert "  2 sheet/data quirks handled (see the report):" in summary(["a", "b"]).splitlines()
