"""The demo's build settings: valid parameters, applied to demo corpora only, overridden by the user's config."""
from __future__ import annotations

from mepipe.pipeline.demo.build_config import BUILD_CONFIG, build_config
from mepipe.pipeline.stages import default_params, params_from_mapping


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


def test_build_report_says_what_the_alpha_list_costs():
    from mepipe.pipeline.build import BuildReport

    report = BuildReport(store="s", dataset="demo", started="t", seconds=10.0, n_samples=1, n_ok=1, tasks_run={},
                         tasks_cached={}, stage_seconds={"align": 1.0}, failures=[], quirks=[], exit_code=0,
                         stage_cpu_seconds={"align": 2.0, "magnify": 1.0, "flow_onset_apex_magnified": 5.0,
                                            "flow_first_each": 2.0}, alphas=3)
    assert report.alpha_cost() == {"alphas": 3, "cpu_seconds": 6.0, "share": 0.6}
    assert "alpha list:    3 alphas (magnify.alphas): magnify and magnified flows 6.0 CPU s, 60% of" in report.summary()
    assert BuildReport(**{**report.__dict__, "stage_cpu_seconds": {"align": 2.0}}).alpha_cost() is None


def test_the_long_video_demo_gets_its_own_settings():
    from mepipe.pipeline.demo.build_config import LONG_VIDEO_BUILD_CONFIG

    assert build_config("demo-lv", {}) == LONG_VIDEO_BUILD_CONFIG
    assert "magnify" not in build_config("demo-lv", {})
    params = params_from_mapping(build_config("demo-lv", {}))
    assert (params["flow_consecutive"].tvl1.nscales, params["flow_consecutive"].tvl1.warps) == (3, 2)
    assert build_config("demo-lv", {"flow_consecutive": {"tvl1": {"warps": 3}}})["flow_consecutive"] == {
        "tvl1": {"warps": 3}}
