"""Read-time views of stored features (mepipe.featurestore.views), checked against hand computations."""
from __future__ import annotations

import numpy as np
import pytest

from mepipe.featurestore import views as V
from mepipe.pipeline.stages.appearance import heatmap

# --- flow colour coding (Miao §III-C) --------------------------------------------------------

flow_to_rgb = V.flow_to_rgb


def _field(u: float, v: float) -> np.ndarray:
    return np.array([[[u]], [[v]]], dtype=np.float32)  # (2, 1, 1)


# HSI (Miao §III-C), worked out with Gonzalez & Woods' sector formulas at S = 1 and intensity I = magnitude
# (max_magnitude 1): in the sector of the angle H' from its first primary, missing = 0,
# first = I (1 + cos H' / cos(60 - H')), second = 3 I - first; channels average I before clipping.
@pytest.mark.parametrize("u, v, rgb", [
    (0.2, 0, (153, 0, 0)),            # right, H 0, I 0.2: R = 0.2 * (1 + 1 / 0.5) = 0.6
    (0.2, 0.34641, (153, 153, 0)),    # H 60, I 0.4: R = 0.4 * (1 + 0.5 / 1) = 0.6, G = 1.2 - 0.6
    (0.28284, 0.28284, (177, 129, 0)),  # H 45, I 0.4: R = 0.4 (1 + cos 45 / cos 15) = 0.69282, G = 0.50718
    (0, 0.4, (102, 204, 0)),          # down, H 90: R = 0.4 (1 + 0) = 0.4, G = 0.8
    (-0.4, 0, (0, 153, 153)),         # left, H 180: sector green-blue, H' 60: G = 0.6, B = 0.6
    (0, -0.4, (102, 0, 204)),         # up, H 270: sector blue-red, H' 30: B = 0.4 * 2 = 0.8, R = 0.4
    (1, 0, (255, 0, 0)),              # right at full intensity: R = 3 clips to 255
    (0, 0, (0, 0, 0)),                # no motion: black
])
def test_flow_to_rgb_is_hsi_by_hand(u, v, rgb):
    out = flow_to_rgb(_field(u, v), max_magnitude=1.0)
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8
    np.testing.assert_allclose(out[0, 0], rgb, atol=1)


def test_hsi_to_rgb_grey_and_sectors():
    # S = 0: grey of the intensity whatever the hue.
    np.testing.assert_allclose(V.hsi_to_rgb(np.array([0.0, 200.0]), np.zeros(2), np.full(2, 0.3)), 0.3, atol=1e-6)
    # S = 1/2, H 0, I 0.3: B = 0.15, R = 0.3 (1 + 0.5 * 1 / 0.5) = 0.6, G = 0.9 - 0.75 = 0.15.
    np.testing.assert_allclose(V.hsi_to_rgb(np.array(0.0), np.array(0.5), np.array(0.3)), [0.6, 0.15, 0.15],
                               atol=1e-6)
    # Hues 360 apart are one hue.
    np.testing.assert_array_equal(V.hsi_to_rgb(np.array(-90.0), np.array(1.0), np.array(0.2)),
                                  V.hsi_to_rgb(np.array(270.0), np.array(1.0), np.array(0.2)))


def test_hsi_coding_is_about_twice_as_bright_as_hsv():
    # 360 directions at magnitude 0.3 of the maximum (no HSI channel clips: the largest, 3 * 0.3, stays below 1):
    # HSI channels average I = 0.3, HSV channels V/2 = 0.15 over the hues.
    angle = np.radians(np.arange(360) + 0.5)
    field = np.stack([np.cos(angle), np.sin(angle)])[:, None, :] * 0.3
    hsi = flow_to_rgb(field, max_magnitude=1.0).astype(float)
    hsv = flow_to_rgb(field, max_magnitude=1.0, coding="hsv").astype(float)
    assert hsi.mean() == pytest.approx(0.3 * 255, abs=0.5) and hsv.mean() == pytest.approx(0.15 * 255, abs=0.5)
    assert hsi.mean() / hsv.mean() == pytest.approx(2.0, abs=0.01)


# HSV, the coding before issue 25 (coding="hsv"): value = magnitude, OpenCV's HSV2RGB.
@pytest.mark.parametrize("u, v, rgb", [
    (1, 0, (255, 0, 0)),        # right: hue 0, red
    (-1, 0, (0, 255, 255)),     # left: hue 180, cyan
    (0, 1, (128, 255, 0)),      # down (image y): hue 90, chartreuse; 255 * 0.5 = 127.5
    (0, -1, (128, 0, 255)),     # up: hue 270, violet
    (1, 1, (255, 191, 0)),      # down-right: hue 45, G = 255 * 0.75 = 191.25
    (0, 0, (0, 0, 0)),          # no motion: black
])
def test_flow_to_rgb_hsv_by_hand(u, v, rgb):
    out = flow_to_rgb(_field(u, v), coding="hsv")
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8
    np.testing.assert_allclose(out[0, 0], rgb, atol=1)


def test_flow_to_rgb_magnitude_scaling_and_stacks():
    # One field pointing right with magnitudes 1 and 2 (1 x 2 pixels), coded HSV (red = value).
    field = np.array([[[1.0, 2.0]], [[0.0, 0.0]]], dtype=np.float32)
    red = flow_to_rgb(field, coding="hsv")[0, :, 0]
    np.testing.assert_allclose(red, [128, 255], atol=1)  # per-field max: 1/2 and 2/2
    np.testing.assert_allclose(flow_to_rgb(field, max_magnitude=4.0, coding="hsv")[0, :, 0], [64, 128], atol=1)
    np.testing.assert_allclose(flow_to_rgb(field, max_magnitude=1.0, coding="hsv")[0, :, 0], [255, 255], atol=1)
    # HSI red is 3 I: I = 1/8 and 2/8 of max_magnitude 8 -> 0.375, 0.75 (96, 191).
    np.testing.assert_allclose(flow_to_rgb(field, max_magnitude=8.0)[0, :, 0], [96, 191], atol=1)
    # A stack is normalised field by field: (2, 2, 1, 2) -> (2, 1, 2, 3).
    stack = flow_to_rgb(np.stack([field, 4 * field]), coding="hsv")
    assert stack.shape == (2, 1, 2, 3)
    np.testing.assert_allclose(stack[1, 0, :, 0], [128, 255], atol=1)
    assert np.all(stack[..., 1:] == 0)
    # Leading batch axes of any depth.
    assert flow_to_rgb(np.zeros((3, 2, 2, 5, 4), np.float32)).shape == (3, 2, 5, 4, 3)


def test_flow_to_rgb_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        flow_to_rgb(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="max_magnitude"):
        flow_to_rgb(_field(1, 0), max_magnitude=0.0)
    with pytest.raises(ValueError, match="coding must be one of hsi, hsv"):
        flow_to_rgb(_field(1, 0), coding="hls")


def test_code_flow_is_channels_first_in_unit_range():
    coded = V.code_flow(_field(0, -2))  # up at full intensity: B = 2 I clips to 1, R = I = 1
    assert coded.shape == (3, 1, 1) and coded.dtype == np.float32
    np.testing.assert_allclose(coded[:, 0, 0], [1.0, 0.0, 1.0], atol=1 / 255)
    np.testing.assert_allclose(V.code_flow(_field(0, -2), coding="hsv")[:, 0, 0], np.array([128, 0, 255]) / 255,
                               atol=1 / 255)


# --- which frames a flow field joins ---------------------------------------------------------


def test_field_frames_of_each_flow_feature():
    assert V.field_frames("flow_first_each", 4) == (0, 5)
    assert V.field_frames("flow_consecutive", 4) == (4, 5)
    with pytest.raises(KeyError, match="per-pair"):
        V.field_frames("flow_onset_apex", 0)


def test_apex_field_is_the_field_ending_at_the_apex_frame():
    numbers = [100, 101, 102, 103, 104]  # 4 fields; field t ends at frame t + 1
    assert V.apex_field(numbers, [103, None], 4) == 2
    assert V.apex_field(numbers, [None, 101], 4) == 0  # the estimate when the sheet has none
    assert V.apex_field(numbers, [999, 104], 4) == 3  # a sheet apex off the clip's frames falls through
    assert V.apex_field(numbers, [100], 4) == 0  # the first frame ends no field: field 0
    assert V.apex_field(numbers, [None, None], 4) == 1  # no apex: the middle field


def test_magnified_field_picks_the_alpha_and_the_pair_of_the_subset():
    # fields[a, p] filled with 10 a + p: alpha 1, subset 2 -> pair 1 -> 11; subset 0 is the clip's own pair 0
    fields = (10 * np.arange(3)[:, None] + np.arange(2)[None, :])[:, :, None, None, None] * np.ones((1, 1, 2, 4, 5))
    subset_pair = np.array([0, 0, 1])
    assert V.magnified_field(fields, subset_pair, 1, 2).shape == (2, 4, 5)
    assert (V.magnified_field(fields, subset_pair, 1, 2) == 11).all()
    assert (V.magnified_field(fields, subset_pair, 2) == 20).all()
    with pytest.raises(IndexError, match="alpha index 3"):
        V.magnified_field(fields, subset_pair, 3)
    with pytest.raises(ValueError, match="names pair 5"):
        V.magnified_field(fields, np.array([5]), 0)


def test_mask_keeps_exactly_top_thirty_percent():
    # 4 x 5 = 20 pixels, 30% -> 6. Sum of the two maps is 0..19 row-major,
    # so the top 6 are flat indices 14..19: (2, 4) and all of row 3.
    first = np.arange(20, dtype=float).reshape(4, 5)
    second = np.zeros((4, 5))
    second[0, 0] = 1.0
    first[0, 0] = -1.0
    mask = V.build_mask(np.stack([first, second]), 0.30)
    expected = np.zeros((4, 5), dtype=bool)
    expected[2, 4] = True
    expected[3, :] = True
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_mask_ties_go_to_earlier_row_major_pixels():
    mask = V.build_mask(np.ones((1, 4, 5)), 0.30)
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, :] = True
    expected[1, 0] = True
    np.testing.assert_array_equal(mask, expected)


def test_mask_count_rounds_half_up_and_default_size():
    assert V.build_mask(np.arange(10.0).reshape(1, 2, 5), 0.25).sum() == 3  # 2.5 -> 3
    assert V.build_mask(np.random.default_rng(0).random((2, 48, 64)), 0.30).sum() == 922  # 921.6


def test_time_normalise_linear_ramp_exact():
    ramp = np.arange(4, dtype=np.float64)[:, None, None] * 10 + np.array([[0, 1], [2, 3]])
    out = V.time_normalise(ramp, 7)  # samples t = 0, 0.5, ..., 3
    assert out.shape == (7, 2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0], [0, 5, 10, 15, 20, 25, 30])
    np.testing.assert_array_equal(out[:, 1, 1], [3, 8, 13, 18, 23, 28, 33])


def test_time_normalise_endpoints_and_channels():
    t = np.arange(17, dtype=np.float64)
    clip = (2.0 * t + 1.0)[:, None, None, None] * np.ones((1, 3, 2, 3))
    out = V.time_normalise(clip, 30)
    assert out.shape == (30, 3, 2, 3)
    expected = 2.0 * (np.arange(30) * 16 / 29) + 1.0
    np.testing.assert_allclose(out[:, 2, 1, 0], expected, rtol=1e-6)
    assert out[0, 0, 0, 0] == 1.0 and out[-1, 0, 0, 0] == 33.0
    # 59 frames -> 30 samples exactly every second frame.
    long = np.arange(59, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), dtype=np.uint8)
    np.testing.assert_array_equal(V.time_normalise(long, 30)[:, 0, 0], np.arange(0, 59, 2))


def test_time_normalise_single_frame_repeats():
    out = V.time_normalise(np.full((1, 2, 2), 9, dtype=np.uint8), 5)
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
    out = V.appearance_matrix(_coded_clip(), MASK, 3)
    assert out.shape == (3, 3, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], [[1, 51, 101], [10, 60, 110], [12, 62, 112]])


def test_appearance_matrix_colour():
    out = V.appearance_matrix(_coded_clip(2), MASK, 2)
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[:, :, 0], [[1, 101], [10, 110], [12, 112]])
    np.testing.assert_array_equal(out[:, :, 1], [[1001, 1101], [1010, 1110], [1012, 1112]])


def test_appearance_matrix_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="mask"):
        V.appearance_matrix(_coded_clip(), np.ones((3, 2), dtype=bool), 2)
    with pytest.raises(ValueError, match="mask"):
        V.appearance_matrix(_coded_clip(), MASK.astype(int), 2)


def _three_clips():
    """Clips whose heat is at (0,0), (0,1) and, largest, (1,1) of a 2 x 2 frame."""
    clips, maps = [], []
    for (y, x), amount in [((0, 0), 1.0), ((0, 1), 2.0), ((1, 1), 50.0)]:
        clip = np.zeros((4, 2, 2))
        clip[1:, y, x] = amount
        clips.append(clip)
        maps.append(heatmap(clip))
    return clips, maps


def test_mask_from_training_subset_ignores_other_clips():
    clips, maps = _three_clips()
    mask = V.build_mask(np.stack(maps[:2]), 0.5)  # a fold whose training side is clips 0 and 1
    np.testing.assert_array_equal(mask, [[True, True], [False, False]])
    matrices = np.stack([V.appearance_matrix(c, mask, 4) for c in clips])
    assert matrices.shape == (3, 2, 4, 1) and matrices.dtype == np.float32
    np.testing.assert_array_equal(matrices[1, :, :, 0], [[0, 0, 0, 0], [0, 2, 2, 2]])
    np.testing.assert_array_equal(matrices[2], 0)  # clip 2's motion lies outside the mask
    np.testing.assert_array_equal(V.build_mask(np.stack(maps), 0.5), [[False, True], [False, True]])


# --- Choi's middle window --------------------------------------------------------------------


def test_middle_sequence_longer():
    maps = np.arange(30)[:, None, None] * np.ones((1, 2, 2), dtype=np.uint8)
    out = V.middle_sequence(maps, 24)
    assert out.shape == (24, 2, 2)
    np.testing.assert_array_equal(out[:, 0, 0], np.arange(3, 27))
    np.testing.assert_array_equal(V.middle_sequence(np.arange(25), 24), np.arange(0, 24))
    np.testing.assert_array_equal(V.middle_sequence(np.arange(24), 24), np.arange(24))


def test_middle_sequence_shorter_repeat_pads_both_ends():
    out = V.middle_sequence(np.arange(5), 24)
    np.testing.assert_array_equal(out, [0] * 10 + [1, 2, 3] + [4] * 11)
    np.testing.assert_array_equal(V.middle_sequence(np.array([7]), 3), [7, 7, 7])
    with pytest.raises(ValueError, match="F >= 1"):
        V.middle_sequence(np.zeros((0, 2, 2)), 24)


def test_map_window_is_the_distinct_maps_of_the_middle_window():
    # 16 maps: shorter than 24, so the window repeats edge maps and holds all 16 once.
    assert V.map_window(16, 24).tolist() == list(range(16))
    # 30 maps: drop (30 - 24) // 2 = 3 at the start, keep 3..26.
    assert V.map_window(30, 24).tolist() == list(range(3, 27))


# --- Nag's windows and spotting ground truth -------------------------------------------------


def test_step_windows_cover_every_step():
    # 30 steps, windows of 14 every 7: starts 0, 7, 14 and the last full window 16.
    assert V.step_windows(30, 14, 7) == [(0, 14), (7, 14), (14, 14), (16, 14)]
    assert V.step_windows(10, 14, 7) == [(0, 10)]  # a short clip gives one shorter window
    assert V.step_windows(10, None) == [(0, 10)]  # the whole clip
    with pytest.raises(ValueError, match="stride"):
        V.step_windows(10, 4, 0)


def test_onset_offset_span_by_frame_number():
    span = V.onset_offset_span([7, 8, 9, 10, 11], onset=8, offset=10)
    np.testing.assert_array_equal(span, [0, 1, 1, 1, 0])
    assert not V.onset_offset_span([7, 8], None, 10).any()
