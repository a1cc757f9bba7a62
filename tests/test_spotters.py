"""The spotters' arithmetic on small hand-checkable curves: thresholds, runs, kinds, the MEGC 2020 baseline's
feature pooling and difference, Nag's per-frame targets, and spotter parameters from the command line."""
from __future__ import annotations

import numpy as np
import pytest

from mepipe.train.spotters import SpotterError, get_spotter, list_spotters, resolve_params
from mepipe.train.spotters.intervals import (Spotted, interval_records, kind_by_duration, moving_mean,
                                             relative_threshold, runs_above, spot_by_duration,
                                             spot_relative_by_duration, spot_runs)
from mepipe.train.spotters.megc2020 import (PAPER_P, feature_difference, motion_curve, pass_k, pooled_feature,
                                            spot_pass, top_share_mean)
from mepipe.train.spotters.nag2019 import frame_targets, video_windows

NAN = np.nan


def test_relative_threshold_is_mean_plus_p_of_the_range_over_finite_values():
    # finite values 0, 1, 2, 5: mean 2, max 5 -> T = 2 + 0.5 * 3 = 3.5; the NaN is left out.
    assert relative_threshold([0, 1, 2, 5, NAN], 0.5) == pytest.approx(3.5)
    assert relative_threshold([0, 1, 2, 5], 0.0) == pytest.approx(2.0)


def test_a_flat_or_empty_curve_has_no_threshold_and_spots_nothing():
    assert relative_threshold([3, 3, 3, NAN], 0.5) is None
    assert relative_threshold([NAN, NAN], 0.5) is None
    assert runs_above([3, 3, 3], None) == []


def test_runs_are_strictly_above_the_threshold_and_a_nan_breaks_them():
    curve = [1, 3, 3.5, 4, 4, NAN, 4, 2, 3.6]
    # 3.5 itself is not above (the baseline's C > T); the NaN at 5 splits 3..4 from 6.
    assert runs_above(curve, 3.5) == [(3, 4), (6, 6), (8, 8)]


def test_kind_by_duration_is_micro_up_to_half_a_second_inclusive():
    assert kind_by_duration(100, 200) == "micro" and kind_by_duration(101, 200) == "macro"
    assert kind_by_duration(15, 30) == "micro" and kind_by_duration(16, 30) == "macro"


def test_spotted_runs_carry_their_peak_and_kind_and_become_frame_numbers():
    curve = np.array([0, 2, 5, 3, 0, 0, 4, 4.5, 0])
    spotted = spot_runs(curve, 1.0, "micro")
    assert spotted == [Spotted(1, 3, 2, 5.0, "micro"), Spotted(6, 7, 7, 4.5, "micro")]
    rows = interval_records(spotted, np.arange(100, 109), "demo-lv", "006_1")
    assert [(r["onset"], r["apex"], r["offset"], r["kind"]) for r in rows] == [(101, 102, 103, "micro"),
                                                                              (106, 107, 107, "micro")]


def test_a_fixed_threshold_gives_each_run_the_kind_of_its_length():
    curve = np.zeros(400)
    curve[10:110] = 0.9    # 100 frames: 0.5 s at 200 fps, micro
    curve[200:301] = 0.8   # 101 frames: macro
    threshold, spotted = spot_by_duration(curve, 0.5, 200)
    assert threshold == 0.5
    assert [(s.first, s.last, s.kind) for s in spotted] == [(10, 109, "micro"), (200, 300, "macro")]


def test_a_relative_threshold_spots_the_runs_above_the_curves_own_mean_plus_t_of_its_range():
    curve = np.zeros(200)
    curve[50:60] = 0.2  # mean 0.01, max 0.2: t = 0.5 gives 0.105, so the ten frames are spotted
    threshold, spotted = spot_relative_by_duration(curve, 0.5, 200)
    assert threshold == pytest.approx(0.105) and [(s.first, s.last) for s in spotted] == [(50, 59)]
    assert spot_relative_by_duration(np.full(10, 0.3), 0.5, 200) == (None, [])  # flat: nothing stands out


def test_the_moving_mean_averages_each_frames_finite_neighbours():
    np.testing.assert_allclose(moving_mean([0, 0, 3, 0, 0], 3), [0, 1, 1, 1, 0])
    # an even window reaches one frame further back; NaN frames are left out of the mean, not counted as 0
    np.testing.assert_allclose(moving_mean([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(moving_mean([NAN, 3, NAN, NAN, NAN], 3), [3, 3, 3, NAN, NAN])
    np.testing.assert_allclose(moving_mean([1, NAN, 5], 1), [1, NAN, 5])


# --- MEGC 2020 baseline -----------------------------------------------------------------------


def test_regions_pool_as_the_mean_of_their_top_third_rounded_half_up():
    values = np.array([[1, 2, 3, 4, 5, 6, 7],         # 7 regions: round(7/3) = 2 -> (7 + 6) / 2
                       [5, 1, 4, 2, 3, NAN, NAN],     # 5 finite: round(5/3) = 2 -> (5 + 4) / 2
                       [NAN, 1, 9, 3, NAN, NAN, NAN],  # 3 finite: 1 -> 9
                       [NAN] * 7], dtype=float)
    pooled = top_share_mean(values)
    np.testing.assert_allclose(pooled[:3], [6.5, 4.5, 9.0])
    assert np.isnan(pooled[3])


def test_the_feature_is_the_smaller_of_the_motion_into_and_out_of_each_frame_pooled_over_regions():
    # M(t) = motion of the flow t -> t + 2 in each of 3 regions (a 2-frame span, k_f = 2).
    m = np.array([[0, 0, 0], [1, 0, 0], [4, 3, 0], [2, 5, 0], [0, 1, 0], [NAN, NAN, NAN], [NAN, NAN, NAN]], float)
    f = pooled_feature(m, flow_k=2)
    # frame 2: min(M(0), M(2)) = (0, 0, 0); frame 3: min(M(1), M(3)) = (1, 0, 0); frame 4: min(M(2), M(4)) =
    # (0, 1, 0); one region of three pooled (round(3/3) = 1): its largest value. Frames 0-1 (no flow into them)
    # and 5-6 (no flow out) have none.
    np.testing.assert_allclose(f[2:5], [0, 1, 1])
    assert np.isnan(f[[0, 1, 5, 6]]).all()


def test_feature_difference_subtracts_the_mean_of_the_neighbours_m_frames_away():
    f = np.array([0, 0, 1, 4, 1, 0, 0], dtype=float)
    c = feature_difference(f, 2)
    # C(2) = 1 - (0 + 1) / 2; C(3) = 4 - (0 + 0) / 2; C(4) = 1 - (1 + 0) / 2; the ends have no neighbour.
    np.testing.assert_allclose(c[2:5], [0.5, 4.0, 0.5])
    assert np.isnan(c[[0, 1, 5, 6]]).all()


def test_each_pass_uses_the_baselines_k_at_the_corpus_frame_rate():
    # cmd.m: SAMM 80 / 260 frames (200 fps), CAS(ME)^2 12 / 39 (30 fps).
    assert (pass_k("micro", 200, 10_000), pass_k("macro", 200, 10_000)) == (80, 260)
    assert (pass_k("micro", 30, 3_000), pass_k("macro", 30, 3_000)) == (12, 39)


def test_k_is_halved_while_the_video_is_shorter_than_six_k():
    # 1000 frames at 200 fps: macro 260 -> 130 (6 * 260 > 1000 >= 6 * 130); micro 80 fits.
    assert pass_k("macro", 200, 1000) == 130 and pass_k("micro", 200, 1000) == 80


def test_a_pass_grows_an_interval_of_its_k_around_each_peak_above_the_threshold():
    curve = np.zeros(2000)
    curve[[300, 330, 900, 1700]] = [1.0, 0.8, 0.6, 0.02]
    threshold, micro = spot_pass(curve, 0.5, "micro", 200)
    # mean 0.00121, max 1 -> T = 0.5006: the peaks at 300 and 900 are above; 330 is above too but within
    # k = 80 frames of the higher one at 300; 1700 is below. Intervals of 81 frames, 40 either side.
    assert threshold == pytest.approx(0.00121 + 0.5 * (1 - 0.00121))
    assert [(s.first, s.peak, s.last, s.kind) for s in micro] == [(260, 300, 340, "micro"), (860, 900, 940, "micro")]
    _, macro = spot_pass(curve, 0.5, "macro", 200)
    assert [(s.first, s.last) for s in macro] == [(170, 430), (770, 1030)]  # k = 260: 130 either side


def test_an_interval_near_an_end_is_clipped_to_the_video():
    curve = np.zeros(600)
    curve[10] = 1.0
    _, spotted = spot_pass(curve, PAPER_P, "micro", 200)
    assert [(s.first, s.last) for s in spotted] == [(0, 50)]


def test_the_motion_curve_is_the_feature_difference_at_the_flow_span():
    rng = np.random.default_rng(0)
    regions = rng.random((300, 7))
    expected = feature_difference(pooled_feature(regions, 20), 19)
    np.testing.assert_array_equal(motion_curve(regions, 20), expected)


# --- Nag 2019 over long videos ----------------------------------------------------------------


def test_nag_targets_rise_to_the_apex_and_fall_to_the_offset_inside_each_interval():
    numbers = np.arange(10, 21)
    intensity, kind = frame_targets(numbers, [{"onset": 12, "apex": 14, "offset": 18, "kind": "micro"}], 200)
    # rise over onset..apex (3 frames): 1/3, 2/3, 1; fall over apex..offset (5 frames): 4/5 .. 1/5.
    expected = [0, 0, 1 / 3, 2 / 3, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0, 0]
    np.testing.assert_allclose(intensity, expected, rtol=1e-6)
    assert kind.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]


def test_nag_targets_without_apex_peak_mid_interval_and_an_unknown_kind_follows_the_length():
    numbers = np.arange(0, 300)
    intensity, kind = frame_targets(numbers, [{"onset": 10, "apex": None, "offset": 130, "kind": ""}], 200)
    assert int(np.argmax(intensity)) == 70 and intensity[70] == 1.0
    assert set(kind[10:131]) == {2}  # 121 frames at 200 fps: macro


def test_windows_cover_every_pair_and_never_cross_a_gap_in_frame_numbers():
    numbers = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22]
    windows = video_windows(numbers, window=4, stride=3)
    # run 0..9 has pairs 0..8: starts 0, 3 and the last full window 5; run 20..22 (positions 10..12): pairs 10, 11.
    assert windows == [(0, 4), (3, 4), (5, 4), (10, 2)]


# --- declarations and parameters --------------------------------------------------------------


def test_both_spotters_are_registered_with_their_papers():
    assert {"baseline", "nag2019"} <= set(list_spotters())
    assert get_spotter("baseline").doi == "10.1109/FG47880.2020.00036"
    assert get_spotter("baseline").params.p == PAPER_P
    with pytest.raises(SpotterError, match="unknown spotter 'nope'; known: baseline, nag2019"):
        get_spotter("nope")


def test_parameters_are_parsed_by_their_type_and_chosen_means_none():
    baseline = get_spotter("baseline")
    assert resolve_params(baseline, [("p", "chosen")]).p is None
    assert resolve_params(baseline, [("p", "0.2")]).p == 0.2
    nag = get_spotter("nag2019")
    params = resolve_params(nag, [("epochs", "4"), ("augment", "none"), ("thresholds", "[0.3, 0.6]")])
    assert (params.epochs, params.augment, params.thresholds) == (4, "none", (0.3, 0.6))


def test_a_parameter_the_spotter_lacks_or_a_bad_value_is_one_sentence():
    with pytest.raises(SpotterError, match="spotter 'baseline' has no parameter 'epochs' .*p, p_grid, share"):
        resolve_params(get_spotter("baseline"), [("epochs", "3")])
    with pytest.raises(SpotterError, match="nag2019 parameter epochs takes an integer, got 'many'"):
        resolve_params(get_spotter("nag2019"), [("epochs", "many")])
    with pytest.raises(SpotterError, match="p must be in"):
        resolve_params(get_spotter("baseline"), [("p", "1.5")])


def test_nag2019_reads_the_flow_its_parameters_name_and_refuses_an_unknown_flow_or_optimizer():
    nag = get_spotter("nag2019")
    assert nag.features(nag.params) == ("frames_rgb", "flow_consecutive")
    apart = resolve_params(nag, [("flow", "apart"), ("optimizer", "adam")])
    assert nag.features(apart) == ("frames_rgb", "flow_apart") and apart.optimizer == "adam"
    curve = resolve_params(nag, [("relative", "true"), ("smooth", "0.185")])
    assert (curve.relative, curve.smooth) == (True, 0.185)
    with pytest.raises(SpotterError, match="flow must be one of consecutive, apart, got 'sideways'"):
        resolve_params(nag, [("flow", "sideways")])
    with pytest.raises(SpotterError, match="optimizer must be one of"):
        resolve_params(nag, [("optimizer", "lbfgs")])
