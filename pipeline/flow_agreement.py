"""Image pairs and measures for checking that two TV-L1 backends agree.

Three kinds of input, as in issue 15 and ``perf-floor.md``:

- :func:`shifted_texture_pairs`: a smooth random texture moved by a known
  sub-pixel translation (an exact Fourier shift);
- :func:`me_pairs`: SAMM-like micro-expression pairs: a face (scikit-image's
  astronaut) at SAMM's ~400 px face size, one frame warped by a smooth local
  brow raise and lip-corner pull, independent sensor noise (sigma 2) and a
  JPEG q95 round trip per frame, a slightly jittered eye-aligned 256 x 256
  crop per frame, then ``INTER_AREA`` to the flow size;
- :func:`clip_pairs`: the pairs a flow stage takes from real aligned crops
  (e.g. a demo store's ``crops``).

:func:`agreement` reduces two stacks of flow fields to the end-point-error
figures the issue bounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

FACE_BOX = (150, 40, 300, 190)
"""(x0, y0, x1, y1) of the face in scikit-image's 512 x 512 astronaut: brows to chin."""

FACE_SIZE = 400
"""Side of the face at full resolution: SAMM's faces are about 400 x 400 px."""

CROP_SIZE = 256
"""Side of the eye-aligned crop the flow stages resize from."""


@dataclass(frozen=True)
class Agreement:
    """End-point error between two flow stacks: ``|flow_a - flow_b|`` per pixel.

    Attributes
    ----------
    epe_mean : float
        Mean end-point error over every pixel of every pair (px).
    frac_over : float
        Fraction of pixels whose end-point error exceeds ``threshold``.
    epe_max : float
        Largest end-point error (px).
    threshold : float
        The threshold of ``frac_over`` (px).
    n_pairs : int
        Number of flow fields compared.
    """

    epe_mean: float
    frac_over: float
    epe_max: float
    threshold: float
    n_pairs: int

    def within(self, epe_mean: float = 0.05, frac_over: float = 0.02) -> bool:
        """True if within the bounds of issue 15 (mean EPE <= 0.05 px, <= 2 % over 0.5 px)."""
        return self.epe_mean <= epe_mean and self.frac_over <= frac_over


def agreement(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> Agreement:
    """End-point-error agreement of two flow stacks of shape (N, 2, H, W)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 2:
        raise ValueError(f"need two flow stacks of the same shape (N, 2, H, W), got {a.shape} and {b.shape}")
    epe = np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1])
    return Agreement(float(epe.mean()), float((epe > threshold).mean()), float(epe.max()), threshold, len(a))


def shifted_texture_pairs(n: int, size: tuple[int, int], seed: int = 0,
                          max_shift: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of a smooth periodic texture and the same texture translated.

    Parameters
    ----------
    n : int
        Number of pairs.
    size : (W, H)
        Image size.
    seed : int
        Seed of the textures and shifts.
    max_shift : float
        Largest |dx| and |dy| in px.

    Returns
    -------
    prev, next : ndarray, shape (n, H, W), uint8
    shifts : ndarray, shape (n, 2), float64
        (dx, dy) of each pair: content moves right/down for positive values.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    prev, nxt, shifts = [], [], []
    for _ in range(n):
        noise = rng.standard_normal((h, w))
        texture = ndimage.gaussian_filter(noise, rng.uniform(1.5, 3.0), mode="wrap")
        texture = 0.1 + 0.8 * (texture - texture.min()) / (texture.max() - texture.min())
        dx, dy = rng.uniform(-max_shift, max_shift, 2)
        moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(texture), (dy, dx))).real
        prev.append(_to_uint8(texture * 255))
        nxt.append(_to_uint8(moved * 255))
        shifts.append((dx, dy))
    return np.stack(prev), np.stack(nxt), np.array(shifts)


def me_pairs(n: int, size: tuple[int, int], magnitudes: tuple[float, ...] = (0.1, 3.0),
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SAMM-like micro-expression pairs (see the module docstring).

    Pair i moves by ``magnitudes[i % len(magnitudes)]`` px at full resolution
    (0.1 px: neighbouring frames at 200 fps; 3 px: onset to apex).

    Returns
    -------
    prev, next : ndarray, shape (n, H, W), uint8
        Grey crops at ``size`` = (W, H).
    """
    from skimage.data import astronaut

    x0, y0, x1, y1 = FACE_BOX
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY)[y0:y1, x0:x1]
    face = cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    field = _expression_field(FACE_SIZE)
    rng = np.random.default_rng(seed)
    prev, nxt = [], []
    for i in range(n):
        moved = _warp(face, field * magnitudes[i % len(magnitudes)])
        prev.append(_camera_and_crop(face, size, rng))
        nxt.append(_camera_and_crop(moved, size, rng))
    return np.stack(prev), np.stack(nxt)


def clip_pairs(crops: np.ndarray, size: tuple[int, int], max_pairs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """First->each and consecutive pairs of a clip's aligned crops, resized as the flow stages do.

    Parameters
    ----------
    crops : ndarray, shape (T, S, S) or (T, S, S, C), uint8
    size : (W, H)
    max_pairs : int, optional
        Keep at most this many pairs of each kind (evenly spaced).

    Returns
    -------
    prev, next : ndarray, shape (N, H, W), uint8
    """
    from .stages.flow import FlowParams, prepare_crops

    grey = prepare_crops(crops, FlowParams(size=size))
    t = np.arange(1, len(grey))
    if max_pairs is not None and len(t) > max_pairs:
        t = t[np.linspace(0, len(t) - 1, max_pairs).round().astype(int)]
    prev = np.concatenate([np.repeat(grey[:1], len(t), axis=0), grey[t - 1]])
    nxt = np.concatenate([grey[t], grey[t]])
    return prev, nxt


def _expression_field(side: int) -> np.ndarray:
    """Unit displacement (2, side, side): brows up, lip corners out and up (full-resolution px)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    sigma = 0.08

    def bump(cx, cy):
        return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))

    brows = bump(0.27, 0.32) + bump(0.73, 0.32)
    left, right = bump(0.37, 0.70), bump(0.63, 0.70)
    dx = (2 / 3) * (right - left)
    dy = -brows - (1 / 3) * (left + right)
    return np.stack([dx, dy]).astype(np.float32)


def _warp(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``image`` with its content moved by ``field`` (backward map; fine for smooth, small motion)."""
    side = image.shape[0]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    return cv2.remap(image, xx - field[0], yy - field[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _camera_and_crop(face: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Sensor noise, JPEG q95, a jittered eye-aligned crop and the flow-size resize."""
    noisy = _to_uint8(face + rng.normal(0.0, 2.0, face.shape))
    _, jpeg = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    # Landmark jitter: each frame's similarity transform is off by a fraction of a pixel.
    scale = CROP_SIZE / FACE_SIZE * (1 + rng.normal(0.0, 0.001))
    angle = rng.normal(0.0, 0.05)
    m = cv2.getRotationMatrix2D((FACE_SIZE / 2, FACE_SIZE / 2), angle, scale)
    m[:, 2] += CROP_SIZE / 2 - FACE_SIZE / 2 + rng.normal(0.0, 0.15, 2)
    crop = cv2.warpAffine(decoded, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(_to_uint8(crop), size, interpolation=cv2.INTER_AREA)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
