"""Eulerian magnification kernel: per-level factors, temporal gain, invariants.

Expected gains are closed forms. The temporal filter is the difference of two
first-order low-passes y[t] = (1 - r) y[t-1] + r x[t], whose steady-state
response at angular frequency w is

    H(w) = r1 / (1 - (1 - r1) e^{-iw}) - r2 / (1 - (1 - r2) e^{-iw}).

The kernel adds alpha * band to the frame, so a sinusoid that lands in
amplified pyramid levels comes out scaled by |1 + alpha * H(w) * f|, where f
is the share of the spatial pattern in those levels (the finest level and the
residual are never amplified).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pytest

from mepipe.pipeline.stages.magnify import MagnifyParams, level_alphas, magnify, magnify_frames, magnify_resized

cv2.setNumThreads(1)

SIZE = 128
# Period 254 / 8 px: the cosine is then mirror-symmetric about pixel 0 and
# pixel 127, as OpenCV's BORDER_REFLECT_101 pyramid assumes, so no border error.
WAVELENGTH = (2 * SIZE - 2) / 8
SETTLE = 160  # frames; the slow low-pass forgets its start as 0.95**t (< 3e-4 here)


def _temporal_response(w: float, r1: float = 0.4, r2: float = 0.05) -> complex:
    z = np.exp(-1j * w)
    return r1 / (1 - (1 - r1) * z) - r2 / (1 - (1 - r2) * z)


def _finest_share(wavelength: float) -> float:
    """Share of a 1-D cosine in the finest Laplacian level.

    pyrDown then pyrUp scales a cosine below half the Nyquist rate by the
    binomial kernel's response twice: cos^4(w/2) each, with w = 2 pi / wavelength.
    """
    return 1.0 - np.cos(np.pi / wavelength) ** 8


def _pattern() -> np.ndarray:
    x = np.arange(SIZE)
    return np.tile(np.cos(2 * np.pi * x / WAVELENGTH), (SIZE, 1))


def _oscillating_clip(period: float, amplitude: float, n_frames: int) -> np.ndarray:
    t = np.arange(n_frames)[:, None, None]
    frames = 120 + 50 * _pattern() + amplitude * np.sin(2 * np.pi * t / period) * _pattern()
    return np.rint(frames).astype(np.uint8)


def _oscillation_amplitude(clip: np.ndarray, period: float, direction=None) -> float:
    """Amplitude of the temporal sinusoid of the clip's component along the pattern."""
    frames = clip[SETTLE:].astype(np.float64)
    if direction is not None:
        frames = frames @ np.asarray(direction, dtype=np.float64)
    pattern = _pattern()
    coefficient = (frames * pattern).sum(axis=(1, 2)) / (pattern ** 2).sum()
    t = np.arange(SETTLE, len(clip))
    design = np.stack([np.sin(2 * np.pi * t / period), np.cos(2 * np.pi * t / period), np.ones_like(t)], axis=1)
    (s, c, _), *_ = np.linalg.lstsq(design, coefficient, rcond=None)
    return float(np.hypot(s, c))


def test_defaults_follow_xia_and_wu():
    p = MagnifyParams()
    assert p.alphas == (5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0)  # Xia §III-E
    assert p.test_alpha == 8.0 and p.alphas[p.test_index] == 8.0  # Xia §IV-A: testing with alpha = 8
    assert (p.r1, p.r2, p.lambda_c) == (0.4, 0.05, 16.0)
    assert (p.small_size, p.size) == ((48, 64), (128, 128))  # (W, H): Xia's 64 x 48 read as H x W
    assert p.exaggeration == 1.0 and p.wavelength_divisor == 3.0 and p.chroma_attenuation == 0.1


def test_level_alphas_by_hand():
    # Xia's gain min(alpha, alpha_c), alpha_c = lambda / (8 delta) - 1 with delta = lambda_c / (8 (1 + alpha)),
    # i.e. lambda * (1 + alpha) / lambda_c - 1 = lambda * 9 / 16 - 1 for alpha = 8.
    # 128x128: 6 levels (128, 64, 32, 16, 8, 4 px). Residual wavelength hypot(128, 128) / 3 = 60.34 px,
    # halving per finer level: level 4 30.17 -> 15.97 (capped at 8), level 3 15.085 -> 7.485,
    # level 2 7.542 -> 3.243, level 1 3.771 -> 1.121; the finest level and the residual get 0.
    assert level_alphas((128, 128), 8) == pytest.approx((0, 1.1213, 3.2426, 7.4853, 8, 0), abs=1e-3)
    # 48x64 (H, W): 5 levels; residual wavelength hypot(48, 64) / 3 = 26.67 px.
    # level 3: 13.33 * 0.5625 - 1 = 6.5; level 2: 2.75; level 1: 0.875.
    assert level_alphas((48, 64), 8) == pytest.approx((0, 0.875, 2.75, 6.5, 0), abs=1e-3)
    # A bound below zero would invert a band; it is clipped to 0.
    assert level_alphas((128, 128), 8, MagnifyParams(lambda_c=64.0))[1] == 0.0


def test_wu_exaggeration_doubles_the_fine_levels():
    # Wu's code multiplies alpha_c by 2: level 3 2 * 7.485 = 14.97 (capped at 8), level 2 6.485, level 1 2.243.
    wu = MagnifyParams(exaggeration=2.0)
    assert level_alphas((128, 128), 8, wu) == pytest.approx((0, 2.2426, 6.4853, 8, 8, 0), abs=1e-3)
    assert level_alphas((48, 64), 8, wu) == pytest.approx((0, 1.75, 5.5, 8, 0), abs=1e-3)


def test_static_clip_is_unchanged():
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8), (0, 0), 2)
    clip = np.repeat(frame[None], 12, axis=0)
    out = magnify(clip, 8.0)
    assert out.dtype == np.uint8 and out.shape == clip.shape
    assert np.abs(out.astype(int) - clip).max() <= 1


@pytest.mark.parametrize("alpha", [5.0, 8.0])
def test_in_band_oscillation_is_amplified(alpha):
    period = 40.0  # near the band-pass peak: |H| = 0.81
    params = MagnifyParams(lambda_c=1.0)  # every level between finest and residual gets the full alpha
    assert level_alphas((SIZE, SIZE), alpha, params) == (0, alpha, alpha, alpha, alpha, 0)
    clip = _oscillating_clip(period, 3.0, SETTLE + 4 * 40)
    ratio = _oscillation_amplitude(magnify(clip, alpha, params), period) / _oscillation_amplitude(clip, period)
    expected = abs(1 + alpha * _temporal_response(2 * np.pi / period) * (1 - _finest_share(WAVELENGTH)))
    assert expected > 0.8 * (1 + alpha)
    assert ratio == pytest.approx(expected, rel=0.02)


def test_default_cutoff_attenuates_fine_levels():
    # With lambda_c = 16 the level-3, -2 and -1 bands get 7.49, 3.24 and 1.12 instead
    # of 8, so the same in-band pattern grows less than with the full alpha.
    period = 40.0
    clip = _oscillating_clip(period, 3.0, SETTLE + 4 * 40)
    ratio = _oscillation_amplitude(magnify(clip, 8.0), period) / _oscillation_amplitude(clip, period)
    full = abs(1 + 8.0 * _temporal_response(2 * np.pi / period) * (1 - _finest_share(WAVELENGTH)))
    assert 2.0 < ratio < 0.95 * full


def test_constant_level_change_is_not_amplified():
    # A step is frequency 0, where H = 0: once the filter settles the output is the input.
    t = np.arange(SETTLE + 60)[:, None, None]
    frames = 120 + 50 * _pattern() + np.where(t >= 20, 6.0, 0.0) * _pattern()
    clip = np.rint(frames).astype(np.uint8)
    out = magnify(clip, 8.0, MagnifyParams(lambda_c=1.0))
    assert np.abs(out[SETTLE:].astype(int) - clip[SETTLE:]).max() <= 1
    assert np.abs(out[25].astype(int) - clip[25]).max() > 10  # the transient itself is magnified


def test_high_frequency_gets_the_weak_response_of_the_filter():
    # Period 2 frames (Nyquist): |H| = 0.4/1.6 - 0.05/1.95 = 0.224, against 0.81 at the peak.
    period = 2.0
    t = np.arange(SETTLE + 40)[:, None, None]
    frames = 120 + 50 * _pattern() + 3.0 * np.cos(np.pi * t) * _pattern()
    clip = np.rint(frames).astype(np.uint8)
    out = magnify(clip, 8.0, MagnifyParams(lambda_c=1.0))
    ratio = _oscillation_amplitude(out, period) / _oscillation_amplitude(clip, period)
    expected = abs(1 + 8.0 * _temporal_response(np.pi) * (1 - _finest_share(WAVELENGTH)))
    assert abs(_temporal_response(np.pi)) == pytest.approx(0.4 / 1.6 - 0.05 / 1.95)
    assert ratio == pytest.approx(expected, rel=0.02)
    assert ratio < 0.4 * (1 + 8.0)


def test_finest_level_is_never_amplified():
    # A checkerboard lies entirely in the finest level (the binomial kernel zeroes it).
    yy, xx = np.mgrid[:SIZE, :SIZE]
    checker = np.where((yy + xx) % 2 == 0, 1.0, -1.0)
    t = np.arange(80)[:, None, None]
    clip = np.rint(128 + 5 * np.sin(2 * np.pi * t / 40) * checker).astype(np.uint8)
    out = magnify(clip, 8.0, MagnifyParams(lambda_c=1.0))
    assert np.abs(out.astype(int) - clip).max() <= 1


@pytest.mark.slow
def test_colour_luma_and_chroma_gains():
    period = 40.0
    base = _oscillating_clip(period, 0.0, SETTLE + 4 * 40).astype(np.float64)
    t = np.arange(len(base))[:, None, None, None]
    # RGB direction with Y = 0 and I = 1 (inverse NTSC matrix, column I).
    rgb_to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    i_direction = np.linalg.inv(rgb_to_yiq)[:, 1]
    grey = np.array([1.0, 1.0, 1.0])
    osc = np.sin(2 * np.pi * t / period) * _pattern()[None, :, :, None]
    frames = base[..., None] + 3.0 * osc * grey + 6.0 * osc * i_direction
    clip = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    params = MagnifyParams(lambda_c=1.0, channel_order="RGB")
    out = magnify(clip, 8.0, params)
    band = _temporal_response(2 * np.pi / period) * (1 - _finest_share(WAVELENGTH))
    # Project on each direction with its dual row so the other component drops out.
    y_row, i_row = rgb_to_yiq[0], rgb_to_yiq[1]
    luma = _oscillation_amplitude(out, period, y_row) / _oscillation_amplitude(clip, period, y_row)
    chroma = _oscillation_amplitude(out, period, i_row) / _oscillation_amplitude(clip, period, i_row)
    assert luma == pytest.approx(abs(1 + 8.0 * band), rel=0.02)
    assert chroma == pytest.approx(abs(1 + 0.1 * 8.0 * band), rel=0.02)


def test_first_frame_unchanged_and_single_channel_axis_kept():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (5, 32, 40, 1), dtype=np.uint8)
    out = magnify(clip, 10.0)
    assert out.shape == clip.shape
    assert np.abs(out[0].astype(int) - clip[0]).max() <= 1


def _area(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip])


def test_magnify_resized_magnifies_at_the_crop_size_then_resizes():
    # A blurred texture drifting sideways: each output is the crop-sized magnified clip, resized.
    rng = np.random.default_rng(2)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (96, 96), dtype=np.uint8), (0, 0), 3).astype(np.float64)
    crops = np.stack([np.roll(frame, k // 2, axis=1) for k in range(8)]).astype(np.uint8)
    params = MagnifyParams(alphas=(5, 8), small_size=(24, 32), size=(48, 48))
    out = magnify_resized(crops, params)
    # Every alpha at small_size, the test alpha only at size.
    assert set(out) == {(5.0, (24, 32)), (8.0, (24, 32)), (8.0, (48, 48))}
    assert out[(5.0, (24, 32))].shape == (8, 32, 24) and out[(8.0, (48, 48))].shape == (8, 48, 48)
    for (alpha, size), clip in out.items():
        assert np.array_equal(clip, _area(magnify(crops, alpha), size)), (alpha, size)
    # The order matters: resizing first (the stage before version 2) gives another clip.
    shrunk_first = magnify(_area(crops, (24, 32)), 8.0)
    assert np.abs(out[(8.0, (24, 32))].astype(int) - shrunk_first).max() > 2
    # A static clip comes back as its INTER_AREA resize.
    static = magnify_resized(np.repeat(crops[:1], 4, axis=0), params)
    assert np.abs(static[(8.0, (24, 32))].astype(int) - _area(crops[:1], (24, 32))).max() <= 1


def test_magnify_frames_are_those_of_the_whole_clip():
    # Frame t of the magnified clip depends on frames 0..t only; rendering two frames gives the same bytes.
    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (40, 48), dtype=np.uint8), (0, 0), 2).astype(np.float64)
    clip = np.stack([np.roll(frame, k // 3, axis=1) for k in range(9)]).astype(np.uint8)
    out = magnify_frames(clip, (5.0, 8.0), (2, 7))
    assert out.shape == (2, 2, 40, 48) and out.dtype == np.uint8
    for a, alpha in enumerate((5.0, 8.0)):
        assert np.array_equal(out[a], magnify(clip, alpha)[[2, 7]])
    with pytest.raises(ValueError, match="frame indices"):
        magnify_frames(clip, (8.0,), (9,))


@pytest.mark.parametrize("kwargs, match", [
    (dict(r1=0.05, r2=0.4), "r2 < r1"),
    (dict(alphas=()), "alphas"),
    (dict(alphas=(5, 6)), "test_alpha=8.0 must be one of alphas"),
    (dict(alphas=(-1,)), "alphas"),
    (dict(n_levels=2), "n_levels"),
    (dict(small_size=(64, 4)), "small_size"),
    (dict(size=(64,)), "size"),
    (dict(channel_order="YUV"), "channel_order"),
])
def test_bad_params_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MagnifyParams(**kwargs)


def test_bad_clips_raise():
    with pytest.raises(ValueError, match="uint8"):
        magnify(np.zeros((3, 32, 32), np.float32), 8.0)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        magnify(np.zeros((32, 32), np.uint8), 8.0)
    with pytest.raises(ValueError, match="n_levels=7"):
        magnify(np.zeros((3, 32, 32), np.uint8), 8.0, MagnifyParams(n_levels=7))
    with pytest.raises(ValueError, match="alpha"):
        magnify(np.zeros((3, 32, 32), np.uint8), -1.0)
