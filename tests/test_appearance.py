"""STRCN-A appearance stage (SPEC §2.8): heat maps checked against hand computations."""
from __future__ import annotations

import numpy as np
import pytest

from mepipe.pipeline.stages import appearance as A


def test_heatmap_one_changing_pixel():
    clip = np.zeros((3, 2, 2), dtype=np.uint8)
    clip[:, 1, 0] = (10, 7, 250)  # |7-10| + |250-10| = 243 (uint8 would wrap)
    clip[:, 0, 1] = (5, 5, 0)  # 0 + 5
    out = A.heatmap(clip)
    assert out.shape == (2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 5], [243, 0]])


def test_heatmap_sums_colour_channels():
    clip = np.zeros((2, 1, 1, 3))
    clip[1, 0, 0] = (1, -2, 3)
    np.testing.assert_array_equal(A.heatmap(clip), [[6]])


def test_params_defaults_are_xias():
    from mepipe.pipeline.stages.appearance_mask import AppearanceMaskParams

    assert A.AppearanceParams().n_time == 30  # Xia §IV-B: T = 30
    assert AppearanceMaskParams().keep_fraction == 0.30  # the top 30 % of pixels
    with pytest.raises(ValueError, match="keep_fraction"):
        AppearanceMaskParams(keep_fraction=0)
    with pytest.raises(ValueError, match="n_time"):
        A.AppearanceParams(n_time=1)
