"""Spotting runs end to end on a small synthetic long-video store: the MEGC table, intervals.csv, timelines, resume,
test videos read only after the spotter is fixed, --final, the CLI, the chance and relocation controls, and the
choice of settings on held-out people."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import command_group
from video_stores import K, write_video_store

from mepipe.featurestore import FeatureStore
from mepipe.train.clips import StoreMismatchError
from mepipe.train.spotters import get_spotter, megc2020, nag2019
from mepipe.train.spotters import run as run_module
from mepipe.train.spotters.base import Pass
from mepipe.train.spotters.controls import chance_table, relocate
from mepipe.train.spotters.intervals import spot_by_duration
from mepipe.train.spotters.report import INTERVALS_COLUMNS, INTERVALS_FILE, TIMELINE_DIR, read_spot_report
from mepipe.train.spotters.run import SpotParams, plan_spot, restore_final, run_spot
from mepipe.train.spotters.selection import choose_settings
from mepipe.train.spotters.videos import VideoTable
from mepipe.train.spotting_eval import ALL, spotting_table

torch.set_num_threads(1)

TINY = (("model_args", (("widths", (4, 8, 8)), ("fc6", 8), ("feature_channels", 8), ("fused", 8), ("fc", 16),
                        ("hidden", 16))), ("epochs", 1))
"""A narrow nag2019 trained one epoch: these tests check what is read when and written where, not what is learnt."""


@pytest.fixture(scope="module")
def video_store(tmp_path_factory):
    return write_video_store(tmp_path_factory.mktemp("videos") / "demo-lv.zarr", n_subjects=3)


@pytest.fixture(scope="module")
def baseline_run(video_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "baseline"
    report = run_spot(SpotParams("baseline", (str(video_store),), out=str(out), progress=False))
    return out, report


@pytest.mark.slow
def test_a_run_pools_every_fold_into_the_megc_table_of_its_intervals_csv(baseline_run, video_store):
    out, report = baseline_run
    spotted = pd.read_csv(out / INTERVALS_FILE, dtype={"video": str})
    assert tuple(spotted.columns) == INTERVALS_COLUMNS
    truth = FeatureStore(video_store).intervals
    videos = [("demo-lv", v) for v in ("001_1", "002_1", "003_1")]
    expected = [r.as_record() for r in spotting_table(spotted, truth, videos=videos)]
    assert report["table"] == expected
    assert len(report["folds"]) == 3 and sum(len(f["test"]) for f in report["folds"]) == 3
    assert read_spot_report(out)["table"] == report["table"]


def test_a_run_draws_one_timeline_per_video(baseline_run):
    out, _ = baseline_run
    assert sorted(p.name for p in (out / TIMELINE_DIR).iterdir()) == ["001_1.png", "002_1.png", "003_1.png"]


def test_the_report_names_the_store_its_id_and_the_published_baseline(baseline_run, video_store):
    _, report = baseline_run
    store = report["store"]["stores"][0]
    assert store["store_id"] == FeatureStore(video_store).store_id
    assert store["n_intervals"] == {"micro": 3, "macro": 3}
    assert {(p["corpus"], p["kind"]) for p in report["published"]} >= {("samm-lv", "micro"), ("casme-sq", "macro")}
    assert report["folds"][0]["settings"] == {"micro": 0.01, "macro": 0.01}


@pytest.mark.slow
def test_a_killed_run_keeps_its_finished_folds(video_store, tmp_path, monkeypatch, baseline_run):
    params = SpotParams("baseline", (str(video_store),), out=str(tmp_path / "run"), progress=False)
    real, calls = run_module._run_fold, []

    def dies_on_the_second_fold(*args, **kwargs):
        calls.append(args[1].fold.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "_run_fold", dies_on_the_second_fold)
    with pytest.raises(KeyboardInterrupt):
        run_spot(params)
    monkeypatch.setattr(run_module, "_run_fold", real)
    report = run_spot(params)
    assert report["resumed_folds"] == ["demo-lv/001"]
    assert report["table"] == baseline_run[1]["table"]


class ReadBeforeFixed(AssertionError):
    """A test video's feature was read while its fold's spotter was being fitted."""


def _sealed_run(monkeypatch, params, spotter_fit=None):
    """Run fold 1 of ``params`` with its test videos unreadable until the spotter's fit has returned."""
    plan = plan_spot(params)
    sealed = set(plan.folds[0].test)
    opened = []
    real_read, real_fit = FeatureStore.read, spotter_fit or plan.spotter.fit

    def read(self, feature, sample, frames=None):
        if sample in sealed:
            raise ReadBeforeFixed(f"{feature} of test video {sample} read before the spotter was fixed")
        return real_read(self, feature, sample, frames)

    def fit(ctx):
        fitted = real_fit(ctx)
        opened.extend(sorted(sealed))
        sealed.clear()
        return fitted

    monkeypatch.setattr(FeatureStore, "read", read)
    plan.spotter = dataclasses.replace(plan.spotter, fit=fit)
    report = run_spot(params, plan)
    return report, opened


@pytest.mark.parametrize("name, changes", [("baseline", (("p", "chosen"),)),
                                           pytest.param("nag2019", TINY, marks=pytest.mark.slow)])
def test_test_videos_are_read_only_once_the_spotter_is_fixed(video_store, tmp_path, monkeypatch, name, changes):
    params = SpotParams(name, (str(video_store),), params=changes, folds=1, out=str(tmp_path / name),
                        progress=False, device="cpu")
    report, opened = _sealed_run(monkeypatch, params)
    fold = report["folds"][0]
    assert opened == fold["test"] == ["001_1"]
    assert "001_1" not in fold["fit"] + fold["validation"]["videos"]
    chosen_on = fold["spotter"]["choice"]
    assert all(choice["videos"] and "001_1" not in choice["videos"] for choice in chosen_on.values())


def test_the_guard_stops_a_spotter_that_reads_a_test_video_while_fitted(video_store, tmp_path, monkeypatch):
    baseline = get_spotter("baseline")

    def leaky_fit(ctx):  # reads every video of the stores, the test person's too
        store = next(iter(ctx.videos.stores.values()))
        for video in store.sample_ids:
            store.read("roi_magnitude", video)
        return baseline.fit(ctx)

    params = SpotParams("baseline", (str(video_store),), folds=1, out=str(tmp_path / "leaky"), progress=False)
    with pytest.raises(ReadBeforeFixed, match="roi_magnitude of test video 001_1"):
        _sealed_run(monkeypatch, params, leaky_fit)


@pytest.mark.slow
def test_a_final_run_fits_on_everyone_and_has_no_test_figure(video_store, tmp_path):
    out = tmp_path / "final"
    report = run_spot(SpotParams("baseline", (str(video_store),), protocol="final", params=(("p", "chosen"),),
                                 out=str(out), progress=False))
    assert report["test_figure"] is None and "no test figure" in report["note"] and "table" not in report
    fold = report["folds"][0]
    assert fold["test"] == [] and sorted(fold["fit"]) == ["001_1", "002_1", "003_1"]
    assert sorted(fold["spotter"]["choice"]["micro"]["videos"]) == ["001_1", "002_1", "003_1"]
    fitted = restore_final(out)
    assert fitted.settings == fold["settings"]
    curves = fitted.curves(VideoTable.open([str(video_store)]), "002_1")
    assert set(curves) == {megc2020.CURVE} and np.isfinite(curves[megc2020.CURVE]).any()  # micro and macro share it


@pytest.mark.slow
def test_a_final_nag_spotter_comes_back_with_the_same_curves(video_store, tmp_path):
    out = tmp_path / "final-nag"
    params = SpotParams("nag2019", (str(video_store),), protocol="final", params=TINY, out=str(out),
                        progress=False, device="cpu")
    plan = plan_spot(params)
    report = run_spot(params, plan)
    fold = report["folds"][0]
    assert len(fold["validation"]["people"]) == 1 and fold["checkpoint"].startswith("checkpoints/")
    videos = VideoTable.open([str(video_store)])
    restored = restore_final(out)
    again = restore_final(out)
    curve = nag2019.CURVE
    np.testing.assert_allclose(restored.curves(videos, "003_1")[curve], again.curves(videos, "003_1")[curve])
    assert restored.settings == fold["settings"]


def test_an_apart_step_reads_the_field_centred_on_its_frame_less_its_median(video_store):
    videos = VideoTable.open([str(video_store)])
    stored = videos.read("flow_apart", "001_1").astype(np.float32)
    half = K // 2  # the store's flow_apart k is K: the step ending at frame t reads the field from t - K // 2
    x = nag2019.window_input(videos, "001_1", 30, 5, "apart")
    for step in range(5):
        field = stored[30 + 1 + step - half]
        expected = field - np.median(field, axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(x[6:, step], expected, atol=1e-6)
    start = nag2019.window_input(videos, "001_1", 0, 14, "apart")[6:]
    assert not start[:, :half - 1].any()  # steps ending before frame K // 2 have no field: zeros
    np.testing.assert_allclose(start[:, half - 1], stored[0] - np.median(stored[0], axis=(1, 2), keepdims=True))
    n = int(videos.value("001_1", "n_frames"))
    end = nag2019.window_input(videos, "001_1", n - 15, 14, "apart")[6:]
    assert not end.any()  # the last K frames' fields are NaN in the store, read as zeros


@pytest.mark.slow
def test_a_nag_run_on_the_apart_flow_reads_and_records_it(video_store, tmp_path):
    changes = (*TINY, ("flow", "apart"), ("optimizer", "adam"), ("batch_size", 4))
    params = SpotParams("nag2019", (str(video_store),), params=changes, folds=1, out=str(tmp_path / "apart"),
                        progress=False, device="cpu")
    plan = plan_spot(params)
    assert plan.describe()["reads"] == ["frames_rgb", "flow_apart"]
    report = run_spot(params, plan)
    assert report["store"]["features"] == ["frames_rgb", "flow_apart"]
    assert report["parameters"]["spotter"]["flow"] == "apart"


# --- command line -----------------------------------------------------------------------------


def spot_cli():
    return command_group("spot_cmd", "train_cmd")


def test_dry_run_lists_the_folds_and_the_held_out_people(video_store):
    result = CliRunner().invoke(spot_cli(), ["spot", "--store", str(video_store), "--spotter", "nag2019",
                                             "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "3 people; 3 of 3 folds" in result.output
    assert "demo-lv/001: test 1 videos, fit 1, choose on demo-lv/" in result.output


def test_a_store_of_clips_is_refused_in_one_sentence(small_store):
    result = CliRunner().invoke(spot_cli(), ["spot", "--store", str(small_store), "--spotter", "baseline"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {small_store} holds annotated clips, not long videos; spotting reads a long-video store "
        "(mepipe build --dataset samm-lv, casme-sq or demo-lv)"]


def test_an_unknown_parameter_names_the_spotters_parameters(video_store):
    result = CliRunner().invoke(spot_cli(), ["spot", "--store", str(video_store), "--spotter", "baseline",
                                             "--param", "epochs=3"])
    assert result.exit_code == 2
    assert "spotter 'baseline' has no parameter 'epochs' (its parameters: p, p_grid, share, val_people)" in \
        result.output


def test_evaluate_reprints_a_spotting_run(baseline_run):
    out, report = baseline_run
    result = CliRunner().invoke(spot_cli(), ["evaluate", str(out)])
    assert result.exit_code == 0, result.output
    micro = next(r for r in report["table"] if r["dataset"] == ALL and r["kind"] == "micro")
    assert f"{micro['f1']:.4f}" in result.output and "published F1" in result.output
    as_json = CliRunner().invoke(spot_cli(), ["evaluate", str(out), "--json"])
    assert json.loads(as_json.output)["table"] == report["table"]


# --- choosing settings, controls --------------------------------------------------------------


def test_the_setting_with_the_best_f1_of_its_kind_is_chosen_the_first_of_equals(video_store):
    videos = VideoTable.open([str(video_store)])
    truth = videos.truth
    micro = truth[(truth["video"] == "001_1") & (truth["kind"] == "micro")].iloc[0]
    curve = np.zeros(600)
    curve[micro["onset"] - 1:micro["offset"]] = 0.6   # the micro-expression (positions = frame numbers - 1)
    curve[500:560] = 0.9                              # a 60-frame bump where nothing is annotated
    grid = (0.95, 0.8, 0.7, 0.5, 0.3)
    choice = choose_settings([Pass("all", "micro", grid, spot_by_duration, curve="bump")], {"001_1": {"bump": curve}},
                             videos, truth)["all"]
    # 0.95: nothing (F1 0); 0.8, 0.7: the false bump only (0); 0.5 and 0.3: both, 1 TP of 2 predictions (2/3).
    assert [round(f1, 4) for _, f1 in choice.grid] == [0.0, 0.0, 0.0, 0.6667, 0.6667]
    assert choice.setting == 0.5 and (choice.counts.tp, choice.counts.fp, choice.counts.fn) == (1, 1, 0)


@pytest.mark.slow
def test_chance_is_the_share_of_random_places_that_find_the_truth():
    # One 10-frame truth at 10..19 of a 100-frame video, one 10-frame prediction placed uniformly at 91 starts:
    # IoU (10 - d) / (10 + d) >= 0.5 for offsets |d| <= 3, 7 starts, so TP = 7 / 91 on average.
    truth = pd.DataFrame([{"dataset": "d", "video": "v", "onset": 10, "offset": 19, "kind": "micro"}])
    predicted = pd.DataFrame([{"dataset": "d", "video": "v", "onset": 50, "offset": 59, "kind": "micro"}])
    chance = chance_table(predicted, truth, {("d", "v"): (0, 100)}, draws=20_000)
    assert chance[(ALL, "micro")]["tp"] == pytest.approx(7 / 91, abs=0.006)
    assert chance[(ALL, "micro")]["fp"] == pytest.approx(84 / 91, abs=0.006)
    assert chance[("d", "macro")] == {"tp": 0.0, "fp": 0.0, "fn": 0.0, "f1": 0.0}


def test_relocated_intervals_keep_their_video_length_kind_and_apex_place():
    truth = pd.DataFrame([{"video": "v", "onset": 100, "apex": 120, "offset": 159, "kind": "micro"},
                          {"video": "v", "onset": 300, "apex": None, "offset": 499, "kind": "macro"},
                          {"video": "w", "onset": 5, "apex": 9, "offset": 14, "kind": "micro"}])
    moved = relocate(truth, {"v": (1, 1000), "w": (1, 50)}, seed=3)
    assert (moved["offset"] - moved["onset"]).tolist() == [59, 199, 9]
    assert moved["kind"].tolist() == truth["kind"].tolist() and moved["video"].tolist() == ["v", "v", "w"]
    assert moved["apex"][0] - moved["onset"][0] == 20 and moved["apex"][1] is None
    assert (moved["onset"] >= 1).all() and (moved["offset"][:2] <= 1000).all() and moved["offset"][2] <= 50
    assert moved["onset"].tolist() != truth["onset"].tolist()


def test_a_store_copy_with_another_id_is_refused_when_the_id_is_pinned(video_store, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(video_store, copy)
    with pytest.raises(StoreMismatchError, match="its store id is .*, not 0000"):
        plan_spot(SpotParams("baseline", (str(copy),), store_ids=("0" * 64,), out=str(tmp_path / "x")))


@pytest.mark.slow
def test_reproduce_adds_one_spotting_row_per_spotter_of_a_long_video_store(video_store, tmp_path, monkeypatch):
    from mepipe.train import reproduce as rp
    from mepipe.train.spotters import reproduce as spot_reproduce

    real = spot_reproduce.get_spotter
    monkeypatch.setattr(spot_reproduce, "get_spotter",
                        lambda name: dataclasses.replace(real(name), quick=TINY) if name == "nag2019" else real(name))
    table = rp.reproduce(rp.ReproduceParams(stores=(str(video_store),), out=str(tmp_path / "out"), models=("shcnn",),
                                            quick=True, device="cpu"))
    rows = {r["spotter"]: r for r in table["spotting"]}
    assert set(rows) == {"baseline", "nag2019"} and all(r["status"] == "ran" for r in rows.values())
    assert rows["baseline"]["corpus"] == "samm-lv" and rows["baseline"]["published_f1"]["micro"] == 0.0364
    report = read_spot_report(rows["nag2019"]["runs"][0])
    micro = next(r for r in report["table"] if r["dataset"] == ALL and r["kind"] == "micro")
    assert rows["nag2019"]["ours"]["micro"]["f1"] == micro["f1"]
    markdown = (tmp_path / "out" / rp.REPRODUCE_MD).read_text()
    assert "## Spotting (MEGC 2020 scoring" in markdown and "| nag2019 | demo-lv | SAMM Long Videos | 3 of 3 |" in markdown
