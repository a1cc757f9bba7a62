"""The flow from t to t + k (flow_apart): its pairs, k in frames, a known shift, and windows with their overlap."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_roi_motion import moving_texture

from mepipe.featurestore.features import frames_apart
from mepipe.pipeline.stages.flow_apart import FlowApartParams, apart_pairs, flow_apart

PARAMS = FlowApartParams(backend="opencv", tvl1=dataclasses.replace(FlowApartParams().tvl1, nscales=3, warps=2,
                                                                     epsilon=0.05))


def test_pairs_are_k_frames_apart_and_none_past_the_end_or_across_a_gap():
    # frame 4 is missing: from frame 2 (position 2) the frame 2 later is not in the video, nor from 3
    assert apart_pairs([0, 1, 2, 3, 5, 6], 4, 2) == [(0, 2), (1, 3), None, None]
    assert apart_pairs(range(5), 5, 3) == [(0, 3), (1, 4), None, None, None]


@pytest.mark.parametrize("k, k_seconds, fps, frames", [(0, 0.185, 200.0, 37), (0, 0.185, 30.0, 6),
                                                        (12, 0.185, 30.0, 12), (0, 0.001, 30.0, 1)])
def test_k_in_frames_is_k_or_k_seconds_at_the_rate_and_at_least_one(k, k_seconds, fps, frames):
    assert frames_apart(k, k_seconds, fps) == frames
    assert dataclasses.replace(PARAMS, k=k, k_seconds=k_seconds).frames_apart(fps) == frames


@pytest.mark.parametrize("backend", ["opencv", pytest.param("torch", marks=pytest.mark.slow)])
def test_a_known_shift_reads_as_its_displacement_and_the_last_k_fields_are_nan(backend):
    # the texture moves 0.5 px left per frame: from t to t + 4 every pixel moves 2 px left
    fields = flow_apart(moving_texture(10), 4, dataclasses.replace(PARAMS, backend=backend))
    assert fields.shape == (10, 2, 64, 64) and np.isnan(fields[6:]).all()
    inner = fields[:6, :, 8:-8, 8:-8]
    assert np.allclose(inner[:, 0].mean(axis=(1, 2)), -2.0, atol=0.2)
    assert np.allclose(inner[:, 1].mean(axis=(1, 2)), 0.0, atol=0.2)


def test_windows_with_their_overlap_give_the_whole_videos_fields():
    crops, k = moving_texture(20), 3
    whole = flow_apart(crops, k, PARAMS)
    parts = [flow_apart(crops[a:b + k], k, PARAMS)[:b - a] for a, b in ((0, 8), (8, 16), (16, 20))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
