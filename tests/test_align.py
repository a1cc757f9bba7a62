"""Crop geometry (Xia eq. 1), similarity fitting and alignment (SPEC §2.3)."""
import dataclasses

import cv2
import numpy as np
import pytest

from mepipe.pipeline.stages import align


def _face(e1=(100.0, 100.0), e2=(200.0, 100.0)):
    """68 points with eye centres at e1 and e2 (6 points on a small circle around each)."""
    pts = np.zeros((68, 2))
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang)], 1) * 5
    pts[36:42] = np.asarray(e1) + ring
    pts[42:48] = np.asarray(e2) + ring
    pts[27:36] = np.linspace([150, 110], [150, 190], 9)
    return pts


def test_crop_transform_by_hand():
    params = align.AlignParams(size=180)
    m = align.crop_transform(_face(), params)
    # d = 100: box starts at e1 - (0.4 d, 0.6 d) = (60, 40), is 1.8 d = 180 wide and 2.2 d = 220 high
    top_left = align.apply_affine(m, np.array([[60.0, 40.0]]))
    bottom_right = align.apply_affine(m, np.array([[240.0, 260.0]]))
    assert top_left .ravel() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert bottom_right .ravel() == pytest.approx([180.0, 180.0], abs=1e-9)
    # eyes are symmetric in the crop: 0.4 d from each side
    eyes = align.apply_affine(m, np.array([[100.0, 100.0], [200.0, 100.0]]))
    assert eyes[:, 0] == pytest.approx([40.0, 140.0])


def test_crop_follows_a_tilted_eye_line():
    m = align.crop_transform(_face((100.0, 100.0), (100.0 + 100 / np.sqrt(2), 100.0 + 100 / np.sqrt(2))))
    eyes = align.apply_affine(m, np.array([[100.0, 100.0], [100.0 + 100 / np.sqrt(2), 100.0 + 100 / np.sqrt(2)]]))
    assert eyes[0, 1] == pytest.approx(eyes[1, 1])  # level in the crop


def test_fit_similarity_recovers_a_known_motion():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (10, 2))
    theta, scale, shift = np.deg2rad(3.0), 1.05, np.array([2.5, -1.25])
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = src @ rot.T + shift
    m = align.fit_similarity(src, dst)
    assert m[:, :2] == pytest.approx(rot, abs=1e-12)
    assert m[:, 2] == pytest.approx(shift, abs=1e-9)


def test_compose_applies_inner_first():
    inner = np.array([[1.0, 0, 5], [0, 1, 0]])
    outer = np.array([[2.0, 0, 0], [0, 2, 1]])
    p = np.array([[1.0, 1.0]])
    assert align.apply_affine(align.compose(outer, inner), p).ravel() == pytest.approx([12.0, 3.0])


def test_align_removes_a_known_head_shift():
    rng = np.random.default_rng(2)
    image = (rng.random((300, 300)) * 255).astype(np.uint8)
    face = _face()
    shifts = [(0, 0), (3, -2), (-4, 1)]
    frames = np.stack([np.roll(np.roll(image, dy, 0), dx, 1) for dx, dy in shifts])
    marks = np.stack([face + [dx, dy] for dx, dy in shifts]).astype(np.float32)
    out = align.align_clip(frames, marks, align.AlignParams(size=64, smoothing_ms=0))
    assert out.crops.shape == (3, 64, 64, 1)
    assert np.abs(out.landmarks - out.landmarks[0]).max() < 1e-3
    core = (slice(8, 56), slice(8, 56))
    assert np.abs(out.crops[1, core[0], core[1], 0].astype(int) - out.crops[0, core[0], core[1], 0]).max() <= 1


def _quadratic_displacement(points):
    """A smooth non-rigid displacement (pixels) of first-frame points, quadratic in x and y."""
    x, y = (points[:, 0] - 150) / 100, (points[:, 1] - 150) / 100
    return np.stack([1.5 * x * y + 0.8 * y * y, -1.2 * x * x + 0.6 * x * y + 0.5], 1) * 2


def _landmark_face():
    """68 distinct points spread over a face-like box, eye rings as in _face()."""
    rng = np.random.default_rng(7)
    pts = rng.uniform([60, 60], [240, 260], (68, 2))
    pts[36:48] = _face()[36:48]
    return pts


def test_lwm_removes_a_non_rigid_deformation_the_similarity_leaves():
    """Frame 1 is frame 0 under a quadratic warp g(y) = y + d(y); LWM reproduces quadratics, so the crop of
    frame 1 equals the crop of frame 0 and its landmarks land on frame 0's. The similarity cannot."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(8)
    image = gaussian_filter(rng.random((300, 300)) * 255, 2).astype(np.float32)
    face = _landmark_face()
    # frame1(z) = frame0(g^-1(z)); g^-1 by fixed-point iteration y = z - d(y)
    zz = np.stack(np.meshgrid(np.arange(300.0), np.arange(300.0)), -1).reshape(-1, 2)
    y = zz.copy()
    for _ in range(30):
        y = zz - _quadratic_displacement(y)
    y = y.reshape(300, 300, 2).astype(np.float32)
    moved = cv2.remap(image, y[..., 0], y[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    frames = np.clip(np.stack([image, moved]), 0, 255).astype(np.uint8)
    marks = np.stack([face, face + _quadratic_displacement(face)]).astype(np.float32)
    assert np.linalg.norm(marks[1] - marks[0], axis=1).max() > 2
    lwm = align.align_clip(frames, marks, align.AlignParams(size=128, method="lwm", smoothing_ms=0))
    sim = align.align_clip(frames, marks, align.AlignParams(size=128, smoothing_ms=0))
    assert np.abs(lwm.landmarks[1] - lwm.landmarks[0]).max() < 1e-3
    assert np.linalg.norm(sim.landmarks[1] - sim.landmarks[0], axis=1).max() > 1.0
    core = (slice(16, 112), slice(16, 112))
    lwm_diff = np.abs(lwm.crops[1, core[0], core[1], 0].astype(int) - lwm.crops[0, core[0], core[1], 0])
    sim_diff = np.abs(sim.crops[1, core[0], core[1], 0].astype(int) - sim.crops[0, core[0], core[1], 0])
    assert lwm_diff.mean() < 0.5 and sim_diff.mean() > 2 * lwm_diff.mean() + 1


def test_lwm_smoothing_the_residuals_is_smoothing_the_warp():
    """LWM is linear in the frame's landmarks, so the smoothed warp is the Gaussian of the per-frame warps;
    with n = 6 (an exact fit) it passes through the smoothed track of a moving control point."""
    from scipy.ndimage import gaussian_filter1d

    face = _landmark_face()
    n = 9
    marks = np.repeat(face[None], n, axis=0)
    mouth = 60  # not a stable point: the similarity stays the identity
    marks[:, mouth, 0] += np.array([0, 0, 0, 2.0, 3.0, 2.0, 0, 0, 0])
    smooth = align.AlignParams(size=128, method="lwm", smoothing_ms=10.0)  # sigma = 2 frames at 200 fps
    warp = align.ClipWarp.fit(marks, smooth, fps=200.0)
    raw = align.ClipWarp.fit(marks, dataclasses.replace(smooth, smoothing_ms=0.0), fps=200.0)
    assert warp.to_first == pytest.approx(np.repeat(np.eye(2, 3)[None], n, axis=0), abs=1e-12)
    at_mouth = align.apply_affine(warp.reference, face[mouth][None])
    crop_points = np.vstack([at_mouth, np.random.default_rng(10).uniform(0, 128, (40, 2))])
    per_frame = np.stack([raw.to_source(t, crop_points) for t in range(n)])
    found = np.stack([warp.to_source(t, crop_points) for t in range(n)])
    assert found == pytest.approx(gaussian_filter1d(per_frame, 2.0, axis=0, mode="nearest"), abs=1e-9)
    assert np.abs(per_frame[4] - per_frame[0]).max() > 0.5

    exact = align.ClipWarp.fit(marks, dataclasses.replace(smooth, lwm_neighbours=6), fps=200.0)
    track = np.array([exact.to_source(t, at_mouth)[0] for t in range(n)])
    assert track == pytest.approx(gaussian_filter1d(marks[:, mouth], 2.0, axis=0, mode="nearest"), abs=1e-6)


def test_to_crop_inverts_to_source():
    rng = np.random.default_rng(9)
    face = _landmark_face()
    marks = np.stack([face, face + rng.normal(0, 1.0, face.shape) + [2.0, -1.0]])
    warp = align.ClipWarp.fit(marks, align.AlignParams(method="lwm", smoothing_ms=0), fps=200.0)
    crop_points = rng.uniform(20, 230, (30, 2))
    assert warp.to_crop(1, warp.to_source(1, crop_points)) == pytest.approx(crop_points, abs=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="tps"), "method"),
    (dict(lwm_neighbours=5), "lwm_neighbours"),
    (dict(lwm_points=(1, 2, 2)), "lwm_points"),
    (dict(stable_points=(0, 28)), "stable_points"),
    (dict(method="lwm", interpolation="area"), "area"),
])
def test_bad_align_params_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        align.AlignParams(**kwargs)
