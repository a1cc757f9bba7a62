"""TV-L1 flow kernels and the Miao colour coding.

Motion is made by shifting a smooth, periodic random texture in the Fourier
domain (an exact sub-pixel translation), so the true flow is known. TV-L1
costs ~50-100 ms per 64x64 pair on one core; inputs are kept small.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pytest
from scipy import ndimage

from mepipe.pipeline.stages.flow import FlowParams, TVL1Params, resize_field, tvl1_flow
from mepipe.pipeline.stages.flow_consecutive import ConsecutiveFlowParams, flow_consecutive
from mepipe.pipeline.stages.flow_first_each import FirstEachFlowParams, flow_first_each
from mepipe.pipeline.stages.flow_onset_apex import OnsetApexFlowParams, flow_onset_apex

cv2.setNumThreads(1)

MARGIN = 8  # interior used for flow means: TV-L1 is biased at the wrapped borders


def _texture(size: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """Smooth periodic random texture in [0, 1], (size, size) float64."""
    noise = np.random.default_rng(seed).standard_normal((size, size))
    smooth = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px: right for dx > 0, down for dy > 0."""
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), (dy, dx))).real


def _moving_clip(n_frames: int, step: float, size: int = 128, seed: int = 0) -> np.ndarray:
    """uint8 clip (T, size, size) whose frame t is the texture moved right by t * step px."""
    image = 0.1 + 0.8 * _texture(size, seed, sigma=4.0)
    frames = [_shifted(image, t * step, 0.0) for t in range(n_frames)]
    return np.rint(np.clip(frames, 0, 1) * 255).astype(np.uint8)


def _interior_mean(flow: np.ndarray) -> np.ndarray:
    """Mean (u, v) over the interior of (..., 2, H, W) fields."""
    return flow[..., MARGIN:-MARGIN, MARGIN:-MARGIN].mean(axis=(-2, -1))


def test_defaults():
    p = TVL1Params()
    assert (p.tau, p.lambda_, p.theta, p.nscales, p.warps, p.epsilon) == (0.25, 0.15, 0.3, 5, 5, 0.01)
    assert (p.inner_iterations, p.outer_iterations, p.scale_step, p.gamma) == (30, 10, 0.8, 0.0)
    assert (p.median_filtering, p.use_initial_flow) == (5, False)
    assert OnsetApexFlowParams().size == (245, 300)
    assert FirstEachFlowParams().size == (112, 112)
    assert ConsecutiveFlowParams().size == (64, 64)
    assert FirstEachFlowParams().tvl1 == p
    # Miao: the flow is computed on the frames and resized to 112x112; Xia and Nag resize the frames first
    assert FirstEachFlowParams().compute_at == "crop"
    assert OnsetApexFlowParams().compute_at == ConsecutiveFlowParams().compute_at == "size"


def test_params_reach_opencv():
    solver = TVL1Params(tau=0.2, lambda_=0.1, nscales=3, warps=2, epsilon=0.02, inner_iterations=7,
                        outer_iterations=4, scale_step=0.5, gamma=0.1, median_filtering=3).create()
    assert solver.getTau() == pytest.approx(0.2) and solver.getLambda() == pytest.approx(0.1)
    assert (solver.getScalesNumber(), solver.getWarpingsNumber()) == (3, 2)
    assert (solver.getInnerIterations(), solver.getOuterIterations(), solver.getMedianFiltering()) == (7, 4, 3)
    assert solver.getScaleStep() == pytest.approx(0.5) and solver.getGamma() == pytest.approx(0.1)
    assert solver.getEpsilon() == pytest.approx(0.02) and solver.getTheta() == pytest.approx(0.3)


@pytest.mark.parametrize("dx, dy", [(0.3, 0.0), (0.6, 0.0), (0.0, 0.3), (-0.6, 0.3)])
def test_recovers_subpixel_translation(dx, dy):
    image = _texture(64)
    flow = tvl1_flow(image.astype(np.float32), _shifted(image, dx, dy).astype(np.float32))
    assert flow.shape == (2, 64, 64) and flow.dtype == np.float32
    u, v = _interior_mean(flow)
    assert u == pytest.approx(dx, abs=0.1)
    assert v == pytest.approx(dy, abs=0.1)


@pytest.mark.parametrize("shift, expected", [((0, 1), (1.0, 0.0)), ((0, -1), (-1.0, 0.0)),
                                             ((1, 0), (0.0, 1.0)), ((-1, 0), (0.0, -1.0))])
def test_sign_convention(shift, expected):
    # np.roll by +1 along x moves content right: u = +1; along y moves it down: v = +1.
    prev = np.rint(_texture(48, seed=3, sigma=3.0) * 255).astype(np.uint8)
    flow = tvl1_flow(prev, np.roll(prev, shift, axis=(0, 1)))
    assert _interior_mean(flow) == pytest.approx(expected, abs=0.1)


def test_resize_field_by_hand():
    # (u, v) = (2, -1) everywhere on a 8x6 (W x H) grid is (2 * 4/8, -1 * 2/6) on a 4x2 grid
    field = np.stack([np.full((6, 8), 2.0), np.full((6, 8), -1.0)])
    out = resize_field(field, (4, 2))
    assert out.shape == (2, 2, 4)
    np.testing.assert_allclose(out[0], 1.0)
    np.testing.assert_allclose(out[1], -1 / 3, rtol=1e-6)
    # area resampling: u = 2 on the left half, 0 on the right, halved in width -> u = [1, 0] pixels of the new grid
    halves = np.zeros((1, 2, 2, 4))
    halves[0, 0, :, :2] = 2.0
    np.testing.assert_allclose(resize_field(halves, (2, 2))[0, 0], [[1.0, 0.0], [1.0, 0.0]])
    assert np.array_equal(resize_field(field, (8, 6)), field)


def test_first_each_on_the_crops_is_the_resized_crop_flow():
    # compute_at="crop": TV-L1 on the 128-px crops, then the field resized to 64x64 (vectors halved)
    crops = _moving_clip(3, 1.0, seed=4)
    params = FirstEachFlowParams(size=(64, 64), compute_at="crop", backend="opencv")
    got = flow_first_each(crops, params)
    expected = np.stack([resize_field(tvl1_flow(crops[0], crops[t], params.tvl1), (64, 64)) for t in (1, 2)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(_interior_mean(got), [[0.5, 0], [1.0, 0]], atol=0.1)
    at_size = flow_first_each(crops, FirstEachFlowParams(size=(64, 64), compute_at="size", backend="opencv"))
    assert np.abs(at_size - got).max() > 1e-3


def test_first_each_and_consecutive_compute_the_expected_pairs():
    # Crops move 1 px per frame at 128 px; the 64x64 INTER_AREA resize halves it to 0.5 px.
    crops = _moving_clip(4, 1.0)
    first = flow_first_each(crops, FirstEachFlowParams(size=(64, 64), compute_at="size", backend="opencv"))
    assert first.shape == (3, 2, 64, 64) and first.dtype == np.float32
    np.testing.assert_allclose(_interior_mean(first), [[0.5, 0], [1.0, 0], [1.5, 0]], atol=0.1)
    consecutive = flow_consecutive(crops)
    assert consecutive.shape == (3, 2, 64, 64) and consecutive.dtype == np.float32
    np.testing.assert_allclose(_interior_mean(consecutive), [[0.5, 0]] * 3, atol=0.1)


def test_onset_apex_uses_the_given_positions():
    crops = _moving_clip(5, 1.0, seed=1)
    flow = flow_onset_apex(crops, onset=1, apex=4, params=OnsetApexFlowParams(size=(64, 48), backend="opencv"))
    assert flow.shape == (2, 48, 64)
    # 3 frames apart at 1 px each, resized 128 -> 64 wide: u = 1.5 px.
    np.testing.assert_allclose(_interior_mean(flow), [1.5, 0.0], atol=0.1)


def test_onset_apex_default_size_and_colour_crops():
    # Identical frames converge at once, so the full 245x300 default stays cheap.
    grey = _moving_clip(1, 0.0)[0]
    crops = np.repeat(np.repeat(grey[None, :, :, None], 3, axis=3), 3, axis=0)
    flow = flow_onset_apex(crops, 0, 2)
    assert flow.shape == (2, 300, 245) and flow.dtype == np.float32
    assert np.abs(flow).max() < 0.05


def test_colour_crops_are_converted_to_grey():
    grey = _moving_clip(3, 1.0, seed=2)
    colour = np.stack([grey, grey, grey], axis=-1)
    flow = flow_consecutive(colour)
    np.testing.assert_allclose(_interior_mean(flow), [[0.5, 0]] * 2, atol=0.1)


@pytest.mark.parametrize("call, match", [
    (lambda c: flow_first_each(c[:1]), "at least 2"),
    (lambda c: flow_consecutive(c.astype(np.float32)), "uint8"),
    (lambda c: flow_consecutive(c[..., None].repeat(2, axis=-1)), r"\(T, S, S, C\)"),
    (lambda c: flow_onset_apex(c, 2, 1), "precede"),
    (lambda c: flow_onset_apex(c, 0, 9), "apex index 9"),
    (lambda c: tvl1_flow(c[0], c[1, :10]), "same shape"),
    (lambda c: tvl1_flow(c[:2], c[:2]), "2-D"),
])
def test_bad_inputs_raise(call, match):
    crops = np.zeros((3, 32, 32), np.uint8)
    with pytest.raises(ValueError, match=match):
        call(crops)


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=(64,)), "size"), (dict(size=(4, 64)), "size"), (dict(channel_order="HSV"), "channel_order"),
    (dict(backend="cuda"), "backend"),
    (dict(compute_at="frames"), "compute_at"),
])
def test_bad_flow_params_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlowParams(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(median_filtering=7), "median_filtering"), (dict(median_filtering=4), "median_filtering"),
    (dict(use_initial_flow=True), "use_initial_flow"), (dict(scale_step=1.0), "scale_step"),
])
def test_tvl1_params_opencv_cannot_run_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TVL1Params(**kwargs)
    if "median_filtering" in kwargs:  # the check mirrors OpenCV, which fails on these sizes for float fields
        with pytest.raises(cv2.error):
            cv2.medianBlur(np.zeros((16, 16), np.float32), kwargs["median_filtering"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(scale_step=1.0), "scale_step"), (dict(nscales=0), "nscales"), (dict(tau=0), "tau"),
])
def test_bad_tvl1_params_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TVL1Params(**kwargs)
