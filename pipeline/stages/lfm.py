"""Landmark feature maps: LFM, CLFM and SFEM (Choi & Song 2020).

A landmark feature map is the change, over a lag of ``T`` frames, of every
pairwise distance between facial landmarks (Choi eq. 1), mapped to uint8 by a
signed square-root normalisation (eq. 2). The compact map (CLFM) uses 21 of the
68 iBUG points. SFEM (eq. 3) sums the absolute map entries over a clip and
divides by an approximate face size; Choi §IV-B counts a clip below 0.35 as a
micro-expression (a reading of the stored ``sfem``, not used by the pipeline).

Landmark numbers in the paper are 1-based iBUG numbers; arrays here are indexed
0-based. All kernels are pure: one clip's arrays in, arrays out.

References
----------
.. [1] D. Y. Choi and B. C. Song, "Facial Micro-Expression Recognition Using
   Two-Dimensional Landmark Feature Maps," IEEE Access, vol. 8,
   pp. 121549-121563, 2020. doi:10.1109/ACCESS.2020.3006958
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.features import N_LANDMARKS

from .. import figures
from .cost import per_frame
from .registry import Figure, StageOutput, register_stage

VERSION = "1"

CLFM_POINTS: tuple[int, ...] = (
    18, 20, 22, 23, 25, 27, 32, 34, 36, 37, 39, 40, 41, 43, 44, 46, 48, 49, 52, 55, 58,
)
"""The 21 CLFM landmarks, 1-based iBUG numbers (Choi §III-A1).

The paper prints 19 numbers but counts 21 (3 per brow, 4 per eye, 4 mouth,
3 nose); 52 (upper lip top) and 55 (right mouth corner) are restored.
"""

# 1-based landmark pairs spanning the SFEM face size (eq. 3): ear to ear, and
# nose bridge top to nose bottom; both move little with expression.
_SFEM_WIDTH_PAIR = (1, 17)
_SFEM_HEIGHT_PAIR = (28, 34)

Scope = Literal["map", "clip"]


@dataclass(frozen=True)
class LFMParams:
    """Parameters of the landmark-feature-map stage (paper defaults).

    Parameters
    ----------
    lag_fps_divisor : float
        The lag is ``T = round(fps / lag_fps_divisor)``, at least 1; 25 Hz makes
        T = 8 at 200 fps and 4 at 100 fps (Choi §V-A).
    normalise_per : {"map", "clip"}
        Where the max/min of eq. 2 are taken: per map (eq. 2 writes
        ``max(LFM_n)``, the default) or over all maps of the clip.
    clfm_points : tuple of int
        1-based landmark numbers of the compact map.
    sfem_points : {"all", "clfm"}
        Landmarks whose pairs enter the SFEM numerator: all 68 (eq. 3 writes
        ``LFM_n`` over M landmarks, the default) or the CLFM subset.
    """

    lag_fps_divisor: float = 25.0
    normalise_per: Scope = "map"
    clfm_points: tuple[int, ...] = CLFM_POINTS
    sfem_points: Literal["all", "clfm"] = "all"

    def __post_init__(self) -> None:
        if not self.lag_fps_divisor > 0:
            raise ValueError(f"lag_fps_divisor must be > 0, got {self.lag_fps_divisor!r}")
        if self.normalise_per not in ("map", "clip"):
            raise ValueError(f"normalise_per must be 'map' or 'clip', got {self.normalise_per!r}")
        if self.sfem_points not in ("all", "clfm"):
            raise ValueError(f"sfem_points must be 'all' or 'clfm', got {self.sfem_points!r}")
        bad = [p for p in self.clfm_points if not 1 <= p <= N_LANDMARKS]
        if bad or len(set(self.clfm_points)) != len(self.clfm_points):
            raise ValueError(
                f"clfm_points must be distinct 1-based numbers in 1..{N_LANDMARKS}, "
                f"got {self.clfm_points!r}"
            )


def lag_from_fps(fps: float, divisor: float = 25.0) -> int:
    """Frame lag ``T = round(fps / divisor)``, rounding halves up, at least 1.

    Parameters
    ----------
    fps : float
        Frame rate of the clip, > 0.
    divisor : float
        Target rate in Hz (Choi §V-A: 25).

    Returns
    -------
    int
        8 at 200 fps, 4 at 100 fps, 1 at 25 fps and below.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    return max(1, math.floor(fps / divisor + 0.5))


def _check_landmarks(landmarks: np.ndarray, n_points: int | None = None) -> np.ndarray:
    arr = np.asarray(landmarks)
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise ValueError(f"landmarks must have shape (F, N, 2), got {arr.shape}")
    if n_points is not None and arr.shape[1] != n_points:
        raise ValueError(
            f"landmarks must have {n_points} points per frame (iBUG 68), got shape {arr.shape}"
        )
    return arr.astype(np.float64, copy=False)


def _distances(points: np.ndarray) -> np.ndarray:
    diff = points[:, :, None, :] - points[:, None, :, :]
    return np.sqrt(np.sum(diff * diff, axis=-1))


def distance_matrices(landmarks: np.ndarray) -> np.ndarray:
    """Pairwise landmark distances per frame, ``D_n(i, j) = ||p(i,n) - p(j,n)||``.

    Parameters
    ----------
    landmarks : ndarray, shape (F, N, 2)
        Landmark coordinates (x, y) per frame, any real dtype.

    Returns
    -------
    ndarray, shape (F, N, N), float32
        Symmetric, zero on the diagonal.
    """
    return _distances(_check_landmarks(landmarks)).astype(np.float32)


def lfm(landmarks: np.ndarray, lag: int) -> np.ndarray:
    """Raw landmark feature maps, ``LFM_n = D_n - D_{n-T}`` (Choi eq. 1).

    Parameters
    ----------
    landmarks : ndarray, shape (F, N, 2)
        Landmark coordinates per frame; needs ``F > lag``.
    lag : int
        Frame lag T >= 1.

    Returns
    -------
    ndarray, shape (F - lag, N, N), float32
        Map k is frame ``k + lag`` against frame ``k``. Positive entries are
        landmark pairs moving apart.
    """
    points = _check_landmarks(landmarks)
    if int(lag) != lag or lag < 1:
        raise ValueError(f"lag must be an integer >= 1, got {lag!r}")
    lag = int(lag)
    if points.shape[0] <= lag:
        raise ValueError(
            f"a lag of {lag} frames needs at least {lag + 1} frames, "
            f"got landmarks of shape {points.shape}"
        )
    dist = _distances(points)
    return (dist[lag:] - dist[:-lag]).astype(np.float32)


def normalise_lfm(maps: np.ndarray, per: Scope = "map") -> np.ndarray:
    """Map raw LFMs to uint8 by the signed square root of Choi eq. 2.

    ``128 * (v / max)**0.5 + 127`` where ``v > 0``, ``-128 * (v / min)**0.5 + 127``
    where ``v < 0``, and 127 where ``v == 0``; rounded half up and clipped to
    0..255. The largest positive entry gives 255; the most negative gives
    ``-1``, clipped to 0, so every ``v / min >= (127/128)**2`` maps to 0.

    Parameters
    ----------
    maps : ndarray, shape (..., N, N)
        Raw maps from :func:`lfm`, one or a stack.
    per : {"map", "clip"}
        Take max and min over each (N, N) map (eq. 2's ``max(LFM_n)``) or over
        the whole input.

    Returns
    -------
    ndarray, same shape, uint8
    """
    v = np.asarray(maps, dtype=np.float64)
    if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
        raise ValueError(f"maps must have shape (..., N, N), got {v.shape}")
    if per not in ("map", "clip"):
        raise ValueError(f"per must be 'map' or 'clip', got {per!r}")
    axes = (-2, -1) if per == "map" else None
    # Only the sign-matching entries are divided by these, so a map with no
    # positive (or negative) entry never uses its placeholder extreme.
    vmax = np.max(v, axis=axes, keepdims=True, initial=0.0)
    vmin = np.min(v, axis=axes, keepdims=True, initial=0.0)
    pos = np.sqrt(np.divide(v, vmax, out=np.zeros_like(v), where=v > 0))
    neg = np.sqrt(np.divide(v, vmin, out=np.zeros_like(v), where=v < 0))
    out = 127.0 + 128.0 * pos - 128.0 * neg
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _select_points(landmarks: np.ndarray, points_1based: tuple[int, ...]) -> np.ndarray:
    return landmarks[:, [p - 1 for p in points_1based], :]


def _normalised_maps(landmarks: np.ndarray, fps: float, params: LFMParams,
                     points_1based: tuple[int, ...] | None) -> np.ndarray:
    points = _check_landmarks(landmarks, N_LANDMARKS)
    if points_1based is not None:
        points = _select_points(points, points_1based)
    return normalise_lfm(lfm(points, lag_from_fps(fps, params.lag_fps_divisor)), per=params.normalise_per)


def lfm68(landmarks: np.ndarray, fps: float, params: LFMParams = LFMParams()) -> np.ndarray:
    """Normalised 68x68 landmark feature maps of one clip.

    Parameters
    ----------
    landmarks : ndarray, shape (F, 68, 2)
        iBUG-68 landmarks per frame.
    fps : float
        Frame rate; sets the lag ``T`` (:func:`lag_from_fps`).
    params : LFMParams

    Returns
    -------
    ndarray, shape (F - T, 68, 68), uint8
    """
    return _normalised_maps(landmarks, fps, params, None)


def lfm21(landmarks: np.ndarray, fps: float, params: LFMParams = LFMParams()) -> np.ndarray:
    """Normalised compact maps (CLFM) on the ``params.clfm_points`` landmarks, as :func:`lfm68`.

    Returns
    -------
    ndarray, shape (F - T, K, K), uint8
        K = ``len(params.clfm_points)``, 21 by default, in the listed order.
    """
    return _normalised_maps(landmarks, fps, params, params.clfm_points)


def sfem(landmarks: np.ndarray, fps: float, params: LFMParams = LFMParams()) -> float:
    """Simple facial expression metric of one clip (Choi eq. 3).

    ``SFEM = sum_n [ sum_ij |LFM_n(i, j)| / (||p(1,n) - p(17,n)|| * ||p(28,n) - p(34,n)||) ]``
    over the ``F - T`` raw maps, with 1-based landmark numbers. Eq. 3 prints
    the face-size denominator outside the sum over n although it depends on n;
    here each map is divided by the face size of its own (later) frame n. The
    sum is not divided by the number of maps or pairs (eq. 3 has no such
    factor), so SFEM grows with clip length; every pair counts twice (i, j and
    j, i), as in eq. 3. The ratio has units of 1/pixel, so the threshold 0.35
    assumes the paper's landmark scale.

    Parameters
    ----------
    landmarks, fps
        As for :func:`lfm68`.
    params : LFMParams
        ``sfem_points`` picks all 68 landmarks or the CLFM subset for the
        numerator; the denominator always uses landmarks 1, 17, 28, 34.

    Returns
    -------
    float
        Choi §IV-B: below 0.35, a micro-expression.
    """
    points = _check_landmarks(landmarks, N_LANDMARKS)
    lag = lag_from_fps(fps, params.lag_fps_divisor)
    subset = points if params.sfem_points == "all" else _select_points(points, params.clfm_points)
    numerator = np.abs(lfm(subset, lag).astype(np.float64)).sum(axis=(1, 2))
    later = points[lag:]
    width = _pair_distance(later, _SFEM_WIDTH_PAIR)
    height = _pair_distance(later, _SFEM_HEIGHT_PAIR)
    face = width * height
    if np.any(face <= 0):
        frames = (np.flatnonzero(face <= 0) + lag).tolist()
        raise ValueError(
            f"SFEM face size is zero at frames {frames}: landmarks 1/17 or 28/34 coincide"
        )
    return float(np.sum(numerator / face))


def _pair_distance(points: np.ndarray, pair_1based: tuple[int, int]) -> np.ndarray:
    a, b = pair_1based
    return np.linalg.norm(points[:, a - 1] - points[:, b - 1], axis=-1)


def _kernel(ctx, inputs, params, read):
    points = inputs[features.LANDMARKS.name]
    return StageOutput({features.LFM.name: lfm68(points, ctx.fps, params),
                        features.CLFM.name: lfm21(points, ctx.fps, params),
                        features.SFEM.name: np.float64(sfem(points, ctx.fps, params))},
                       {"lag": lag_from_fps(ctx.fps, params.lag_fps_divisor)})


register_stage(
    name="lfm", version=VERSION, params=LFMParams, kernel=_kernel, group="lfm", reads=("landmarks",),
    reads_truth=True, inputs=(features.LANDMARKS,), writes=(features.LFM, features.CLFM, features.SFEM),
    figure=Figure(features.LFM.name, figures.lfm_figure), cost=per_frame())
