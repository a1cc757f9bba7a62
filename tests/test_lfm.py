"""Landmark feature maps (SPEC §2.7): values checked against hand computations."""
from __future__ import annotations

import numpy as np
import pytest

from mepipe.pipeline.stages import lfm as L

# Three points whose pairwise distances are Pythagorean triples in each frame:
# frame 0: 3-4-5, frame 1: 6-8-10, frame 2: 5-12-13 (AB, AC, BC).
TRIANGLES = np.array(
    [
        [[0, 0], [3, 0], [0, 4]],
        [[0, 0], [6, 0], [0, 8]],
        [[0, 0], [5, 0], [0, 12]],
    ],
    dtype=np.float64,
)


def _line_face(n_frames: int) -> np.ndarray:
    """68 points, landmark p (1-based) at x = p * (n + 1), y = 0, in frame n.

    Then D_n(i, j) = (n + 1) |p_i - p_j| and, for lag T, LFM_n(i, j) = T |p_i - p_j|.
    """
    p = np.arange(1, 69, dtype=np.float64)
    frames = np.zeros((n_frames, 68, 2))
    for n in range(n_frames):
        frames[n, :, 0] = p * (n + 1)
    return frames


def _sfem_face(scale: float = 1.0) -> np.ndarray:
    """66 points at the origin, landmark 17 at (6, 8) and 34 at (6, 0), scaled.

    Face width |p1 - p17| = 10, height |p28 - p34| = 6; pair distances are 10
    (17 to each of the 66), 6 (34 to each of the 66) and 8 (17 to 34).
    """
    face = np.zeros((68, 2))
    face[16] = (6, 8)
    face[33] = (6, 0)
    return face * scale


def test_clfm_points_exactly_as_listed():
    assert L.CLFM_POINTS == (
        18, 20, 22, 23, 25, 27, 32, 34, 36, 37, 39, 40, 41, 43, 44, 46, 48, 49, 52, 55, 58,
    )
    assert len(L.CLFM_POINTS) == 21


@pytest.mark.parametrize("fps, lag", [(200, 8), (100, 4), (25, 1), (10, 1), (30, 1), (62.5, 3)])
def test_lag_from_fps(fps, lag):
    assert L.lag_from_fps(fps) == lag


def test_lag_rejects_bad_fps():
    with pytest.raises(ValueError, match="fps"):
        L.lag_from_fps(0)


def test_distance_matrices_pythagorean():
    d = L.distance_matrices(TRIANGLES)
    assert d.shape == (3, 3, 3) and d.dtype == np.float32
    np.testing.assert_array_equal(d[0], [[0, 3, 4], [3, 0, 5], [4, 5, 0]])
    np.testing.assert_array_equal(d[1], [[0, 6, 8], [6, 0, 10], [8, 10, 0]])
    np.testing.assert_array_equal(d[2], [[0, 5, 12], [5, 0, 13], [12, 13, 0]])


def test_lfm_lag_one_and_two():
    m1 = L.lfm(TRIANGLES, 1)
    assert m1.shape == (2, 3, 3) and m1.dtype == np.float32
    np.testing.assert_array_equal(m1[0], [[0, 3, 4], [3, 0, 5], [4, 5, 0]])
    np.testing.assert_array_equal(m1[1], [[0, -1, 4], [-1, 0, 3], [4, 3, 0]])
    m2 = L.lfm(TRIANGLES, 2)
    np.testing.assert_array_equal(m2, [[[0, 2, 8], [2, 0, 8], [8, 8, 0]]])


def test_lfm_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(F, N, 2\)"):
        L.lfm(np.zeros((3, 4)), 1)
    with pytest.raises(ValueError, match="at least 3 frames"):
        L.lfm(TRIANGLES[:2], 2)


def test_normalise_exact_values_and_clipping():
    # max 4, min -4: 4 -> 255, 2.25 -> 128*0.75+127 = 223, 1 -> 128*0.5+127 = 191,
    # 0 -> 127, -1 -> -64+127 = 63, -2.25 -> -96+127 = 31, -4 -> -1 clipped to 0.
    raw = np.array([[0, 4, 2.25, 1], [-1, -2.25, -4, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    out = L.normalise_lfm(raw)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:2], [[127, 255, 223, 191], [63, 31, 0, 127]])
    np.testing.assert_array_equal(out[2:], 127)


def test_normalise_rounds_half_up():
    # (63.5 / 128)**2 is exact in binary: 128 * sqrt(v) + 127 = 190.5 -> 191.
    v = (63.5 / 128) ** 2
    out = L.normalise_lfm(np.array([[0.0, v], [1.0, 0.0]]))
    np.testing.assert_array_equal(out, [[127, 191], [255, 127]])


def test_normalise_one_sign_only():
    positive = L.normalise_lfm(np.array([[0, 2], [2, 0]]))
    np.testing.assert_array_equal(positive, [[127, 255], [255, 127]])
    negative = L.normalise_lfm(np.array([[0, -2], [-2, 0]]))
    np.testing.assert_array_equal(negative, [[127, 0], [0, 127]])
    np.testing.assert_array_equal(L.normalise_lfm(np.zeros((2, 2))), 127)


def test_normalise_per_map_versus_per_clip():
    maps = L.lfm(TRIANGLES, 1)  # [[0,3,4],[3,0,5],[4,5,0]] and [[0,-1,4],[-1,0,3],[4,3,0]]
    per_map = L.normalise_lfm(maps, per="map")
    # map 0: max 5; 3 -> 128*sqrt(.6)+127 = 226.15 -> 226, 4 -> 128*sqrt(.8)+127 = 241.49 -> 241.
    np.testing.assert_array_equal(per_map[0], [[127, 226, 241], [226, 127, 255], [241, 255, 127]])
    # map 1: max 4, min -1; 3 -> 128*sqrt(.75)+127 = 237.85 -> 238, -1 -> -1 -> 0.
    np.testing.assert_array_equal(per_map[1], [[127, 0, 255], [0, 127, 238], [255, 238, 127]])
    per_clip = L.normalise_lfm(maps, per="clip")
    # clip max 5, min -1: map 1's 4 -> 241 and 3 -> 226.
    np.testing.assert_array_equal(per_clip[0], per_map[0])
    np.testing.assert_array_equal(per_clip[1], [[127, 0, 241], [0, 127, 226], [241, 226, 127]])


def test_lfm68_shape_and_values():
    out = L.lfm68(_line_face(10), fps=200)
    assert out.shape == (2, 68, 68) and out.dtype == np.uint8
    # LFM = 8 |p_i - p_j|, max 8 * 67: (1, 68) -> 255; (1, 2) -> 128/sqrt(67)+127 = 142.64 -> 143.
    assert out[0, 0, 67] == 255 and out[1, 67, 0] == 255
    assert out[0, 0, 1] == 143
    np.testing.assert_array_equal(np.diagonal(out, axis1=1, axis2=2), 127)


def test_lfm68_static_face_is_all_127():
    still = np.repeat(_line_face(1), 6, axis=0) + np.arange(6)[:, None, None]  # translation only
    out = L.lfm68(still, fps=100)
    assert out.shape == (2, 68, 68)
    np.testing.assert_array_equal(out, 127)


def test_lfm21_uses_clfm_points_in_order():
    out = L.lfm21(_line_face(12), fps=200)
    assert out.shape == (4, 21, 21) and out.dtype == np.uint8
    # LFM = 8 |p_i - p_j| over the CLFM points, max pair (18, 58): 8 * 40.
    m = out[0]
    assert m[0, 20] == 255  # 18 vs 58
    assert m[0, 1] == 156  # 18 vs 20: 128*sqrt(2/40)+127 = 155.62
    assert m[2, 3] == 147  # 22 vs 23: 128*sqrt(1/40)+127 = 147.24
    assert m[9, 15] == 188  # 37 vs 46: 128*sqrt(9/40)+127 = 187.72
    points = np.array(L.CLFM_POINTS)
    expected = np.floor(128 * np.sqrt(np.abs(points[:, None] - points[None, :]) / 40) + 127 + 0.5)
    np.testing.assert_array_equal(out, np.broadcast_to(expected, out.shape))


def test_lfm68_requires_68_points():
    with pytest.raises(ValueError, match="68 points"):
        L.lfm68(TRIANGLES, fps=25)


def test_sfem_one_moving_point():
    # Landmark 49 moves from the origin to (3, 4) at 25 fps (T = 1): its
    # distance to the 65 other origin points grows by 5, to 17 at (6, 8) shrinks
    # by 5 (10 -> 5), to 34 at (6, 0) changes 6 -> 5. Sum |LFM| = 2 (65*5 + 5 + 1) = 662.
    # Face size 10 * 6 = 60, so SFEM = 662 / 60.
    frames = np.stack([_sfem_face(), _sfem_face()])
    frames[1, 48] = (3, 4)
    assert L.sfem(frames, fps=25) == pytest.approx(662 / 60)
    back = np.concatenate([frames, frames[:1]])  # and back again: twice that
    assert L.sfem(back, fps=25) == pytest.approx(2 * 662 / 60)


def test_sfem_denominator_uses_the_later_frame():
    # Whole face scaled by 1, 2, 4. Sum of base pair distances S = 2 (66*10 + 66*6 + 8) = 2128.
    # Map 1: |2-1| S / (2^2 * 60); map 2: |4-2| S / (4^2 * 60). Total 13.3.
    frames = np.stack([_sfem_face(1), _sfem_face(2), _sfem_face(4)])
    assert L.sfem(frames, fps=25) == pytest.approx(2128 / 240 + 2 * 2128 / 960)
    assert L.sfem(frames, fps=25) == pytest.approx(13.3)


def test_sfem_clfm_points_and_a_still_face():
    # CLFM subset holds 34 but not 17: 20 origin points at distance 6 from 34,
    # so S = 2 * 20 * 6 = 240 and SFEM = 240 / 240 for the 1 -> 2 scaling.
    frames = np.stack([_sfem_face(1), _sfem_face(2)])
    assert L.sfem(frames, fps=25, params=L.LFMParams(sfem_points="clfm")) == pytest.approx(1.0)
    still = np.stack([_sfem_face()] * 3)
    assert L.sfem(still, fps=25) == 0.0


def test_params_defaults_and_validation():
    p = L.LFMParams()
    assert (p.lag_fps_divisor, p.normalise_per, p.clfm_points) == (25.0, "map", L.CLFM_POINTS)
    with pytest.raises(ValueError, match="normalise_per"):
        L.LFMParams(normalise_per="frame")
    with pytest.raises(ValueError, match="clfm_points"):
        L.LFMParams(clfm_points=(0, 5))
    assert L.lag_from_fps(200, p.lag_fps_divisor) == 8
