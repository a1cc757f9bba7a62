"""Apex/onset/intensity/state math (SPEC §2.4) on hand-checkable inputs."""
import numpy as np
import pytest

from mepipe.pipeline.stages import apex


def test_std_diff_by_hand():
    # frame 0 = [0, 0, 0, 0]; frame 1 differs by [2, -2, 2, -2] -> std 2; frame 2 by [1, 1, 1, 1] -> std 0
    clip = np.array([[0, 0, 0, 0], [2, -2, 2, -2], [1, 1, 1, 1]], dtype=float)
    assert apex.std_diff(clip) == pytest.approx([0.0, 2.0, 0.0])


def test_ncc_is_invariant_to_gain_and_offset():
    a = np.array([[1.0, 2.0], [3.0, 7.0]])
    assert apex.ncc(a, 3 * a + 10) == pytest.approx(1.0)
    assert apex.ncc(a, -a) == pytest.approx(-1.0)
    # zero-mean vectors [-1, 1] and [1, 1]-ish: a=[0,2] b=[2,2,...] orthogonal after centring
    assert apex.ncc(np.array([0.0, 2.0, 0.0, 2.0]), np.array([0.0, 0.0, 2.0, 2.0])) == pytest.approx(0.0)


def test_rescale_intensity_by_hand():
    curve = np.array([0.2, 0.6, 1.0, 0.4])
    # (c - min) / (c[ref] - min) with min 0.2 and c[ref] 1.0
    assert apex.rescale_intensity(curve, 2) == pytest.approx([0.0, 0.5, 1.0, 0.25])


def test_onset_offset_threshold_rule():
    intensity = np.array([0.0, 0.05, 0.3, 0.8, 1.0, 0.7, 0.2, 0.05, 0.0])
    assert apex.onset_offset(intensity, 4, 0.1) == (1, 7)
    # nothing below the threshold on one side -> the clip's end
    assert apex.onset_offset(np.array([0.5, 1.0, 0.0]), 1, 0.1) == (0, 2)


def test_kim_state_indices_and_labels():
    idx = apex.state_indices(1, 5, 10)
    assert idx.tolist() == [1, 3, 5, 7, 10]  # (1+5)//2 = 3, (5+10)//2 = 7
    labels = apex.state_labels(12, idx)
    # frame 0 -> onset; 2 ties between 1 and 3 -> earlier state; 9 is nearer 10 than 7
    assert labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]


def test_estimate_finds_a_synthetic_apex():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 32)).astype(np.float32)
    profile = np.sin(np.linspace(0, np.pi, 11)) ** 2  # peak at index 5
    target = np.roll(base, 3, axis=1)
    frames = np.stack([(1 - a) * base + a * target for a in profile]).astype(np.uint8)[..., None]
    r = apex.estimate(frames, params=apex.ApexParams(size=32, stddiff_on="crops"))
    assert r.apex_est == 5
    assert r.intensity[5] == pytest.approx(1.0)
    assert r.onset_est < 5 < r.offset_est
    assert r.states_from == "estimates"
    with_truth = apex.estimate(frames, (1, 5, 9), apex.ApexParams(size=32, stddiff_on="crops"))
    assert with_truth.state_index.tolist() == [1, 3, 5, 7, 9] and with_truth.states_from == "ground truth"


def test_stddiff_runs_on_the_magnified_clip_when_asked():
    # Crops peak at frame 5, the "magnified" clip given at frame 3: std-diff follows the clip it is asked to use;
    # NCC and intensity keep using the crops (their reference apex is the std-diff estimate here).
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (16, 16)).astype(np.float32)
    target = np.roll(base, 2, axis=1)

    def clip(peak):
        profile = np.exp(-0.5 * ((np.arange(9) - peak) / 1.0) ** 2)
        return np.stack([(1 - a) * base + a * target for a in profile]).astype(np.uint8)[..., None]

    crops, magnified = clip(5), clip(3)
    on_magnified = apex.estimate(crops, params=apex.ApexParams(size=16, stddiff_on="magnified"), magnified=magnified)
    on_crops = apex.estimate(crops, params=apex.ApexParams(size=16, stddiff_on="crops"), magnified=magnified)
    assert on_magnified.apex_est == 3 and on_crops.apex_est == 5
    expected = apex.std_diff(magnified[..., 0].astype(np.float64))
    assert on_magnified.stddiff == pytest.approx(expected, rel=1e-5)
    assert on_crops.apex_ncc == on_magnified.apex_ncc  # from the crops either way
    with pytest.raises(ValueError, match="needs the magnified clip"):
        apex.estimate(crops, params=apex.ApexParams(size=16, stddiff_on="magnified"))
    with pytest.raises(ValueError, match="stddiff_on"):
        apex.ApexParams(stddiff_on="flow")
