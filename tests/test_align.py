"""Crop geometry (Xia eq. 1), similarity fitting and alignment (SPEC §2.3)."""
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
