"""The spotting features (roi_motion): optical strain, region boxes, the nose bridge's motion, k, and windows.

Each formula is checked on a field whose answer is worked out by hand.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mepipe.featurestore.features import ROI_REGIONS
from mepipe.pipeline.stages.roi_motion import (NOSE_BRIDGE, REGION_POINTS, RoiMotionParams, box_of, frame_features,
                                               optical_strain, region_means, roi_motion)

PARAMS = RoiMotionParams(backend="opencv", size=(32, 32), tvl1=dataclasses.replace(RoiMotionParams().tvl1, nscales=3,
                                                                                      warps=2, epsilon=0.05))


def test_every_region_has_its_landmarks():
    assert set(REGION_POINTS) == set(ROI_REGIONS)
    assert all(1 <= p <= 68 for points in REGION_POINTS.values() for p in points)


def test_strain_of_a_linear_field_is_the_same_everywhere():
    # u = 0.1 x + 0.3 y, v = 0.1 x + 0.2 y: u_x = 0.1, v_y = 0.2, u_y + v_x = 0.4, so
    # strain = sqrt(0.01 + 0.04 + 0.16 / 2) = sqrt(0.13) at every pixel, the last row and column included
    y, x = np.mgrid[0:6, 0:7].astype(np.float64)
    flow = np.stack([0.1 * x + 0.3 * y, 0.1 * x + 0.2 * y])
    np.testing.assert_allclose(optical_strain(flow), np.sqrt(0.13))


def test_strain_of_a_shift_is_zero_and_of_a_step_is_where_the_step_is():
    flow = np.zeros((2, 4, 5))
    flow[0] = 3.0
    assert not optical_strain(flow).any()
    flow[0, :, 3:] = 4.0  # u jumps by 1 between columns 2 and 3: u_x = 1 at column 2 only
    strain = optical_strain(flow)
    np.testing.assert_allclose(strain[:, 2], 1.0)
    np.testing.assert_allclose(strain[:, [0, 1, 3, 4]], 0.0)


def test_a_box_surrounds_its_points_by_the_margin_and_stays_in_the_grid():
    points = np.array([[10.0, 20.0], [14.0, 22.0]])
    assert box_of(points, 2.0, (32, 32)) == (slice(18, 25), slice(8, 17))  # y 18..24, x 8..16
    assert box_of(points, 30.0, (32, 32)) == (slice(0, 32), slice(0, 32))


def landmarks_at(centres: dict[str, tuple[float, float]]) -> np.ndarray:
    """68 landmarks: each region's points at one place, the rest far outside the grid."""
    points = np.full((68, 2), -100.0)
    for region, centre in centres.items():
        points[[p - 1 for p in REGION_POINTS.get(region, (NOSE_BRIDGE,))]] = centre
    return points


def test_region_means_average_each_regions_box():
    values = np.zeros((32, 32))
    values[4:9, 4:9] = 2.0  # what brow_left's box around (6, 6), 2 px beyond, covers exactly
    params = dataclasses.replace(PARAMS, margin=2 / 32)
    means = region_means(values, landmarks_at({"brow_left": (6.0, 6.0), "mouth_right": (20.0, 20.0)}), params)
    assert means[ROI_REGIONS.index("brow_left")] == pytest.approx(2.0)
    assert means[ROI_REGIONS.index("mouth_right")] == pytest.approx(0.0)
    assert np.isnan(means[ROI_REGIONS.index("nose")])  # its points lie outside the grid


def test_the_nose_bridges_motion_is_taken_off_every_region():
    # the whole face moves 2 px right; the left mouth corner's box also moves 3 px down
    flow = np.zeros((2, 32, 32))
    flow[0] = 2.0
    flow[1, 20:25, 4:9] = 3.0
    points = landmarks_at({"bridge": (16.0, 10.0), "brow_left": (16.0, 4.0), "mouth_left": (6.0, 22.0)})
    params = dataclasses.replace(PARAMS, margin=2 / 32)
    magnitude, strain = frame_features(flow, points, params)
    assert magnitude[ROI_REGIONS.index("brow_left")] == pytest.approx(0.0)
    assert magnitude[ROI_REGIONS.index("mouth_left")] == pytest.approx(3.0)
    raw, _ = frame_features(flow, points, dataclasses.replace(params, subtract_nose=False))
    assert raw[ROI_REGIONS.index("brow_left")] == pytest.approx(2.0)
    assert raw[ROI_REGIONS.index("mouth_left")] == pytest.approx(np.hypot(2.0, 3.0))


@pytest.mark.parametrize("k, fps, frames", [(0, 200.0, 37), (0, 30.0, 6), (0, 25.0, 5), (12, 30.0, 12)])
def test_k_in_frames(k, fps, frames):
    assert dataclasses.replace(PARAMS, k=k).frames_apart(fps) == frames


def moving_texture(n: int, seed: int = 0) -> np.ndarray:
    """``n`` crops (64x64) of one smooth texture shifted by 0.5 px more every frame: flow between any two is known."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (96, 96)).astype(np.float32), (0, 0), 3)
    out = [cv2.warpAffine(base, np.float32([[1, 0, -0.5 * t], [0, 1, 0]]), (96, 96))[16:80, 16:80]
           for t in range(n)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def face_points(size: int) -> np.ndarray:
    """Landmarks spread over a ``size`` crop so that every region's box lies inside it."""
    rng = np.random.default_rng(1)
    return rng.uniform(0.25 * size, 0.75 * size, (68, 2))


def test_the_last_k_frames_have_no_features():
    crops = moving_texture(10)
    points = np.repeat(face_points(64)[None], 10, axis=0)
    magnitude, strain = roi_motion(crops, points, 10, 4, PARAMS, 64)
    assert np.isnan(magnitude[6:]).all() and np.isnan(strain[6:]).all()
    assert np.isfinite(magnitude[:6]).all()


def test_windows_with_their_overlap_give_the_whole_videos_features():
    crops = moving_texture(20)
    points = np.repeat(face_points(64)[None], 20, axis=0) + np.linspace(0, 2, 20)[:, None, None]
    k, params = 3, dataclasses.replace(PARAMS, subtract_nose=False)
    whole = roi_motion(crops, points, 20, k, params, 64)
    parts = [roi_motion(crops[a:b + k], points[a:b], b - a, k, params, 64) for a, b in ((0, 8), (8, 16), (16, 20))]
    for i in range(2):
        np.testing.assert_array_equal(np.concatenate([p[i] for p in parts]), whole[i])


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_a_known_shift_reads_as_its_displacement_on_either_flow_backend(backend):
    # the texture moves 0.5 px right per frame: from t to t + 4 every region moves 2 px, all of it head motion
    crops = moving_texture(8)
    points = np.repeat(face_points(64)[None], 8, axis=0)
    params = dataclasses.replace(PARAMS, size=(64, 64), backend=backend)
    raw, strain = roi_motion(crops, points, 4, 4, dataclasses.replace(params, subtract_nose=False), 64)
    assert np.allclose(raw, 2.0, atol=0.35) and np.all(strain < 0.2)
    relative, _ = roi_motion(crops, points, 4, 4, params, 64)
    assert np.all(relative < 0.35)
