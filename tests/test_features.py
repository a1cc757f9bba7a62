"""Features in a built store: the feature table's shapes and sizes, provenance, selection, config, pictures."""
import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import build_options, demo_build_params
from mepipe.featurestore import FEATURES, open_store
from mepipe.pipeline.build import run_build
from mepipe.pipeline.config import ConfigError
from mepipe.pipeline.stages import STAGES, default_params, params_from_mapping, resolve_devices, stages_for

N = 24  # frames per demo clip


def test_every_feature_has_its_shape_and_dtype(full_store):
    store = open_store(full_store)
    sid = store.sample_ids[0]
    expected = {
        "flow_onset_apex": ((2, 300, 245), np.float16),  # 245 wide, 300 high
        "flow_first_each": ((N - 1, 2, 112, 112), np.float16),
        "flow_consecutive": ((N - 1, 2, 64, 64), np.float16),
        "magnified": ((N, 128, 128, 1), np.uint8),
        "magnified_small": ((N, 3, 64, 48, 1), np.uint8),  # 48 wide, 64 high; the demo's alphas 5, 8, 11
        "subset_frames": ((1, N), bool),  # the demo's one subset level (Xia's five by default)
        "subset_pair": ((1,), np.int32),
        "lfm": ((N - 8, 68, 68), np.uint8),  # lag T = 200 / 25 = 8
        "clfm": ((N - 8, 21, 21), np.uint8),
        "sfem": ((), np.float64),
        "heatmap": ((64, 48), np.float32),
        "appearance_frames": ((30, 64, 48, 1), np.float16),
        "frames_rgb": ((N, 64, 64, 3), np.uint8),
        "state_frames": ((5, 64, 64, 3), np.uint8),
    }
    for name, (shape, dtype) in expected.items():
        arr = store.read(name, sid)
        assert arr.shape == shape and arr.dtype == dtype, (name, arr.shape, arr.dtype)
    pairs = store.read("onset_apex_pairs", sid)
    assert pairs.dtype == np.int32 and pairs.shape == (1, 2)  # the demo's one subset level: the clip itself
    magnified_flow = store.read("flow_onset_apex_magnified", sid)
    assert magnified_flow.shape == (3, 1, 2, 300, 245) and magnified_flow.dtype == np.float16
    mask = store.dataset_array("appearance_mask")
    assert mask.dtype == bool and int(mask.sum()) == round(0.3 * 48 * 64)
    assert sorted(mask.attrs["clips"]) == sorted(store.sample_ids)
    assert store.read("appearance", sid).shape == (int(mask.sum()), 30, 1)


def test_state_frames_are_the_state_indices(full_store):
    store = open_store(full_store)
    sid = store.sample_ids[1]
    idx = store.read("state_index", sid)
    assert np.array_equal(store.read("state_frames", sid), store.read("frames_rgb", sid)[idx])


def test_onset_apex_flow_shows_the_expression(full_store):
    """The demo's motion lives in brows or mouth: the onset->apex flow there beats the background."""
    store = open_store(full_store)
    for sid in store.sample_ids:
        mag = np.hypot(*store.read("flow_onset_apex", sid).astype(np.float32))
        assert mag.max() > 0.5, sid


def test_default_parameters_are_the_papers():
    """Xia's ten alphas, test alpha 8, filter band and five frame subsets; Miao's first->each on the crops;
    Li's std-diff on the magnified clip; Zhu's 30 % mask and T = 30; Choi's lag of fps / 25."""
    params = default_params()
    assert params["flow_first_each"].size == (112, 112) and params["flow_first_each"].compute_at == "crop"
    assert params["flow_onset_apex"].size == (245, 300)  # Xia's "300 x 245" as H x W: their crop's aspect
    assert params["flow_onset_apex_magnified"].size == (245, 300) and params["magnify"].small_size == (48, 64)
    assert params["magnify"].alphas == tuple(float(a) for a in range(5, 15))
    assert params["magnify"].test_alpha == 8.0 and params["magnify"].exaggeration == 1.0
    assert params["magnify"].r1 == 0.4 and params["magnify"].r2 == 0.05
    assert params["apex"].stddiff_on == "magnified"
    assert params["flow_onset_apex_magnified"].subset_levels == (1.0, 0.9, 0.8, 0.7, 0.6)
    assert params["appearance_mask"].keep_fraction == 0.3 and params["appearance"].n_time == 30
    assert params["lfm"].lag_fps_divisor == 25.0


def test_the_build_records_the_parameters_it_used(full_store):
    """The record holds each stage's parameters as given to the build (here the demo's, with the flow backend
    resolved to the one that ran), not the defaults."""
    used = resolve_devices(demo_build_params(), cuda=False)
    stages = open_store(full_store).record.stages
    for name in ("magnify", "flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each", "apex", "lfm"):
        assert stages[name].params == json.loads(json.dumps(dataclasses.asdict(used[name]))), name
    assert stages["magnify"].params["alphas"] == [5.0, 8.0, 11.0] != list(default_params()["magnify"].alphas)


def test_stored_arrays_have_the_sizes_the_feature_table_derives_from_the_record(full_store):
    """Every fixed size of every stored feature follows from the recorded parameters, as the table says."""
    store = open_store(full_store)
    params = store.record.stage_params()
    assert store.dataset_features == ["appearance_mask"] and "appearance_mask" not in store.features
    for name in (*store.features, *store.dataset_features):
        spec = FEATURES[name]
        shape = store.dataset_array(name).shape if spec.scope == "dataset" else store.shape(name, "001_1_1")
        assert dict(zip(spec.dims, shape)) | spec.expected_sizes(params) == dict(zip(spec.dims, shape)), name
        assert store.record.producer(name) == spec.stage, name


def test_every_stage_output_is_a_feature_and_every_feature_has_a_stage():
    outputs = {f for s in STAGES.values() for f in s.outputs}
    assert outputs == {f.name for f in FEATURES.values() if f.stage in STAGES}
    assert all(f.stage in STAGES or f.stage == "appearance_mask" for f in FEATURES.values())


def test_feature_selection_names():
    assert stages_for(["flow"]) == ["landmarks", "align", "magnify", "apex", "flow_onset_apex",
                                    "flow_onset_apex_magnified", "flow_first_each", "flow_consecutive"]
    assert stages_for(["clfm"]) == ["landmarks", "lfm"]
    assert stages_for(["appearance_mask"]) == ["landmarks", "align", "magnify", "appearance"]
    with pytest.raises(KeyError, match="unknown feature"):
        stages_for(["nope"])


def test_config_file_changes_a_stage_and_rejects_typos(tmp_path):
    params = params_from_mapping({"magnify": {"alphas": [5, 10], "test_alpha": 5},
                                  "flow_consecutive": {"size": [32, 32]}})
    assert params["magnify"].alphas == (5, 10) and params["flow_consecutive"].size == (32, 32)
    with pytest.raises(ConfigError, match=r"magnify: MagnifyParams\.test_alpha=8\.0 must be one of alphas"):
        params_from_mapping({"magnify": {"alphas": [5, 10]}})
    with pytest.raises(ConfigError, match=r"magnify\.alpha: unknown parameter; valid keys of magnify: alphas, "
                                          r"test_alpha, r1"):
        params_from_mapping({"magnify": {"alpha": 5}})
    with pytest.raises(ConfigError, match="magnfy: unknown stage"):
        params_from_mapping({"magnfy": {}})


def test_nested_config_is_validated_to_the_leaf():
    params = params_from_mapping({"flow_first_each": {"tvl1": {"lambda_": 0.1}}})
    assert params["flow_first_each"].tvl1.lambda_ == 0.1 and params["flow_first_each"].tvl1.tau == 0.25
    assert params["flow_first_each"].size == (112, 112)  # siblings keep their defaults
    for config, message in [
        ({"flow_first_each": {"tvl1": {"lamda": 0.1}}},
         r"flow_first_each\.tvl1\.lamda: unknown parameter; valid keys of flow_first_each\.tvl1: tau, lambda_"),
        ({"flow_first_each": {"tvl1": {"nscales": "five"}}}, r"flow_first_each\.tvl1\.nscales: expected an integer"),
        ({"flow_first_each": {"tvl1": 3}}, r"flow_first_each\.tvl1: expected a mapping"),
        ({"magnify": {"small_size": [96]}}, r"magnify\.small_size: expected 2 values"),
        ({"lfm": {"normalise_per": "frame"}}, r"lfm\.normalise_per: expected one of 'map', 'clip'"),
        ({"align": {"size": True}}, r"align\.size: expected an integer"),
        ({"flow_first_each": {"tvl1": {"tau": -1}}}, r"flow_first_each\.tvl1: TVL1Params\.tau must be > 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            params_from_mapping(config)


def test_a_config_error_stops_the_build_before_it_starts(tmp_path, small_demo):
    from mepipe.cli.main import cli

    config = tmp_path / "params.yaml"
    config.write_text("flow_first_each:\n  tvl1:\n    lamda: 0.1\n")
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(cli, ["build", "--dataset", "demo", "--root", str(small_demo), "--store", str(store),
                                      "--config", str(config), "--no-progress"])
    assert result.exit_code == 2 and "flow_first_each.tvl1.lamda: unknown parameter" in result.output
    assert "Traceback" not in result.output and not store.exists()


def test_parameters_that_change_no_output_are_not_parameters():
    """Choi's 24-map window and STRCN-A's input size are not stage parameters (they change no stored array)."""
    for stage, name in (("lfm", "sequence_length"), ("appearance", "size")):
        with pytest.raises(ConfigError, match=f"{stage}\\.{name}: unknown parameter"):
            params_from_mapping({stage: {name: 1}})


@pytest.mark.slow
def test_configured_sizes_are_stored_and_models_adapt_or_refuse(full_store, small_demo, tmp_path):
    """Flow at 32x32, STRCN-A clips at 96x72 and Kim frames at 48 px: stored so; STRCN-A adapts, Nag refuses."""
    import shutil

    from mepipe.train.clips import ClipTable
    from mepipe.train.models import get_recipe
    from mepipe.train.recipe import RecipeError

    store = tmp_path / "s.zarr"
    shutil.copytree(full_store, store)
    params = demo_build_params()
    params["flow_consecutive"] = dataclasses.replace(params["flow_consecutive"], size=(32, 32))
    params["magnify"] = dataclasses.replace(params["magnify"], small_size=(96, 72))
    params["kim"] = dataclasses.replace(params["kim"], size=48)
    report = run_build(build_options(small_demo, store, stages=None, params=params))
    # apex reads the magnified clip: a magnify parameter recomputes it and what follows it
    assert report.tasks_run == {"flow_consecutive": 6, "magnify": 6, "apex": 6, "flow_onset_apex": 6,
                                "flow_onset_apex_magnified": 6, "appearance": 6, "kim": 6}
    opened = open_store(store)
    assert opened.read("flow_consecutive", "001_1_1").shape[2:] == (32, 32)
    assert opened.read("magnified_small", "001_1_1").shape[2:4] == (72, 96)
    assert opened.read("appearance_frames", "001_1_1").shape[1:3] == (72, 96)
    assert opened.dataset_array("appearance_mask").shape == (72, 96)
    assert opened.read("frames_rgb", "001_1_1").shape[1:3] == (48, 48)
    clips = ClipTable.of(opened)
    adapt = {m: get_recipe(m).adapt for m in ("strcn-a", "kim2017", "nag2019")}
    assert adapt["strcn-a"](clips.geometry(get_recipe("strcn-a").reads, "strcn-a")) == {"in_chans": 1}
    assert adapt["kim2017"](clips.geometry(get_recipe("kim2017").reads, "kim2017")) == {"input_size": 48}
    with pytest.raises(RecipeError, match=r"nag2019 cannot read this store.*frames_rgb has y = 48, set by kim\.size"
                                          r".*flow_consecutive has y = 32, set by flow_consecutive\.size\[1\]"):
        adapt["nag2019"](clips.geometry(get_recipe("nag2019").reads, "nag2019"))


@pytest.mark.slow
def test_feature_list_is_what_is_readable_after_a_narrower_build(full_store, small_demo, tmp_path):
    """``--features core`` on a full store keeps listing (and recording) the features other builds wrote."""
    import shutil

    store = tmp_path / "s.zarr"
    shutil.copytree(full_store, store)
    before = open_store(store)
    report = run_build(build_options(small_demo, store, stages=("landmarks", "align", "apex"),
                                     params=demo_build_params()))
    assert report.tasks_run == {}
    after = open_store(store)
    assert after.features == before.features and "flow_first_each" in after.features
    assert after.record.stages["flow_first_each"] == before.record.stages["flow_first_each"]
    for feature in (f for f in after.features if FEATURES[f].scope == "clip"):  # listed means readable
        np.testing.assert_array_equal(after.read(feature, "001_1_1"), before.read(feature, "001_1_1"))
    assert after.clip("001_1_1")["flow_first_each"].attrs["cache_key"]


@pytest.mark.slow
def test_changing_alphas_recomputes_only_magnification_and_after(full_store, small_demo, tmp_path):
    import shutil

    store = tmp_path / "s.zarr"
    shutil.copytree(full_store, store)
    params = demo_build_params()
    params["magnify"] = dataclasses.replace(params["magnify"], alphas=(5.0, 8.0))
    report = run_build(build_options(small_demo, store, stages=None, params=params))
    # the apex reads the magnified clip, so it and the stages after it recompute; the other flows do not
    assert report.tasks_run == {"magnify": 6, "apex": 6, "flow_onset_apex": 6, "flow_onset_apex_magnified": 6,
                                "appearance": 6, "kim": 6}
    assert open_store(store).read("magnified_small", "001_1_1").shape[1] == 2
    assert open_store(store).read("flow_onset_apex_magnified", "001_1_1").shape[0] == 2


@pytest.mark.slow
@pytest.mark.parametrize("feature", ["flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each", "lfm",
                                     "magnified", "intensity", "mask"])
def test_show_writes_a_png_creating_its_folder(full_store, tmp_path, feature):
    from mepipe.cli.main import cli

    out = tmp_path / "out" / f"{feature}.png"
    result = CliRunner().invoke(cli, ["show", str(full_store), "001_1_1", "--feature", feature, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
