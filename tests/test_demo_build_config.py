"""The demo's build settings: valid parameters, applied to demo corpora only, overridden by the user's config."""
from __future__ import annotations

from mepipe.pipeline.demo.build_config import BUILD_CONFIG, build_config
from mepipe.pipeline.stagedefs import default_params, params_from_mapping


def test_demo_settings_are_valid_parameters_that_cut_the_flow_pairs():
    params = params_from_mapping(build_config("demo", {}))
    defaults = default_params()
    assert len(params["magnify"].alphas) == 3 < len(defaults["magnify"].alphas)
    assert params["magnify"].test_alpha == defaults["magnify"].test_alpha in params["magnify"].alphas
    assert params["flow_onset_apex_magnified"].subset_levels == (1.0,)
    assert params["flow_first_each"].compute_at == "size" != defaults["flow_first_each"].compute_at
    for flow in ("flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each", "flow_consecutive"):
        assert (params[flow].tvl1.nscales, params[flow].tvl1.warps) == (3, 2) < (defaults[flow].tvl1.nscales,
                                                                                defaults[flow].tvl1.warps)


def test_only_demo_corpora_get_them_and_the_users_values_win():
    assert build_config("samm", {}) == {}
    assert build_config("demo-casme2", {}) == BUILD_CONFIG
    mine = build_config("demo-smic", {"magnify": {"test_alpha": 5.0}, "flow_first_each": {"compute_at": "crop"}})
    assert mine["magnify"] == {"alphas": [5.0, 8.0, 11.0], "test_alpha": 5.0}
    assert mine["flow_first_each"]["compute_at"] == "crop"
    assert BUILD_CONFIG["flow_first_each"]["compute_at"] == "size"  # not changed by the merge
