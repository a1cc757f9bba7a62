"""Eulerian video magnification of aligned face crops.

Follows Xia et al. 2019 (§III-B2), who use Wu et al.'s 2012 Laplacian-pyramid
method with an IIR temporal band-pass, and Wu et al.'s reference code
(``amplify_spatial_lpyr_temporal_iir.m``) for the details the paper leaves out:

1. Build a Laplacian pyramid of every frame (5-tap binomial kernel, as many
   levels as fit by default).
2. Band-pass every level in time with the difference of two first-order IIR
   low-passes, ``band = lowpass(r1) - lowpass(r2)``, where
   ``lowpass(r)[t] = (1 - r) * lowpass(r)[t - 1] + r * pyr[t]`` and both
   start at the first frame's pyramid (so the first frame is unchanged).
3. Multiply each level's band by its own factor: α on coarse levels, the
   bound α_c = λ / (8 δ) − 1 on fine levels whose representative wavelength
   λ is below the cut-off λ_c, and 0 on the finest level and on the
   low-pass residual. Xia use min(α, α_c) (§IV-A); Wu's code multiplies
   α_c by an exaggeration factor of 2, which doubles the gain of the fine
   levels (``MagnifyParams.exaggeration``: 1 = Xia, the default; 2 = Wu's
   code).
4. Add the reconstructed amplified bands to the frame and clip to uint8.

For colour clips the work is done in YIQ and the chroma channels' amplified
bands are attenuated. Every step is linear up to the final clip, so the
output of a frame only depends on it and the frames before it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mepipe.featurestore import features

from .. import figures
from .cost import Cost, n_frames
from .registry import Figure, StageOutput, register_stage

VERSION = "1"
"""Bump when the output of any kernel here changes for the same input and parameters."""

_BINOMIAL_TAPS = 5
"""Length of the pyramid's binomial kernel [1 4 6 4 1] / 16 (cv2.pyrDown / pyrUp)."""

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], dtype=np.float64)
"""NTSC RGB→YIQ, as MATLAB's ``rgb2ntsc`` used by Wu et al.'s code."""

XIA_ALPHAS = tuple(float(a) for a in range(5, 15))
"""Xia et al.'s amplification factors for training data, 5, 6, ..., 14 (§III-E)."""


@dataclass(frozen=True)
class MagnifyParams:
    """Parameters of Eulerian video magnification (defaults: Xia et al. 2019).

    Attributes
    ----------
    alphas : tuple of float
        Amplification factors of the ``magnified_small`` clips (and of
        STRCN-G's magnified flows): Xia et al. augment training data with 5,
        6, ..., 14 (the default).
    test_alpha : float
        The α of test inputs, heat maps, the apex estimate and the
        ``magnified`` clip (Xia: 8); one of ``alphas``.
    r1, r2 : float
        Coefficients of the two first-order IIR low-passes whose difference is
        the temporal band-pass, ``0 < r2 < r1 <= 1`` (Xia's "cut-offs" 0.4 and
        0.05, Wu's ``r1``, ``r2``).
    lambda_c : float
        Cut-off spatial wavelength in pixels; levels with shorter
        representative wavelengths get the attenuated factor α_c.
    n_levels : int or None
        Pyramid levels including the low-pass residual; None = as many as fit
        (the smaller side is halved while it is >= 5 px), as Wu's ``'auto'``.
    exaggeration : float
        Factor on α_c. 1 is Xia's ``min(α, α_c)``; 2 is Wu's code's
        ``exaggeration_factor``, which doubles the fine levels' gain.
    wavelength_divisor : float
        The coarsest level's representative wavelength is the frame diagonal
        divided by this (Wu's experimental constant 3); it halves per level.
    chroma_attenuation : float
        Factor on the amplified I and Q (YIQ) bands of colour clips.
    size : (int, int)
        (W, H) of the ``magnified`` feature (128×128, ``test_alpha`` only).
    small_size : (int, int)
        (W, H) of the ``magnified_small`` feature, STRCN-A's input (Xia: 64×48).
    channel_order : {"BGR", "RGB"}
        Channel order of colour clips (OpenCV decodes to BGR).

    References
    ----------
    .. [1] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, IEEE Trans. Multimedia
       22(3), 2020. https://doi.org/10.1109/TMM.2019.2931351
    .. [2] H.-Y. Wu, M. Rubinstein, E. Shih, J. Guttag, F. Durand, W. Freeman,
       "Eulerian video magnification for revealing subtle changes in the
       world", ACM Trans. Graph. 31(4), 2012. https://doi.org/10.1145/2185520.2185561
    """

    alphas: tuple[float, ...] = XIA_ALPHAS
    test_alpha: float = 8.0
    r1: float = 0.4
    r2: float = 0.05
    lambda_c: float = 16.0
    n_levels: int | None = None
    exaggeration: float = 1.0
    wavelength_divisor: float = 3.0
    chroma_attenuation: float = 0.1
    size: tuple[int, int] = (128, 128)
    small_size: tuple[int, int] = (64, 48)
    channel_order: str = "RGB"

    def __post_init__(self):
        alphas = tuple(float(a) for a in np.atleast_1d(self.alphas))
        if not alphas or any(not a >= 0 for a in alphas):
            raise ValueError(f"MagnifyParams.alphas must be a non-empty tuple of values >= 0, got {self.alphas!r}")
        object.__setattr__(self, "alphas", alphas)
        if float(self.test_alpha) not in alphas:
            raise ValueError(f"MagnifyParams.test_alpha={self.test_alpha!r} must be one of alphas {alphas}; "
                             "add it to alphas or set test_alpha")
        object.__setattr__(self, "test_alpha", float(self.test_alpha))
        if not 0 < self.r2 < self.r1 <= 1:
            raise ValueError(f"MagnifyParams needs 0 < r2 < r1 <= 1, got r1={self.r1!r}, r2={self.r2!r}")
        for name in ("lambda_c", "exaggeration", "wavelength_divisor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MagnifyParams.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.chroma_attenuation <= 1:
            raise ValueError(f"MagnifyParams.chroma_attenuation must be in [0, 1], got {self.chroma_attenuation!r}")
        if self.n_levels is not None and not (isinstance(self.n_levels, int) and self.n_levels >= 3):
            raise ValueError(f"MagnifyParams.n_levels must be None or an int >= 3, got {self.n_levels!r}")
        for name in ("size", "small_size"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or min(value) < _BINOMIAL_TAPS * 2:
                raise ValueError(f"MagnifyParams.{name} must be a (W, H) pair of at least 10 px, got {value!r}")
            object.__setattr__(self, name, (int(value[0]), int(value[1])))
        if self.channel_order not in ("BGR", "RGB"):
            raise ValueError(f"MagnifyParams.channel_order must be 'BGR' or 'RGB', got {self.channel_order!r}")

    @property
    def test_index(self) -> int:
        """Position of ``test_alpha`` in ``alphas`` (along the ``alpha`` dim of ``magnified_small``)."""
        return self.alphas.index(self.test_alpha)

    @property
    def sizes(self) -> tuple[tuple[int, int], ...]:
        """The (W, H) output sizes :func:`magnify_resized` renders: ``small_size`` and ``size``."""
        return tuple(dict.fromkeys((self.small_size, self.size)))


def level_alphas(shape: tuple[int, int], alpha: float, params: MagnifyParams | None = None) -> tuple[float, ...]:
    """Amplification factor of every pyramid level, finest first (Wu's rule).

    Parameters
    ----------
    shape : (int, int)
        Frame (H, W).
    alpha : float
        Amplification factor α.
    params : MagnifyParams, optional

    Returns
    -------
    tuple of float
        One factor per level, the low-pass residual last: 0 for the finest
        level and the residual, else ``min(α, max(0, e * (λ / (8 δ) - 1)))``
        with δ = λ_c / (8 (1 + α)), e the exaggeration factor and λ the
        level's representative wavelength (frame diagonal / divisor at the
        residual, halving per finer level). The clip at 0 is ours: Wu's code
        would invert bands whose λ is below λ_c / (1 + α).

    References
    ----------
    .. [1] H.-Y. Wu et al., ACM Trans. Graph. 31(4), 2012, §5 and Fig. 6.
       https://doi.org/10.1145/2185520.2185561
    """
    params = params or MagnifyParams()
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    n = _n_levels(shape, params)
    delta = params.lambda_c / 8.0 / (1.0 + alpha)
    wavelength = float(np.hypot(*shape)) / params.wavelength_divisor
    factors = []
    for level in range(n - 1, -1, -1):
        bound = params.exaggeration * (wavelength / delta / 8.0 - 1.0)
        factors.append(0.0 if level in (0, n - 1) else min(float(alpha), max(0.0, bound)))
        wavelength /= 2.0
    return tuple(reversed(factors))


def magnify(clip: np.ndarray, alpha: float, params: MagnifyParams | None = None) -> np.ndarray:
    """Magnify the temporal changes of one clip by α.

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C), uint8
        Aligned frames, greyscale or colour (C = 1 or 3, order
        ``params.channel_order``); H, W >= 10.
    alpha : float
        Amplification factor α (>= 0).
    params : MagnifyParams, optional
        Filter and pyramid parameters (``alphas`` and the sizes are not used).

    Returns
    -------
    ndarray, same shape as ``clip``, uint8
        Magnified frames; frame 0 and static clips are returned unchanged.

    References
    ----------
    .. [1] Z. Xia et al., IEEE Trans. Multimedia 22(3), 2020, §III-B2.
       https://doi.org/10.1109/TMM.2019.2931351
    .. [2] H.-Y. Wu et al., ACM Trans. Graph. 31(4), 2012.
       https://doi.org/10.1145/2185520.2185561
    """
    params = params or MagnifyParams()
    clip = _check_clip(clip)
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    work = _to_working(clip, params)
    bands = _bandpass_pyramid(work, _n_levels(clip.shape[1:3], params), params)
    return _render(clip, bands, level_alphas(clip.shape[1:3], alpha, params), params)


def magnify_resized(crops: np.ndarray,
                    params: MagnifyParams | None = None) -> dict[tuple[float, tuple[int, int]], np.ndarray]:
    """Resize crops to every output size, then magnify with every α.

    Parameters
    ----------
    crops : ndarray, shape (T, S, S) or (T, S, S, C), uint8
        Aligned face crops.
    params : MagnifyParams, optional
        ``size``, ``small_size`` and ``alphas`` select the outputs.

    Returns
    -------
    dict
        ``{(alpha, (W, H)): ndarray (T, H, W) or (T, H, W, C), uint8}`` for
        every α in ``params.alphas`` and (W, H) in ``params.sizes``. The
        pyramid and temporal filter are computed once per size.
    """
    params = params or MagnifyParams()
    out = {}
    for size in params.sizes:
        clips = magnify_sized(crops, size, params.alphas, params)
        out.update({(alpha, size): clips[:, k] for k, alpha in enumerate(params.alphas)})
    return out


def magnify_sized(crops: np.ndarray, size: tuple[int, int], alphas: tuple[float, ...],
                  params: MagnifyParams | None = None) -> np.ndarray:
    """Resize crops to ``size`` (W, H) and magnify them with each α.

    Parameters
    ----------
    crops : ndarray, shape (T, S, S) or (T, S, S, C), uint8
        Aligned face crops.
    size : (int, int)
        Output (W, H).
    alphas : tuple of float
        Amplification factors; the pyramid and temporal filter are computed once.
    params : MagnifyParams, optional
        Filter and pyramid parameters (its own ``alphas`` and sizes are not used).

    Returns
    -------
    ndarray, shape (T, len(alphas), H, W) or (T, len(alphas), H, W, C), uint8
    """
    params = params or MagnifyParams()
    clip = _resize(_check_clip(crops, min_side=1), size)
    bands = _bandpass_pyramid(_to_working(clip, params), _n_levels(clip.shape[1:3], params), params)
    return np.stack([_render(clip, bands, level_alphas(clip.shape[1:3], a, params), params) for a in alphas],
                    axis=1)


def magnify_frames(clip: np.ndarray, alphas: tuple[float, ...], indices: tuple[int, ...],
                   params: MagnifyParams | None = None) -> np.ndarray:
    """Some frames of a clip magnified with each of several α.

    The temporal filter runs over the whole clip, so frame t is exactly
    ``magnify(clip, α)[t]``; only the requested frames are reconstructed,
    which is what a consumer of two frames (onset and apex) needs.

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C), uint8
        Aligned frames (H, W >= 10).
    alphas : tuple of float
        Amplification factors (>= 0).
    indices : tuple of int
        Frames to render, 0 <= index < T.
    params : MagnifyParams, optional
        Filter and pyramid parameters (``alphas`` and the sizes are not used).

    Returns
    -------
    ndarray, shape (len(alphas), len(indices)) + clip.shape[1:], uint8
    """
    params = params or MagnifyParams()
    clip = _check_clip(clip)
    indices = tuple(int(i) for i in indices)
    if any(not 0 <= i < len(clip) for i in indices):
        raise ValueError(f"frame indices {indices} must lie in 0..{len(clip) - 1}")
    if any(not a >= 0 for a in alphas):
        raise ValueError(f"alphas must be >= 0, got {alphas!r}")
    bands = _bandpass_pyramid(_to_working(clip, params), _n_levels(clip.shape[1:3], params), params)
    return np.stack([_render(clip, bands, level_alphas(clip.shape[1:3], a, params), params, indices)
                     for a in alphas])


def _n_levels(shape: tuple[int, int], params: MagnifyParams) -> int:
    side, fit = min(shape[:2]), 1
    while side >= _BINOMIAL_TAPS:
        side //= 2
        fit += 1
    if params.n_levels is None:
        return fit
    if params.n_levels > fit:
        raise ValueError(f"MagnifyParams.n_levels={params.n_levels} does not fit frames of {shape[0]}x{shape[1]} "
                         f"(H x W); at most {fit} levels fit, or use n_levels=None")
    return params.n_levels


def _check_clip(clip: np.ndarray, min_side: int = 2 * _BINOMIAL_TAPS) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim not in (3, 4) or (clip.ndim == 4 and clip.shape[-1] not in (1, 3)):
        raise ValueError(f"clip must have shape (T, H, W) or (T, H, W, C) with C in (1, 3), got {clip.shape}")
    if clip.dtype != np.uint8:
        raise ValueError(f"clip must be uint8, got dtype {clip.dtype}")
    if len(clip) < 1 or min(clip.shape[1:3]) < min_side:
        raise ValueError(f"clip must have >= 1 frame of at least {min_side}x{min_side} px, got shape {clip.shape}")
    return clip


def _resize(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip]
    return np.stack(frames).reshape((len(clip), size[1], size[0]) + clip.shape[3:])


def _yiq_matrix(params: MagnifyParams) -> np.ndarray:
    """3x3 matrix from the clip's channel order to YIQ."""
    return _RGB_TO_YIQ[:, ::-1] if params.channel_order == "BGR" else _RGB_TO_YIQ


def _mix_channels(frames: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``matrix @ pixel`` for every pixel of (..., 3) frames, as one BLAS call."""
    flat = frames.reshape(-1, 3) @ matrix.T.astype(np.float32)
    return flat.reshape(frames.shape)


def _to_working(clip: np.ndarray, params: MagnifyParams) -> np.ndarray:
    """float32 frames the filter runs on: grey as is, colour in YIQ."""
    frames = clip.astype(np.float32)
    if clip.ndim == 4 and clip.shape[-1] == 1:
        frames = frames[..., 0]
    elif clip.ndim == 4:
        frames = _mix_channels(frames, _yiq_matrix(params))
    return frames


def _laplacian_pyramid(frame: np.ndarray, n_levels: int) -> list[np.ndarray]:
    levels, current = [], frame
    for _ in range(n_levels - 1):
        down = cv2.pyrDown(current)
        levels.append(current - cv2.pyrUp(down, dstsize=current.shape[1::-1]))
        current = down
    levels.append(current)
    return levels


def _bandpass_pyramid(frames: np.ndarray, n_levels: int, params: MagnifyParams) -> list[np.ndarray]:
    """Temporally band-passed Laplacian levels: list of (T, h_l, w_l[, C]) float32."""
    pyramids = [_laplacian_pyramid(f, n_levels) for f in frames]
    return [_iir_bandpass(np.stack([p[level] for p in pyramids]), params) for level in range(n_levels)]


def _iir_bandpass(x: np.ndarray, params: MagnifyParams) -> np.ndarray:
    """lowpass(r1) - lowpass(r2) along axis 0, both low-passes starting at x[0].

    ``lowpass += r * (x[t] - lowpass)`` is Wu's ``(1 - r) * lowpass + r * x[t]``;
    a loop over frames is ~50x faster here than ``scipy.signal.lfilter``.
    """
    low1 = x[0].astype(np.float32, copy=True)
    low2 = low1.copy()
    band = np.zeros(x.shape, dtype=np.float32)
    for t in range(1, len(x)):
        low1 += params.r1 * (x[t] - low1)
        low2 += params.r2 * (x[t] - low2)
        np.subtract(low1, low2, out=band[t])
    return band


def _render(clip: np.ndarray, bands: list[np.ndarray], factors: tuple[float, ...],
            params: MagnifyParams, indices: tuple[int, ...] | None = None) -> np.ndarray:
    """Add the amplified, reconstructed bands to the clip (or its frames ``indices``) and clip to uint8."""
    frames = clip if indices is None else clip[list(indices)]
    times = range(len(clip)) if indices is None else indices
    active = [level for level, factor in enumerate(factors) if factor != 0.0]
    if not active:
        return frames.copy()
    coarsest = max(active)
    added = np.empty((len(frames),) + bands[0].shape[1:], dtype=np.float32)
    for k, t in enumerate(times):
        acc = factors[coarsest] * bands[coarsest][t]
        for level in range(coarsest - 1, -1, -1):
            acc = cv2.pyrUp(acc, dstsize=bands[level].shape[2:0:-1]).reshape(bands[level].shape[1:])
            if factors[level] != 0.0:
                acc += factors[level] * bands[level][t]
        added[k] = acc
    if clip.ndim == 4 and clip.shape[-1] == 3:
        chroma = np.array([1.0, params.chroma_attenuation, params.chroma_attenuation])
        added = _mix_channels(added, np.linalg.inv(_yiq_matrix(params)) * chroma)
    added = added.reshape(frames.shape)
    return np.clip(np.rint(frames + added), 0, 255).astype(np.uint8)


def squeezed(crops: np.ndarray) -> np.ndarray:
    """Crops (T, S, S, C) as the magnification kernels take them: greyscale without its channel axis."""
    return crops[..., 0] if crops.shape[-1] == 1 else crops


def _kernel(ctx, inputs, params, read):
    crops = inputs[features.CROPS.name]
    grey = crops.shape[-1] == 1
    small = magnify_sized(squeezed(crops), params.small_size, params.alphas, params)
    test = magnify_sized(squeezed(crops), params.size, (params.test_alpha,), params)[:, 0]
    return StageOutput({features.MAGNIFIED.name: test[..., None] if grey else test,
                        features.MAGNIFIED_SMALL.name: small[..., None] if grey else small},
                       {"alphas": list(params.alphas), "test_alpha": params.test_alpha})


def _renders(ctx, params, read) -> int:
    """Frames rendered: each frame at every α of ``alphas`` (small size) and once at ``test_alpha`` (``size``)."""
    return n_frames(ctx) * (len(params.alphas) + 1)


register_stage(
    name="magnify", version=VERSION, params=MagnifyParams, kernel=_kernel, group="magnify", reads=("align",),
    inputs=(features.CROPS,), writes=(features.MAGNIFIED, features.MAGNIFIED_SMALL),
    figure=Figure(features.MAGNIFIED.name, figures.magnified_figure), cost=Cost("frame-alpha", _renders))
