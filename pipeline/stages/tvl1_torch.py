"""OpenCV's DualTVL1 optical flow, re-implemented in PyTorch for many pairs at once.

:func:`tvl1_batch` computes the same field as
``cv2.optflow.DualTVL1OpticalFlow_create(...).calc(prev, next, None)`` for N
pairs of (H, W) images in one call, on the CPU or a CUDA device. It follows
the CPU code path of ``modules/optflow/src/tvl1flow.cpp`` in opencv_contrib
(``OpticalFlowDual_TVL1::calc`` and ``procOneScale``; the same code as the
older ``modules/video/src/tvl1flow.cpp`` of opencv 3.x), which is Sánchez,
Meinhardt-Llopis and Facciolo's implementation of the Zach-Pock-Bischof
duality scheme, with these OpenCV choices (each checked against
opencv-contrib-python-headless 5.0.0, see ``tests/test_tvl1_torch.py``):

Input and pyramid (``calc``)
    - uint8 images are used as 0..255 floats; float images are multiplied by
      255 (``convertTo(..., I.depth() == CV_8U ? 1.0 : 255.0)``).
    - Scale s is ``resize(scale s-1, Size(), scaleStep, scaleStep,
      INTER_LINEAR)`` of the previous scale, not of the original, with no
      pre-smoothing (Sánchez smooths with a Gaussian first; OpenCV does not).
      The size is ``saturate_cast<int>(n * scaleStep)``: rounded to nearest,
      ties to even. Bilinear weights use OpenCV's pixel-centre mapping
      ``(d + 0.5) / scaleStep - 0.5`` with the fraction taken in double, and
      the border pixel replicated. At scaleStep = 0.5 OpenCV switches to
      INTER_AREA, which for a 2x reduction equals this bilinear formula.
    - A scale narrower or shorter than 16 px ends the pyramid there
      (``nscales = s``, which OpenCV also writes back into the solver object).
    - The flow starts at zero on the coarsest scale and is carried to the next
      finer one by ``resize(u, size, INTER_LINEAR)`` (bilinear with the actual
      size ratio) times ``1 / scaleStep`` (not times the size ratio, which
      differs from 1 / scaleStep after rounding). u3 (illumination, gamma > 0)
      is resized but not rescaled.

One scale (``procOneScale``)
    - The *second* image I1 is warped towards the first: ``I1w(x) = I1(x +
      u(x))``, and so are its derivatives, which are computed once per scale
      on the unwarped I1 by ``centeredGradient``: central differences
      ``0.5 (I(x+1) - I(x-1))``, and on the border rows/columns the one-sided
      difference *also halved*, ``0.5 (I(1) - I(0))``.
    - Warping is ``remap(..., INTER_CUBIC)`` with the default
      ``BORDER_CONSTANT`` 0: bicubic convolution with a = -0.75 where taps
      outside the image read 0. OpenCV 5 evaluates the weights at the exact
      float coordinate (OpenCV 4 quantised coordinates to 1/32 px; this module
      follows OpenCV 5).
    - ``grad = I1wx^2 + I1wy^2`` and ``rho_c = I1w - I1wx u1 - I1wy u2 - I0``
      are fixed for the warp (u at the start of the warp).
    - The thresholding step (``estimateV``) projects with ``l_t = lambda *
      theta`` and divides by grad only where ``grad > FLT_EPSILON``.
    - The dual variables p are zeroed once per scale, not per warp.
    - Divergence is the backward difference with ``div(0) = p(0)`` on the first
      row/column; the forward gradient of u is 0 on the last row/column.
    - ``p <- (p + taut Du) / (1 + taut |Du|)`` with ``taut = tau / theta``.
    - Median filtering (``medianBlur``, replicated border; 3 or 5 for float
      images) is applied to u1 and u2 at the start of every outer iteration,
      including the first one of each warp, when ``medianFiltering > 1``.

Stopping rule
    - The error is the *sum* over pixels of ``(u1 - u1_prev)^2 + (u2 -
      u2_prev)^2`` (plus the u3 term with gamma) of the last ``estimateU``,
      compared with ``epsilon^2 * H * W`` of the current scale: epsilon is an
      RMS per-pixel update, compared squared. Both the inner and the outer loop
      test ``error > scaledEpsilon``; the error is reset to FLT_MAX at each
      warp, so every warp runs at least one iteration, and the dual update
      still follows the ``estimateU`` that met the threshold.

Batching: every pair follows this schedule separately. All pairs of a call
run in lockstep over (scale, warp, outer, inner iteration); a pair whose error
falls to the threshold is frozen by a mask, so it stops changing while the
others iterate (and is dropped from the working batch once finished pairs
are a quarter of it, to save their cost); every pair starts again at the
next warp.

Numerics: float32 throughout (the bicubic weights are evaluated in float64
and rounded), with the operations in OpenCV's order, so that a single warp
is bit-identical to OpenCV's (see the tests). What differs:

- OpenCV 5's bicubic weights differ from both a float32 and a float64
  evaluation of the same polynomial in the last bit (measured; the code
  that computes them was not found in OpenCV's sources). From the second
  warp on, these ~1e-7 relative differences are amplified by the stopping
  rule (a pair may stop an iteration earlier or later) and the median
  filter: on 64-300 px face crops the flows end up a mean 0.0002-0.015 px
  apart, with under 0.2 % of pixels more than 0.5 px apart
  (``benchmarks/README.md``).
- The error is summed in order, in float, as OpenCV does, on the CPU
  (``cumsum``); on CUDA the scan sums in another order.
- OpenCV rounds its ``hypot`` of the dual step to float from what may be a
  double call; torch's is a float one (no difference seen in the one-warp
  tests, which run it ~100 times per pixel).
- OpenCV writes a shortened pyramid back into the solver's ``nscales``, so a
  reused solver then does fewer scales on larger images; this solver keeps
  no state between calls (mepipe reuses solvers only for same-size pairs,
  where that makes no difference).
- OpenCV 4 quantised the remap coordinates to 1/32 px; against OpenCV 4 the
  flows would differ more (not measured: only OpenCV 5 is installed here).

References
----------
.. [1] C. Zach, T. Pock, H. Bischof, "A duality based approach for realtime
   TV-L1 optical flow", DAGM 2007, LNCS 4713, pp. 214-223.
   https://doi.org/10.1007/978-3-540-74936-3_22
.. [2] J. Sánchez Pérez, E. Meinhardt-Llopis, G. Facciolo, "TV-L1 optical
   flow estimation", Image Processing On Line 3 (2013), pp. 137-150.
   https://doi.org/10.5201/ipol.2013.26
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .flow import TVL1Params

MIN_PYRAMID_SIDE = 16
"""OpenCV stops the pyramid before a scale narrower or shorter than this (``calc``)."""

_CUBIC_A = -0.75
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(H, W) of every scale OpenCV uses for an image of this size, finest first."""
    sizes = [(int(height), int(width))]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        size = (_round_half_even(h * params.scale_step), _round_half_even(w * params.scale_step))
        if size[0] < MIN_PYRAMID_SIDE or size[1] < MIN_PYRAMID_SIDE:
            break
        sizes.append(size)
    return sizes


def tvl1_batch(prev, next, params: TVL1Params | None = None, device: str | torch.device | None = None,
               max_batch: int | None = None, compile: bool = False) -> np.ndarray:
    """TV-L1 flow of N image pairs, as OpenCV's DualTVL1 computes each of them.

    Parameters
    ----------
    prev, next : array or tensor, shape (N, H, W)
        Greyscale images: uint8 (0..255) or float (0..1, OpenCV's scale for
        float input). Pair i is ``prev[i] -> next[i]``.
    params : TVL1Params, optional
        Solver parameters (OpenCV's defaults when omitted).
    device : str or torch.device, optional
        Where to compute; default: the CPU.
    max_batch : int, optional
        Most pairs solved at once (to bound memory); default: all.
    compile : bool
        Fuse the inner iteration with ``torch.compile`` (same results; pays
        off on a GPU, where the ~80 small kernels of an eager iteration are
        launch- and memory-bound; on a CPU it gains ~25 % after a minute of
        compilation).

    Returns
    -------
    ndarray, shape (N, 2, H, W), float32
        (u, v) per pair: ``next[y + v, x + u] ≈ prev[y, x]``.
    """
    params = params or TVL1Params()
    device = torch.device(device or "cpu")
    i0, i1 = _as_images(prev, "prev", device), _as_images(next, "next", device)
    if i0.shape != i1.shape:
        raise ValueError(f"prev and next must have the same shape, got {tuple(i0.shape)} and {tuple(i1.shape)}")
    n, h, w = i0.shape
    if min(h, w) < 3:
        raise ValueError(f"images must be at least 3x3, got {h}x{w}")
    step = max_batch or max(n, 1)
    iteration = torch.compile(_iteration, dynamic=True) if compile else _iteration
    out = [_solve(i0[k:k + step], i1[k:k + step], params, iteration) for k in range(0, n, step)]
    flow = torch.cat(out) if out else i0.new_zeros((0, 2, h, w))
    return flow.cpu().numpy()


@dataclass(frozen=True)
class _Consts:
    """Scalars as OpenCV casts them to float (``static_cast<float>``)."""

    l_t: float
    taut: float
    theta: float
    gamma: float

    @classmethod
    def of(cls, p: TVL1Params) -> "_Consts":
        f32 = lambda x: float(np.float32(x))  # noqa: E731
        return cls(f32(p.lambda_ * p.theta), f32(p.tau / p.theta), f32(p.theta), f32(p.gamma))


def _solve(i0: torch.Tensor, i1: torch.Tensor, params: TVL1Params, iteration) -> torch.Tensor:
    sizes = pyramid_sizes(i0.shape[1], i0.shape[2], params)
    pyr0, pyr1 = [i0], [i1]
    for size in sizes[1:]:
        pyr0.append(_resize_by_factor(pyr0[-1], size, params.scale_step))
        pyr1.append(_resize_by_factor(pyr1[-1], size, params.scale_step))
    use_gamma = params.gamma != 0
    n, (h, w) = i0.shape[0], sizes[-1]
    u1 = i0.new_zeros((n, h, w))
    u2 = i0.new_zeros((n, h, w))
    u3 = i0.new_zeros((n, h, w)) if use_gamma else None
    inv_step = float(np.float32(1.0 / params.scale_step))
    for s in range(len(sizes) - 1, -1, -1):
        u1, u2, u3 = _one_scale(pyr0[s], pyr1[s], u1, u2, u3, params, iteration)
        if s == 0:
            break
        u1 = _resize_to(u1, sizes[s - 1]) * inv_step
        u2 = _resize_to(u2, sizes[s - 1]) * inv_step
        if use_gamma:
            u3 = _resize_to(u3, sizes[s - 1])
    return torch.stack([u1, u2], dim=1)


def _one_scale(i0, i1, u1, u2, u3, params: TVL1Params, iteration):
    """``procOneScale`` for a batch: every warp, with per-pair stopping."""
    n, h, w = i0.shape
    c = _Consts.of(params)
    use_gamma = u3 is not None
    scaled_eps = float(np.float32(params.epsilon * params.epsilon * h * w))
    i1x, i1y = _centered_gradient(i1)
    grid_y, grid_x = torch.meshgrid(torch.arange(h, dtype=i0.dtype, device=i0.device),
                                    torch.arange(w, dtype=i0.dtype, device=i0.device), indexing="ij")
    # The iterates of every pair, (N, K, H, W): u1, u2, (u3), then the dual p11, p12, p21, p22, (p31, p32).
    flows = [u1, u2] + ([u3] if use_gamma else [])
    state = torch.cat([torch.stack(flows, dim=1), i0.new_zeros((n, 2 * len(flows), h, w))], dim=1)
    for _ in range(params.warps):
        warped = _remap_cubic(torch.stack([i1, i1x, i1y], dim=1), grid_x + state[:, 0], grid_y + state[:, 1])
        i1w, i1wx, i1wy = warped.unbind(1)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * state[:, 0] - i1wy * state[:, 1] - i0
        data = torch.stack([i1wx, i1wy, rho_c, grad, c.l_t * grad], dim=1)
        _iterate_warp(state, data, params, c, scaled_eps, use_gamma, iteration)
    return state[:, 0], state[:, 1], state[:, 2] if use_gamma else None


def _iterate_warp(state: torch.Tensor, data: torch.Tensor, params: TVL1Params, c: "_Consts",
                  scaled_eps: float, use_gamma: bool, iteration) -> None:
    """The outer and inner iterations of one warp, in place on ``state``.

    Every pair runs until its own error is at most ``scaled_eps`` (OpenCV's
    test of both loops) or the iteration caps. A pair that stops is frozen
    by a mask while the others iterate; frozen pairs are written back and
    dropped from the working batch at the next outer iteration, or as soon
    as they are a quarter of it, so that they cost little.
    """
    live = torch.arange(state.shape[0], device=state.device)
    x, d = state, data
    active = torch.ones(len(live), dtype=torch.bool, device=state.device)
    n_active = len(live)
    for _ in range(params.outer_iterations):
        if n_active < len(live):
            live, x, d, active = _drop_finished(state, live, x, d, active)
        if params.median_filtering > 1:
            x = torch.cat([_median(x[:, :2], params.median_filtering), x[:, 2:]], dim=1)
        for _ in range(params.inner_iterations):
            new, error = iteration(x, d, c, use_gamma)
            x = new if n_active == len(live) else torch.where(active.view(-1, 1, 1, 1), new, x)
            active = active & (error > scaled_eps)
            n_active = int(active.sum())
            if n_active == 0:
                state[live] = x
                return
            if 4 * (len(live) - n_active) >= len(live):
                live, x, d, active = _drop_finished(state, live, x, d, active)
    state[live] = x


def _drop_finished(state, live, x, d, active):
    """Write the finished pairs back into ``state`` and keep the active ones."""
    done = ~active
    state[live[done]] = x[done]
    return live[active], x[active], d[active], active[active]


def _iteration(x: torch.Tensor, d: torch.Tensor, c: "_Consts", use_gamma: bool):
    """One inner iteration (``estimateV``, ``divergence``, ``estimateU``, ``estimateDualVariables``).

    x: (N, K, H, W) iterates; d: (N, 5, H, W) warp data (I1wx, I1wy, rho_c,
    grad, l_t * grad). Returns the new iterates and each pair's error, (N,).
    """
    k = 3 if use_gamma else 2
    i1wx, i1wy, rho_c, grad, lt_grad = d.unbind(1)
    u1, u2 = x[:, 0], x[:, 1]
    rho = rho_c + (i1wx * u1 + i1wy * u2)
    if use_gamma:
        rho = rho + c.gamma * x[:, 2]
    fi = torch.where(grad > _FLT_EPSILON, -rho / grad, 0.0)
    fi = torch.where(rho < -lt_grad, c.l_t, torch.where(rho > lt_grad, -c.l_t, fi))
    new = [(u1 + fi * i1wx) + c.theta * _divergence(x[:, k], x[:, k + 1]),
           (u2 + fi * i1wy) + c.theta * _divergence(x[:, k + 2], x[:, k + 3])]
    if use_gamma:
        new.append((x[:, 2] + fi * c.gamma) + c.theta * _divergence(x[:, k + 4], x[:, k + 5]))
    err = None
    for j, u in enumerate(new):
        delta = u - x[:, j]
        err = delta * delta if err is None else err + delta * delta
    # OpenCV accumulates the error pixel by pixel in float: a sequential sum.
    error = err.flatten(1).cumsum(1)[:, -1]
    dual = [p for j, u in enumerate(new) for p in _dual_update(x[:, k + 2 * j], x[:, k + 2 * j + 1], u, c.taut)]
    return torch.stack(new + dual, dim=1), error


def _dual_update(p1, p2, u, taut: float):
    ux, uy = _forward_gradient(u)
    ng = 1.0 + taut * torch.hypot(ux, uy)
    return (p1 + taut * ux) / ng, (p2 + taut * uy) / ng


def _centered_gradient(img: torch.Tensor):
    """OpenCV's ``centeredGradient``: central differences, halved one-sided ones on the border."""
    dx = torch.empty_like(img)
    dy = torch.empty_like(img)
    dx[..., 1:-1] = 0.5 * (img[..., 2:] - img[..., :-2])
    dx[..., 0] = 0.5 * (img[..., 1] - img[..., 0])
    dx[..., -1] = 0.5 * (img[..., -1] - img[..., -2])
    dy[..., 1:-1, :] = 0.5 * (img[..., 2:, :] - img[..., :-2, :])
    dy[..., 0, :] = 0.5 * (img[..., 1, :] - img[..., 0, :])
    dy[..., -1, :] = 0.5 * (img[..., -1, :] - img[..., -2, :])
    return dx, dy


def _forward_gradient(u: torch.Tensor):
    """OpenCV's ``forwardGradient``: forward differences, 0 on the last column/row."""
    dx = torch.zeros_like(u)
    dy = torch.zeros_like(u)
    dx[..., :-1] = u[..., 1:] - u[..., :-1]
    dy[..., :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    return dx, dy


def _divergence(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``divergence``: backward differences with the first row/column taken as is."""
    div = torch.empty_like(v1)
    div[..., 1:, 1:] = (v1[..., 1:, 1:] - v1[..., 1:, :-1]) + (v2[..., 1:, 1:] - v2[..., :-1, 1:])
    div[..., 0, 1:] = v1[..., 0, 1:] - v1[..., 0, :-1] + v2[..., 0, 1:]
    div[..., 1:, 0] = v1[..., 1:, 0] + v2[..., 1:, 0] - v2[..., :-1, 0]
    div[..., 0, 0] = v1[..., 0, 0] + v2[..., 0, 0]
    return div


def _median(u: torch.Tensor, k: int) -> torch.Tensor:
    """``medianBlur`` of float fields (k = 3 or 5) over the last two dims, replicated border.

    A selection network of elementwise min/max over the k*k shifted copies:
    exact (a median is one of the inputs) and several times faster than
    ``torch.median`` over unfolded windows.
    """
    r = k // 2
    *lead, h, w = u.shape
    padded = F.pad(u.reshape(-1, 1, h, w), (r, r, r, r), mode="replicate").squeeze(1)
    values = {i * k + j: padded[:, i:i + h, j:j + w].contiguous() for i in range(k) for j in range(k)}
    ops, out, last_use = _selection_network(k * k)
    for step, (node, take_min, a, b) in enumerate(ops):
        values[node] = torch.minimum(values[a], values[b]) if take_min else torch.maximum(values[a], values[b])
        for operand in (a, b):
            if last_use[operand] == step:
                del values[operand]
    return values[out].reshape(u.shape)


def _selection_network(n: int):
    """Min/max operations that leave the median of n inputs (n odd) in one node.

    Batcher's odd-even merge sort on the next power of two, with the padding
    wires at +inf folded away and every operation the median does not depend
    on dropped (202 operations for n = 25, 40 for n = 9). Returns
    ``(ops, out, last_use)``: ops are ``(node, take_min, a, b)`` in order,
    ``out`` the median's node and ``last_use`` the last op reading each node.
    """
    size = 1 << (n - 1).bit_length()
    inf = -1
    wires = list(range(n)) + [inf] * (size - n)
    nodes = []
    for i, j in _batcher_comparators(size):
        a, b = wires[i], wires[j]
        if b == inf:
            continue
        if a == inf:
            wires[i], wires[j] = b, inf
            continue
        nodes += [(True, a, b), (False, a, b)]
        wires[i], wires[j] = n + len(nodes) - 2, n + len(nodes) - 1
    out = wires[n // 2]
    needed = {out}
    for k in range(len(nodes) - 1, -1, -1):
        if n + k in needed:
            needed.update(nodes[k][1:])
    ops = [(n + k, *nodes[k]) for k in range(len(nodes)) if n + k in needed]
    last_use = {}
    for step, (_, _, a, b) in enumerate(ops):
        last_use[a] = last_use[b] = step
    return ops, out, last_use


def _batcher_comparators(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort of n = 2^k wires."""
    comparators = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comparators.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return comparators


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """Bicubic convolution weights (a = -0.75) of the 4 taps for fraction t, (..., 4), float32.

    Evaluated in float64 and rounded: closer to OpenCV 5's weights (which are
    neither its float formula nor this one to the last bit) than float32.
    """
    a = _CUBIC_A
    t = t.double()
    x = t + 1
    c0 = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    c1 = ((a + 2) * t - (a + 3)) * t * t + 1
    s = 1 - t
    c2 = ((a + 2) * s - (a + 3)) * s * s + 1
    c3 = 1 - c0 - c1 - c2
    return torch.stack([c0, c1, c2, c3], dim=-1).float()


def _remap_cubic(img: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """``remap(img, map_x, map_y, INTER_CUBIC)`` with OpenCV's default border (constant 0).

    img: (N, C, H, W); maps: (N, H, W) source coordinates (x along W).
    """
    n, ch, h, w = img.shape
    fx, fy = torch.floor(map_x), torch.floor(map_y)
    wx, wy = _cubic_weights(map_x - fx), _cubic_weights(map_y - fy)
    # One zero pixel around the image: taps outside it are clamped onto that ring.
    padded = F.pad(img, (1, 1, 1, 1)).reshape(n, ch, (h + 2) * (w + 2))
    x0 = fx.long() - 1
    y0 = fy.long() - 1
    cols = [(x0 + j).clamp(-1, w) + 1 for j in range(4)]
    out = None
    for i in range(4):
        row_base = ((y0 + i).clamp(-1, h) + 1) * (w + 2)
        row = None
        for j in range(4):
            idx = (row_base + cols[j]).reshape(n, 1, h * w).expand(n, ch, h * w)
            tap = padded.gather(2, idx).reshape(n, ch, h, w) * wx[..., j].unsqueeze(1)
            row = tap if row is None else row + tap
        term = row * wy[..., i].unsqueeze(1)
        out = term if out is None else out + term
    return out


def _linear_taps(src: int, dst: int, scale: float, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of OpenCV's bilinear resize along one axis.

    ``scale`` is OpenCV's ``scale_x`` (source pixels per destination pixel); the
    fraction is taken in double before the weights are cast to float.
    """
    pos = (np.arange(dst) + 0.5) * scale - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64)
    low, high = lo < 0, lo >= src - 1
    frac[low | high] = 0.0
    lo = np.where(low, 0, np.where(high, src - 1, lo))
    hi = np.minimum(lo + 1, src - 1)
    frac32 = frac.astype(np.float32)
    to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return to(lo), to(hi), to(np.stack([np.float32(1) - frac32, frac32]))


def _resize(img: torch.Tensor, size: tuple[int, int], scale_y: float, scale_x: float) -> torch.Tensor:
    h, w = img.shape[-2:]
    if (h, w) == tuple(size):
        return img.clone()  # cv::resize copies when the size does not change
    x0, x1, ax = _linear_taps(w, size[1], scale_x, img.device)
    y0, y1, ay = _linear_taps(h, size[0], scale_y, img.device)
    rows = img[..., x0] * ax[0] + img[..., x1] * ax[1]
    return rows[..., y0, :] * ay[0].unsqueeze(1) + rows[..., y1, :] * ay[1].unsqueeze(1)


def _resize_by_factor(img: torch.Tensor, size: tuple[int, int], factor: float) -> torch.Tensor:
    """``resize(img, Size(), factor, factor, INTER_LINEAR)``: mapping by the factor, not the sizes."""
    return _resize(img, size, 1.0 / factor, 1.0 / factor)


def _resize_to(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``resize(img, size, 0, 0, INTER_LINEAR)``: mapping by the size ratio."""
    h, w = img.shape[-2:]
    return _resize(img, size, 1.0 / (size[0] / h), 1.0 / (size[1] / w))


def _as_images(images, name: str, device: torch.device) -> torch.Tensor:
    """(N, H, W) float32 on ``device`` on OpenCV's 0..255 scale."""
    if isinstance(images, torch.Tensor):
        t = images
    else:
        arr = np.asarray(images)
        if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{name} must be uint8 or float (0..1), got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dim() != 3:
        raise ValueError(f"{name} must be a stack of greyscale images (N, H, W), got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.to(device=device, dtype=torch.float32)
    if not t.dtype.is_floating_point:
        raise ValueError(f"{name} must be uint8 or float (0..1), got dtype {t.dtype}")
    return t.to(device=device, dtype=torch.float32) * 255.0


def _round_half_even(x: float) -> int:
    """``saturate_cast<int>(double)``: round to nearest, ties to even."""
    return int(round(x))


__all__: Sequence[str] = ("MIN_PYRAMID_SIDE", "pyramid_sizes", "tvl1_batch")
