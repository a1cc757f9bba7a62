"""Dense displacement fields from landmark displacements, and sampling maps.

Fields are thin-plate splines through the landmarks (exact at every control
point, smoothest in between) pinned to zero on the canvas border. They are
evaluated on a coarse grid and upsampled to pixel maps: the fields are smooth
on the scale of a brow or a lip corner, so bilinear upsampling loses nothing
visible and keeps the per-frame cost to one full-resolution ``cv2.remap``.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

BORDER_ANCHORS_PER_SIDE = 5
"""Zero-displacement anchors per canvas side; keeps the spline from tilting the frame."""


def grid_points(shape: tuple[int, int], stride: int) -> np.ndarray:
    """Pixel coordinates of a coarse grid over an image of ``shape`` (H, W).

    Returns (ceil(H/stride), ceil(W/stride), 2) float64 (x, y). Coarse cell i
    sits at full-resolution coordinate ``stride·i + (stride − 1)/2``, the
    pixel-centre convention of ``cv2.resize``, so :func:`upsample_map`
    reproduces any affine map exactly.
    """
    gh, gw = -(-shape[0] // stride), -(-shape[1] // stride)
    offset = (stride - 1) / 2
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64)
    return np.stack([xs * stride + offset, ys * stride + offset], axis=-1)


def upsample_map(coarse: np.ndarray, shape: tuple[int, int], stride: int) -> np.ndarray:
    """Full-resolution ``cv2.remap`` map, (H, W, 2) float32 (x, y), from a coarse (gh, gw, 2) grid."""
    size = (coarse.shape[1] * stride, coarse.shape[0] * stride)
    full = cv2.resize(coarse.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[: shape[0], : shape[1]])


def border_anchors(shape: tuple[int, int]) -> np.ndarray:
    """Points (N, 2) evenly spaced along the border of an image of ``shape``."""
    height, width = shape
    t = np.linspace(0, 1, BORDER_ANCHORS_PER_SIDE, endpoint=False)
    top = np.stack([t * (width - 1), np.zeros_like(t)], axis=1)
    right = np.stack([np.full_like(t, width - 1), t * (height - 1)], axis=1)
    bottom = np.stack([(1 - t) * (width - 1), np.full_like(t, height - 1)], axis=1)
    left = np.stack([np.zeros_like(t), (1 - t) * (height - 1)], axis=1)
    return np.concatenate([top, right, bottom, left])


def dense_field(
    centres: np.ndarray, values: np.ndarray, shape: tuple[int, int], at: np.ndarray
) -> np.ndarray:
    """Thin-plate spline through ``values`` at ``centres``, zero on the border, evaluated at ``at``.

    Parameters
    ----------
    centres : ndarray
        (N, 2) control points (x, y) inside an image of ``shape``.
    values : ndarray
        (N, 2) displacement at each control point.
    shape : tuple of int
        (H, W) of the image whose border is pinned.
    at : ndarray
        (M, 2) points where the field is wanted.

    Returns
    -------
    ndarray
        (M, 2) float64 displacements.
    """
    anchors = border_anchors(shape)
    points = np.concatenate([centres, anchors])
    data = np.concatenate([values, np.zeros_like(anchors)])
    # Coincident control points (a closed mouth's inner lips) make the spline singular: keep the first.
    _, first = np.unique(np.round(points, 6), axis=0, return_index=True)
    keep = np.sort(first)
    spline = RBFInterpolator(points[keep], data[keep], kernel="thin_plate_spline")
    return spline(at.reshape(-1, 2))


def sample_field(field: np.ndarray, points: np.ndarray, stride: int) -> np.ndarray:
    """Bilinear value of a coarse (gh, gw, 2) field at full-resolution ``points`` (..., 2)."""
    offset = (stride - 1) / 2
    coords = ((points - offset) / stride).astype(np.float32)
    return cv2.remap(
        field.astype(np.float32),
        np.ascontiguousarray(coords[..., 0]),
        np.ascontiguousarray(coords[..., 1]),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)


def invert_displacement(
    field: np.ndarray, amplitude: float, targets: np.ndarray, stride: int, iterations: int
) -> np.ndarray:
    """Source points ``z`` with ``z + amplitude·field(z) = targets``.

    ``field`` is a forward displacement (where a face point moves); rendering
    needs the inverse, solved by fixed-point iteration, which converges fast
    because the field's gradient times the amplitude is far below one.
    """
    source = targets.copy()
    for _ in range(iterations):
        source = targets - amplitude * sample_field(field, source, stride)
    return source
