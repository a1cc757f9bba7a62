"""Appearance matrices for STRCN-A (SPEC §2.8, Xia et al. 2019, §III-C1).

Each magnified clip gets a difference heat map ``E_i(x, y) = sum_t
|I_i(t) - I_i(0)|`` (Xia eq. 4, kept per clip). A mask keeps the top fraction
p of the summed heat map ``sum_i E_i`` over a chosen set of clips: all of them
as in the paper, or one fold's training clips so that no test clip shapes the
mask. Each clip is resampled to a fixed number of frames by linear
interpolation, and its masked pixels are flattened into a ``(d2, T, C)``
matrix.

Kernels are pure: arrays in, arrays out. Clips arrive already aligned,
magnified and resized to ``AppearanceParams.size``.

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng and G. Zhao, "Spatiotemporal Recurrent
   Convolutional Networks for Recognizing Spontaneous Micro-Expressions,"
   IEEE Transactions on Multimedia, vol. 22, no. 3, pp. 626-640, 2020.
   doi:10.1109/TMM.2019.2931351
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VERSION = "1"


@dataclass(frozen=True)
class AppearanceParams:
    """Parameters of the STRCN-A appearance stage (paper defaults, Xia §IV-B).

    Parameters
    ----------
    keep_fraction : float
        Fraction p of heat-map pixels kept by the mask, in (0, 1] (Xia: 30%).
    n_time : int
        Frames per clip after time normalisation, >= 2 (Xia: 30).
    size : tuple of int
        (W, H) of the magnified clips the kernels expect (Xia: 64x48). The
        kernels do not resize; the upstream stage produces this size.
    """

    keep_fraction: float = 0.30
    n_time: int = 30
    size: tuple[int, int] = (64, 48)

    def __post_init__(self) -> None:
        if not 0 < self.keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction!r}")
        if self.n_time < 2:
            raise ValueError(f"n_time must be >= 2, got {self.n_time!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (W, H) with positive entries, got {self.size!r}")


def _check_clip(clip: np.ndarray, name: str = "clip") -> np.ndarray:
    arr = np.asarray(clip)
    if arr.ndim not in (3, 4) or arr.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (T, H, W) or (T, H, W, C) with T >= 1, got {arr.shape}"
        )
    # uint8 differences would wrap around; work in float64.
    return arr.astype(np.float64, copy=False)


def heatmap(clip: np.ndarray) -> np.ndarray:
    """Difference heat map of one clip, ``E(x, y) = sum_t |I(t) - I(0)|`` (Xia eq. 4).

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C)
        Magnified frames, uint8 or float. Colour channels are summed too.

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    frames = _check_clip(clip)
    diff = np.abs(frames - frames[:1]).sum(axis=0)
    if diff.ndim == 3:
        diff = diff.sum(axis=-1)
    return diff.astype(np.float32)


def build_mask(heatmaps: np.ndarray, keep_fraction: float = 0.30) -> np.ndarray:
    """Binary mask of the top ``keep_fraction`` of the summed heat maps.

    Exactly ``k = round(p * H * W)`` pixels are kept (halves round up; at least
    one). Pixels are ranked by ``sum_i E_i`` in descending order; equal values
    are ranked by row-major position, earlier first, so ties at the cut keep
    the pixels nearest the top-left.

    Parameters
    ----------
    heatmaps : ndarray, shape (N, H, W)
        Per-clip heat maps from :func:`heatmap` (or a single (H, W) map).
    keep_fraction : float
        Fraction p in (0, 1] (Xia: 0.30).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"heatmaps must have shape (N, H, W) with N >= 1, got {maps.shape}")
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
    total = maps.sum(axis=0)
    if not np.all(np.isfinite(total)):
        raise ValueError("heatmaps contain NaN or infinite values")
    n_pixels = total.size
    k = min(n_pixels, max(1, math.floor(keep_fraction * n_pixels + 0.5)))
    order = np.argsort(-total.ravel(), kind="stable")
    mask = np.zeros(n_pixels, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(total.shape)


def time_normalise(clip: np.ndarray, n_time: int = 30) -> np.ndarray:
    """Resample a clip to ``n_time`` frames by linear interpolation along time.

    Output frame k samples time ``k * (T - 1) / (n_time - 1)``, so the first and
    last frames are kept exactly; a one-frame clip is repeated.

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C)
        Frames, uint8 or float.
    n_time : int
        Output length, >= 2 (Xia: 30).

    Returns
    -------
    ndarray, shape (n_time, H, W[, C]), float32
    """
    frames = _check_clip(clip)
    if n_time < 2:
        raise ValueError(f"n_time must be >= 2, got {n_time!r}")
    n = frames.shape[0]
    if n == 1:
        return np.repeat(frames, n_time, axis=0).astype(np.float32)
    position = np.arange(n_time) * (n - 1) / (n_time - 1)
    lower = np.minimum(np.floor(position).astype(int), n - 2)
    weight = (position - lower).reshape((-1,) + (1,) * (frames.ndim - 1))
    out = (1.0 - weight) * frames[lower] + weight * frames[lower + 1]
    return out.astype(np.float32)


def appearance_matrix(
    clip: np.ndarray, mask: np.ndarray, params: AppearanceParams = AppearanceParams()
) -> np.ndarray:
    """Masked, time-normalised appearance matrix of one clip (Xia §III-C1).

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C)
        Magnified frames, uint8 or float.
    mask : ndarray, shape (H, W), bool
        From :func:`build_mask`.
    params : AppearanceParams
        ``n_time`` sets the output length.

    Returns
    -------
    ndarray, shape (d2, n_time, C), float32
        ``d2 = mask.sum()``; rows are the masked pixels in row-major order,
        C = 1 for greyscale clips.
    """
    frames = _check_clip(clip)
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != frames.shape[1:3]:
        raise ValueError(
            f"mask must be a bool array of the clip's (H, W) = {frames.shape[1:3]}, "
            f"got dtype {mask.dtype} shape {mask.shape}"
        )
    if frames.ndim == 3:
        frames = frames[..., None]
    resampled = time_normalise(frames, params.n_time)
    return np.ascontiguousarray(resampled[:, mask, :].transpose(1, 0, 2))


def appearance_matrices(
    clips: Sequence[np.ndarray],
    heatmaps: np.ndarray | Sequence[np.ndarray],
    train_index: Sequence[int] | np.ndarray | None = None,
    params: AppearanceParams = AppearanceParams(),
) -> tuple[np.ndarray, np.ndarray]:
    """Build one mask and the appearance matrices of a set of clips.

    Parameters
    ----------
    clips : sequence of ndarray, each (T_i, H, W[, C])
        Magnified clips; lengths may differ.
    heatmaps : ndarray (N, H, W) or sequence of (H, W)
        Heat map of each clip, in the order of ``clips``.
    train_index : sequence of int or bool array, optional
        Clips whose heat maps build the mask, e.g. one fold's training clips
        for a leak-free mask. None uses all clips, as Xia et al. do.
    params : AppearanceParams

    Returns
    -------
    mask : ndarray, shape (H, W), bool
    matrices : ndarray, shape (N, d2, n_time, C), float32
        One matrix per clip of ``clips``, built with the same mask.
    """
    maps = np.stack([np.asarray(h) for h in heatmaps]) if len(heatmaps) else np.empty((0, 0, 0))
    if len(clips) != maps.shape[0]:
        raise ValueError(f"got {len(clips)} clips but {maps.shape[0]} heat maps; give one per clip")
    if train_index is not None:
        index = np.asarray(train_index)
        if index.dtype == bool and index.shape != (len(clips),):
            raise ValueError(
                f"boolean train_index must have shape ({len(clips)},), got {index.shape}"
            )
        if index.dtype != bool:
            index = index.astype(np.intp)
        maps = maps[index]
        if maps.shape[0] == 0:
            raise ValueError("train_index selects no clips; the mask needs at least one heat map")
    mask = build_mask(maps, params.keep_fraction)
    matrices = [appearance_matrix(clip, mask, params) for clip in clips]
    return mask, np.stack(matrices)
