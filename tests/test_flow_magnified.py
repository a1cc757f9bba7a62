"""STRCN-G's magnified onset->apex flows (Xia §III-C2, §III-E): the stage against its definition, by hand."""
import dataclasses

import cv2
import numpy as np
import pytest

from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.stages import STAGES, default_params
from mepipe.pipeline.stages.flow import TVL1Params, tvl1_flow
from mepipe.pipeline.stages.flow_onset_apex_magnified import MagnifiedOnsetApexFlowParams
from mepipe.pipeline.stages.magnify import MagnifyParams, magnify
from mepipe.pipeline.stages.subsets import draw_subsets, subset_pairs, subset_seed

cv2.setNumThreads(1)

T, ONSET, APEX = 12, 2, 7


def _clip():
    """(T, 64, 64, 1) uint8: a smooth texture whose middle band moves right up to the apex and back."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (64, 64)).astype(np.float32), (0, 0), 3)
    texture = (texture - texture.min()) / np.ptp(texture) * 200 + 20
    profile = np.interp(np.arange(T), [0, ONSET, APEX, T - 1], [0, 0, 1.0, 0.2])
    frames = []
    for a in profile:
        shifted = texture.copy()
        m = np.float32([[1, 0, a], [0, 1, 0]])
        shifted[20:44] = cv2.warpAffine(texture, m, (64, 64), borderMode=cv2.BORDER_REFLECT)[20:44]
        frames.append(shifted)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)[..., None]


def _run(params, magnification):
    crops = _clip()
    state_index = np.array([ONSET, (ONSET + APEX) // 2, APEX, 9, 11], dtype=np.int32)
    stddiff = np.abs(np.arange(T) - APEX).max() - np.abs(np.arange(T) - APEX).astype(np.float32)
    ctx = ClipContext("001_1_1", (), tuple(range(100, 100 + T)), None, 200.0, (None, None, None))
    every = {**default_params(), "magnify": magnification, "flow_onset_apex_magnified": params}
    inputs = {"crops": crops, "state_index": state_index, "stddiff": stddiff}
    return STAGES["flow_onset_apex_magnified"].run(ctx, inputs, every), crops, stddiff


def test_each_field_is_the_flow_between_the_magnified_frames_of_its_pair():
    fast = TVL1Params(nscales=3, warps=2, epsilon=0.05)
    params = MagnifiedOnsetApexFlowParams(size=(48, 40), tvl1=fast, subset_levels=(1.0, 0.6), backend="opencv")
    magnification = MagnifyParams(alphas=(5.0, 8.0, 14.0))
    out, crops, stddiff = _run(params, magnification)
    fields, pairs = out.arrays["flow_onset_apex_magnified"], out.arrays["onset_apex_pairs"]
    keep = draw_subsets(T, (1.0, 0.6), subset_seed("001_1_1", 0))
    expected_pairs, expected_of = subset_pairs(keep, ONSET, APEX, stddiff)
    assert np.array_equal(out.arrays["subset_frames"], keep)
    assert pairs.tolist() == expected_pairs.tolist() and pairs[0].tolist() == [ONSET, APEX]
    assert out.arrays["subset_pair"].tolist() == expected_of.tolist() and expected_of[0] == 0
    assert fields.shape == (3, len(pairs), 2, 40, 48)
    for a, alpha in enumerate(magnification.alphas):
        clip = magnify(crops[..., 0], alpha, magnification)  # magnified at the crops' resolution, then resized
        for k, (i, j) in enumerate(pairs):
            small = [cv2.resize(clip[f], (48, 40), interpolation=cv2.INTER_AREA) for f in (i, j)]
            np.testing.assert_allclose(fields[a, k], tvl1_flow(*small, fast), atol=1e-5)
    # the motion grows with alpha: the magnification really reached the flow
    speed = np.abs(fields[:, 0, 0, 14:26, 8:40]).mean(axis=(1, 2))
    assert speed[0] < speed[1] < speed[2]


def test_one_level_stores_only_the_clips_own_pair():
    params = MagnifiedOnsetApexFlowParams(size=(48, 40), tvl1=TVL1Params(nscales=2, warps=1, epsilon=0.1),
                                          subset_levels=(1.0,), backend="opencv")
    out, _, _ = _run(params, MagnifyParams(alphas=(8.0,)))
    assert out.arrays["onset_apex_pairs"].tolist() == [[ONSET, APEX]]
    assert out.arrays["flow_onset_apex_magnified"].shape == (1, 1, 2, 40, 48)
    assert out.arrays["subset_frames"].all() and out.arrays["subset_pair"].tolist() == [0]


def test_bad_subset_levels_raise():
    with pytest.raises(ValueError, match="subset_levels"):
        MagnifiedOnsetApexFlowParams(subset_levels=(0.0,))
    assert dataclasses.replace(MagnifiedOnsetApexFlowParams(), subset_levels=[1, 0.5]).subset_levels == (1.0, 0.5)
