"""The PyTorch TV-L1 solver against OpenCV's DualTVL1, step by step and end to end.

Building blocks are compared with the OpenCV function they stand for
(``resize``, ``remap``, ``medianBlur``) or with a hand-checkable input; the
whole solver is compared with ``cv2.optflow.DualTVL1OpticalFlow`` on the same
pairs. Sizes are small (TV-L1 costs ~0.1-0.3 s per 64 x 64 pair on one core);
the full-size agreement table is ``benchmarks/flow_backends.py``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pytest
import torch

from mepipe.pipeline.flow_agreement import agreement, clip_pairs, me_pairs, shifted_texture_pairs
from mepipe.pipeline.stages import tvl1_torch as tt
from mepipe.pipeline.stages.flow import TVL1Params

cv2.setNumThreads(1)
torch.set_num_threads(1)


def _opencv(prev, nxt, params=TVL1Params()):
    return np.stack([params.create().calc(a, b, None).transpose(2, 0, 1) for a, b in zip(prev, nxt)])


def _rng_images(n, h, w, seed=0, sigma=1.5):
    rng = np.random.default_rng(seed)
    return np.stack([cv2.GaussianBlur(rng.random((h, w)).astype(np.float32) * 255, (0, 0), sigma) for _ in range(n)])


# --- building blocks ---------------------------------------------------------------------------

@pytest.mark.parametrize("h, w", [(64, 64), (245, 300), (41, 33), (17, 16)])
def test_pyramid_sizes_match_opencv_resize_chain(h, w):
    p = TVL1Params()
    sizes = tt.pyramid_sizes(h, w, p)
    image = np.zeros((h, w), np.float32)
    expected = [(h, w)]
    for _ in range(1, p.nscales):
        image = cv2.resize(image, None, fx=p.scale_step, fy=p.scale_step, interpolation=cv2.INTER_LINEAR)
        if min(image.shape) < tt.MIN_PYRAMID_SIDE:
            break
        expected.append(image.shape)
    assert sizes == expected


def test_pyramid_stops_before_a_side_under_16():
    assert tt.pyramid_sizes(64, 64, TVL1Params()) == [(64, 64), (51, 51), (41, 41), (33, 33), (26, 26)]
    assert tt.pyramid_sizes(20, 40, TVL1Params()) == [(20, 40), (16, 32)]
    assert tt.pyramid_sizes(19, 40, TVL1Params()) == [(19, 40)]


@pytest.mark.parametrize("h, w", [(112, 112), (245, 300), (51, 41)])
@pytest.mark.parametrize("step", [0.8, 0.5, 0.65])
def test_downscale_matches_cv_resize_by_factor(h, w, step):
    images = _rng_images(2, h, w)
    sizes = tt.pyramid_sizes(h, w, TVL1Params(scale_step=step, nscales=2))
    ref = np.stack([cv2.resize(i, None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR) for i in images])
    out = tt._resize_by_factor(torch.from_numpy(images), sizes[1], step).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("src, dst", [((51, 51), (64, 64)), ((196, 240), (245, 300)), ((26, 26), (33, 33))])
def test_flow_upscale_matches_cv_resize_to_size(src, dst):
    fields = np.random.default_rng(1).normal(0, 2, (3, *src)).astype(np.float32)
    ref = np.stack([cv2.resize(f, dst[::-1], interpolation=cv2.INTER_LINEAR) for f in fields])
    out = tt._resize_to(torch.from_numpy(fields), dst).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_cubic_remap_matches_cv_remap_with_zero_border():
    # Displacements up to several px push many taps outside the image: the border must read 0.
    images = _rng_images(2, 40, 48, seed=2)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:48].astype(np.float32)
    map_x = xx + rng.normal(0, 3, (2, 40, 48)).astype(np.float32)
    map_y = yy + rng.normal(0, 3, (2, 40, 48)).astype(np.float32)
    ref = np.stack([cv2.remap(i, mx, my, cv2.INTER_CUBIC) for i, mx, my in zip(images, map_x, map_y)])
    out = tt._remap_cubic(torch.from_numpy(images)[:, None], torch.from_numpy(map_x), torch.from_numpy(map_y))
    assert np.abs(ref).min() == 0  # some pixels fell wholly outside
    np.testing.assert_allclose(out[:, 0].numpy(), ref, rtol=0, atol=2e-4)


@pytest.mark.parametrize("k", [3, 5])
def test_median_equals_cv_median_blur(k):
    fields = np.random.default_rng(4).normal(0, 1, (3, 23, 19)).astype(np.float32)
    ref = np.stack([cv2.medianBlur(f, k) for f in fields])
    np.testing.assert_array_equal(tt._median(torch.from_numpy(fields), k).numpy(), ref)


def test_median_network_selects_the_middle_value():
    for n in (9, 25):
        ops, out, _ = tt._selection_network(n)
        for seed in range(50):
            values = dict(enumerate(np.random.default_rng(seed).permutation(n).tolist()))
            for node, take_min, a, b in ops:
                values[node] = min(values[a], values[b]) if take_min else max(values[a], values[b])
            assert values[out] == n // 2


def test_centered_gradient_halves_the_one_sided_border_difference():
    # I = x^2 + 10 y: interior dx = 0.5 (I(x+1) - I(x-1)) = 2x; at x = 0, 0.5 (1 - 0) = 0.5;
    # at the last column x = 3, 0.5 (9 - 4) = 2.5; dy = 10 inside, 5 on the first and last rows.
    x = np.arange(4, dtype=np.float32)
    image = torch.from_numpy((x[None, :] ** 2 + 10 * np.arange(3, dtype=np.float32)[:, None])[None])
    dx, dy = tt._centered_gradient(image)
    np.testing.assert_array_equal(dx[0].numpy(), np.tile([0.5, 2.0, 4.0, 2.5], (3, 1)))
    np.testing.assert_array_equal(dy[0].numpy(), np.tile([[5.0], [10.0], [5.0]], (1, 4)))


def test_forward_gradient_and_divergence_on_a_small_grid():
    u = torch.tensor([[[1.0, 2.0, 4.0], [0.0, 3.0, 3.0]]])
    dx, dy = tt._forward_gradient(u)
    np.testing.assert_array_equal(dx[0].numpy(), [[1, 2, 0], [3, 0, 0]])
    np.testing.assert_array_equal(dy[0].numpy(), [[-1, 1, -1], [0, 0, 0]])
    # div(p) = backward differences, with p itself on the first row/column.
    p1 = torch.tensor([[[1.0, 3.0, 6.0], [2.0, 2.0, 5.0]]])
    p2 = torch.tensor([[[1.0, 1.0, 1.0], [4.0, 0.0, 2.0]]])
    np.testing.assert_array_equal(tt._divergence(p1, p2)[0].numpy(), [[2, 3, 4], [5, -1, 4]])


# --- the solver -----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(nscales=1, warps=1, outer_iterations=1, inner_iterations=30, median_filtering=1, epsilon=1e-9),
    dict(nscales=1, warps=1, outer_iterations=4, inner_iterations=10, median_filtering=5),
    dict(nscales=1, warps=1, outer_iterations=3, inner_iterations=7, median_filtering=3, epsilon=0.05),
])
def test_one_warp_is_bit_exact_with_opencv(kw):
    # Without a second warp, no bicubic interpolation of a moved image enters, and every
    # step (thresholding, divergence, update, dual step, median, stopping rule) matches OpenCV's floats.
    prev, nxt, _ = shifted_texture_pairs(3, (40, 32), seed=5)
    params = TVL1Params(**kw)
    np.testing.assert_array_equal(tt.tvl1_batch(prev, nxt, params), _opencv(prev, nxt, params))


def test_a_pair_gives_the_same_flow_alone_and_in_a_batch():
    # Pair 0 is identical frames (converges at once), the others need many iterations: per-pair
    # stopping must not let the batch change any pair's result.
    prev, nxt, _ = shifted_texture_pairs(3, (32, 32), seed=6)
    prev, nxt = np.concatenate([prev[:1], prev]), np.concatenate([prev[:1], nxt])
    params = TVL1Params(nscales=2, warps=2)
    batch = tt.tvl1_batch(prev, nxt, params)
    alone = np.concatenate([tt.tvl1_batch(prev[i:i + 1], nxt[i:i + 1], params) for i in range(len(prev))])
    np.testing.assert_array_equal(batch, alone)
    np.testing.assert_array_equal(tt.tvl1_batch(prev, nxt, params, max_batch=2), batch)
    assert np.abs(batch[0]).max() == 0


def test_float_input_is_scaled_like_opencv():
    prev, nxt, _ = shifted_texture_pairs(1, (32, 32), seed=7)
    params = TVL1Params(nscales=1, warps=1)
    as_float = tt.tvl1_batch(prev / np.float32(255), nxt / np.float32(255), params)
    np.testing.assert_array_equal(as_float, tt.tvl1_batch(prev, nxt, params))


def _check(prev, nxt, params=TVL1Params()):
    a = agreement(tt.tvl1_batch(prev, nxt, params), _opencv(prev, nxt, params))
    assert a.within(), a
    return a


def test_agrees_with_opencv_on_known_shifts():
    prev, nxt, shifts = shifted_texture_pairs(4, (64, 64), seed=8)
    _check(prev, nxt)


def test_agrees_with_opencv_on_samm_like_pairs():
    prev, nxt = me_pairs(4, (64, 64), seed=9)
    _check(prev, nxt)


def test_agrees_with_opencv_with_illumination_term():
    prev, nxt = me_pairs(2, (48, 48), seed=10)
    _check(prev, nxt, TVL1Params(gamma=0.1, nscales=3))


@pytest.mark.slow
def test_agrees_with_opencv_on_demo_crops(small_store):
    from mepipe.featurestore import open_store

    store = open_store(small_store)
    crops = store.read("crops", store.samples["sample"].iloc[0])
    prev, nxt = clip_pairs(crops, (64, 64), max_pairs=2)
    _check(prev, nxt)


def test_bad_images_raise():
    with pytest.raises(ValueError, match="same shape"):
        tt.tvl1_batch(np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 17), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        tt.tvl1_batch(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        tt.tvl1_batch(np.zeros((1, 16, 16), np.int32), np.zeros((1, 16, 16), np.int32))


@pytest.mark.slow
def test_compiled_iteration_gives_the_same_flow():
    # torch.compile fuses the inner iteration (for GPUs); it must not change a bit (~1 min to compile on a CPU).
    prev, nxt = me_pairs(2, (32, 32), seed=11)
    params = TVL1Params(nscales=2, warps=2)
    np.testing.assert_array_equal(tt.tvl1_batch(prev, nxt, params, compile=True), tt.tvl1_batch(prev, nxt, params))
