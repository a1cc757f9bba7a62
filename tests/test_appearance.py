"""STRCN-A appearance matrices (SPEC §2.8): values checked against hand computations."""
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


def test_mask_keeps_exactly_top_thirty_percent():
    # 4 x 5 = 20 pixels, 30% -> 6. Sum of the two maps is 0..19 row-major,
    # so the top 6 are flat indices 14..19: (2, 4) and all of row 3.
    first = np.arange(20, dtype=float).reshape(4, 5)
    second = np.zeros((4, 5))
    second[0, 0] = 1.0
    first[0, 0] = -1.0
    mask = A.build_mask(np.stack([first, second]), 0.30)
    expected = np.zeros((4, 5), dtype=bool)
    expected[2, 4] = True
    expected[3, :] = True
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_mask_ties_go_to_earlier_row_major_pixels():
    mask = A.build_mask(np.ones((1, 4, 5)), 0.30)
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, :] = True
    expected[1, 0] = True
    np.testing.assert_array_equal(mask, expected)


def test_mask_count_rounds_half_up_and_default_size():
    assert A.build_mask(np.arange(10.0).reshape(1, 2, 5), 0.25).sum() == 3  # 2.5 -> 3
    assert A.build_mask(np.random.default_rng(0).random((2, 48, 64)), 0.30).sum() == 922  # 921.6


def test_time_normalise_linear_ramp_exact():
    ramp = np.arange(4, dtype=np.float64)[:, None, None] * 10 + np.array([[0, 1], [2, 3]])
    out = A.time_normalise(ramp, 7)  # samples t = 0, 0.5, ..., 3
    assert out.shape == (7, 2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0], [0, 5, 10, 15, 20, 25, 30])
    np.testing.assert_array_equal(out[:, 1, 1], [3, 8, 13, 18, 23, 28, 33])


def test_time_normalise_endpoints_and_channels():
    t = np.arange(17, dtype=np.float64)
    clip = (2.0 * t + 1.0)[:, None, None, None] * np.ones((1, 3, 2, 3))
    out = A.time_normalise(clip, 30)
    assert out.shape == (30, 3, 2, 3)
    expected = 2.0 * (np.arange(30) * 16 / 29) + 1.0
    np.testing.assert_allclose(out[:, 2, 1, 0], expected, rtol=1e-6)
    assert out[0, 0, 0, 0] == 1.0 and out[-1, 0, 0, 0] == 33.0
    # 59 frames -> 30 samples exactly every second frame.
    long = np.arange(59, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), dtype=np.uint8)
    np.testing.assert_array_equal(A.time_normalise(long, 30)[:, 0, 0], np.arange(0, 59, 2))


def test_time_normalise_single_frame_repeats():
    out = A.time_normalise(np.full((1, 2, 2), 9, dtype=np.uint8), 5)
    np.testing.assert_array_equal(out, 9)
    assert out.shape == (5, 2, 2)


def _coded_clip(channels: int | None = None) -> np.ndarray:
    """2 frames of 2 x 3 pixels with value 100 t + 10 y + x (+ 1000 c)."""
    t, y, x = np.meshgrid(np.arange(2), np.arange(2), np.arange(3), indexing="ij")
    grey = 100.0 * t + 10 * y + x
    if channels is None:
        return grey
    return np.stack([grey + 1000 * c for c in range(channels)], axis=-1)


MASK = np.array([[False, True, False], [True, False, True]])  # pixels (0,1), (1,0), (1,2)


def test_appearance_matrix_order_and_shape():
    out = A.appearance_matrix(_coded_clip(), MASK, A.AppearanceParams(n_time=3))
    assert out.shape == (3, 3, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], [[1, 51, 101], [10, 60, 110], [12, 62, 112]])


def test_appearance_matrix_colour():
    out = A.appearance_matrix(_coded_clip(2), MASK, A.AppearanceParams(n_time=2))
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[:, :, 0], [[1, 101], [10, 110], [12, 112]])
    np.testing.assert_array_equal(out[:, :, 1], [[1001, 1101], [1010, 1110], [1012, 1112]])


def test_appearance_matrix_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="mask"):
        A.appearance_matrix(_coded_clip(), np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        A.appearance_matrix(_coded_clip(), MASK.astype(int))


def _three_clips():
    """Clips whose heat is at (0,0), (0,1) and, largest, (1,1) of a 2 x 2 frame."""
    clips, maps = [], []
    for (y, x), amount in [((0, 0), 1.0), ((0, 1), 2.0), ((1, 1), 50.0)]:
        clip = np.zeros((4, 2, 2))
        clip[1:, y, x] = amount
        clips.append(clip)
        maps.append(A.heatmap(clip))
    return clips, maps


def test_mask_from_training_subset_ignores_other_clips():
    clips, maps = _three_clips()
    params = A.AppearanceParams(keep_fraction=0.5, n_time=4)
    mask, matrices = A.appearance_matrices(clips, maps, train_index=[0, 1], params=params)
    np.testing.assert_array_equal(mask, [[True, True], [False, False]])
    assert matrices.shape == (3, 2, 4, 1) and matrices.dtype == np.float32
    np.testing.assert_array_equal(matrices[1, :, :, 0], [[0, 0, 0, 0], [0, 2, 2, 2]])
    np.testing.assert_array_equal(matrices[2], 0)  # clip 2's motion lies outside the mask
    bool_mask, _ = A.appearance_matrices(clips, maps, np.array([True, True, False]), params)
    np.testing.assert_array_equal(bool_mask, mask)
    all_mask, _ = A.appearance_matrices(clips, maps, None, params)
    np.testing.assert_array_equal(all_mask, [[False, True], [False, True]])


def test_appearance_matrices_rejects_bad_input():
    clips, maps = _three_clips()
    with pytest.raises(ValueError, match="3 clips but 2 heat maps"):
        A.appearance_matrices(clips, maps[:2])
    with pytest.raises(ValueError, match="selects no clips"):
        A.appearance_matrices(clips, maps, train_index=[])


def test_params_defaults():
    p = A.AppearanceParams()
    assert (p.keep_fraction, p.n_time, p.size) == (0.30, 30, (64, 48))
    assert A.VERSION == "1"
    with pytest.raises(ValueError, match="keep_fraction"):
        A.AppearanceParams(keep_fraction=0)
