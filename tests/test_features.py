"""Issue-3 features in a built store: shapes, dtypes, provenance, selection, config, pictures."""
import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import build_options, fast_flow_params
from mepipe.featurestore import open_store
from mepipe.pipeline.build import run_build
from mepipe.pipeline.stagedefs import params_from_mapping, stages_for

N = 24  # frames per demo clip


def test_every_feature_has_its_shape_and_dtype(full_store):
    store = open_store(full_store)
    sid = store.sample_ids[0]
    expected = {
        "flow_onset_apex": ((2, 245, 300), np.float16),
        "flow_first_each": ((N - 1, 2, 112, 112), np.float16),
        "flow_consecutive": ((N - 1, 2, 64, 64), np.float16),
        "magnified": ((N, 1, 128, 128, 1), np.uint8),
        "magnified64x48": ((N, 1, 48, 64, 1), np.uint8),
        "lfm68": ((N - 8, 68, 68), np.uint8),  # lag T = 200 / 25 = 8
        "lfm21": ((N - 8, 21, 21), np.uint8),
        "sfem": ((), np.float64),
        "heatmap": ((48, 64), np.float32),
        "appearance_frames": ((30, 48, 64, 1), np.float16),
        "frames64": ((N, 64, 64, 3), np.uint8),
        "state_frames": ((5, 64, 64, 3), np.uint8),
    }
    for name, (shape, dtype) in expected.items():
        arr = store.read(name, sid)
        assert arr.shape == shape and arr.dtype == dtype, (name, arr.shape, arr.dtype)
    mask = store.dataset_array("appearance_mask")
    assert mask.dtype == bool and int(mask.sum()) == round(0.3 * 48 * 64)
    assert sorted(mask.attrs["clips"]) == sorted(store.sample_ids)
    assert store.read("appearance", sid).shape == (int(mask.sum()), 30, 1)


def test_state_frames_are_the_state_indices(full_store):
    store = open_store(full_store)
    sid = store.sample_ids[1]
    idx = store.read("state_index", sid)
    assert np.array_equal(store.read("state_frames", sid), store.read("frames64", sid)[idx])


def test_onset_apex_flow_shows_the_expression(full_store):
    """The demo's motion lives in brows or mouth: the onset->apex flow there beats the background."""
    store = open_store(full_store)
    for sid in store.sample_ids:
        mag = np.hypot(*store.read("flow_onset_apex", sid).astype(np.float32))
        assert mag.max() > 0.5, sid


def test_parameters_are_recorded_with_paper_defaults(full_store):
    stages = open_store(full_store).attrs["stages"]
    assert stages["flow_first_each"]["params"]["size"] == [112, 112]
    assert stages["flow_onset_apex"]["params"]["size"] == [300, 245]
    assert stages["magnify"]["params"]["alphas"] == [8.0]
    assert stages["magnify"]["params"]["r1"] == 0.4 and stages["magnify"]["params"]["r2"] == 0.05
    assert stages["appearance"]["params"]["keep_fraction"] == 0.3
    assert stages["lfm"]["params"]["lag_fps_divisor"] == 25.0


def test_feature_selection_names():
    assert stages_for(["flow"]) == ["landmarks", "align", "apex", "flow_onset_apex", "flow_first_each",
                                    "flow_consecutive"]
    assert stages_for(["lfm21"]) == ["landmarks", "lfm"]
    with pytest.raises(KeyError, match="unknown feature"):
        stages_for(["nope"])


def test_config_file_changes_a_stage_and_rejects_typos(tmp_path):
    params = params_from_mapping({"magnify": {"alphas": [5, 10]}, "flow_consecutive": {"size": [32, 32]}})
    assert params["magnify"].alphas == (5, 10) and params["flow_consecutive"].size == (32, 32)
    with pytest.raises(KeyError, match="unknown parameters"):
        params_from_mapping({"magnify": {"alpha": 5}})
    with pytest.raises(KeyError, match="unknown stage"):
        params_from_mapping({"magnfy": {}})


def test_changing_alphas_recomputes_only_magnification_and_after(full_store, small_demo, tmp_path):
    import shutil

    store = tmp_path / "s.zarr"
    shutil.copytree(full_store, store)
    params = fast_flow_params()
    params["magnify"] = dataclasses.replace(params["magnify"], alphas=(5.0, 8.0))
    report = run_build(build_options(small_demo, store, stages=None, params=params))
    assert report.tasks_run == {"magnify": 6, "appearance": 6}
    assert open_store(store).read("magnified", "001_1_1").shape[1] == 2


@pytest.mark.parametrize("feature", ["flow_onset_apex", "flow_first_each", "lfm", "magnified", "intensity", "mask"])
def test_show_writes_a_png(full_store, tmp_path, feature):
    from mepipe.cli.main import cli

    out = tmp_path / f"{feature}.png"
    result = CliRunner().invoke(cli, ["show", str(full_store), "001_1_1", "--feature", feature, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
