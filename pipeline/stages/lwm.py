"""Goshtasby's local weighted mean (LWM) interpolant over fixed control points.

Xia et al. (2019, eq. 2) align every frame with the LWM transformation over
the 68 landmarks (after Pfister et al. 2011, who follow Goshtasby 1988). At
each control point p_i a second-degree polynomial S_i is fitted to the values
at p_i and its n - 1 nearest control points; the value anywhere is the mean
of the polynomials weighted by

    W(R) = 1 - 3 R^2 + 2 R^3  for R <= 1,  0 beyond,  R = |x - p_i| / D_i,

where D_i is the distance from p_i to its (n - 1)-th nearest control point.
W is 1 at p_i and falls smoothly to 0 at D_i, so each polynomial acts only
near its own point.

Because the weights and polynomial fits depend only on the control points'
positions, the interpolant is linear in the values: :meth:`LocalWeightedMean.operator`
returns the matrix that maps the values at the control points to the values
at given query points, computed once and applied to every frame of a clip.

Two details the papers leave open are fixed here:

- **How many points per polynomial.** The polynomial has 6 coefficients;
  n = 6 points determine it exactly (Xia's "polynomial with n parameters
  passing through ... n - 1 other measurements"), more are fitted by least
  squares (MATLAB's ``fitgeotrans(..., 'lwm', n)``). Landmark
  neighbourhoods of 6 are often close to one conic (nose bridge, jaw line,
  eye contours): on a dlib 68-point face, 27 of the 68 have a smallest
  singular value below 1 % of the largest (in coordinates scaled by D_i),
  so landmark jitter is amplified a hundredfold and more across the conic.
  With 12 points the smallest ratio is 1.8 %. :mod:`.align` therefore fits
  12 by default (a parameter); exactly singular sets (points on a line or
  circle) are solved by a pseudo-inverse, which leaves the undetermined
  part zero instead of arbitrary.
- **Outside every point's reach** the sum of weights is 0 and Goshtasby's
  mean is undefined. The weighted sum is divided by ``max(sum W, 1)``
  instead of ``sum W``: identical wherever the weights sum to 1 or more,
  and fading continuously to 0 away from the points. Interpolating
  residuals against a global transform (as :mod:`.align` does) then falls
  back to that transform far from the landmarks. On a demo face's 68
  points with n = 12 the weights sum to 1 or more on 98 % of the
  landmarks' convex hull (0.61 at least) and to more than 0 on the whole
  256-pixel crop; with n = 6, on 75 % of the hull.

References
----------
.. [1] A. Goshtasby, "Image registration by local approximation methods",
   Image and Vision Computing 6(4), 1988, pp. 255-261.
   https://doi.org/10.1016/0262-8856(88)90016-9
.. [2] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, "Spatiotemporal recurrent
   convolutional networks for recognizing spontaneous micro-expressions",
   IEEE Trans. Multimedia 22(3), 2020, eq. 2. https://doi.org/10.1109/TMM.2019.2931351
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_COEFFICIENTS = 6
"""Terms of a second-degree polynomial in x and y: 1, x, y, x^2, xy, y^2."""

_RCOND = 1e-6
"""Relative cut-off of the pseudo-inverse: only (numerically) singular directions are dropped."""


def lwm_weight(r: np.ndarray) -> np.ndarray:
    """Goshtasby's weight W(R) = 1 - 3R^2 + 2R^3 on [0, 1], 0 beyond (1 at R = 0, smooth to 0 at R = 1)."""
    r = np.asarray(r, dtype=np.float64)
    return np.where(r < 1.0, 1.0 - 3.0 * r ** 2 + 2.0 * r ** 3, 0.0)


def quadratic_basis(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Second-degree monomials (1, x, y, x^2, xy, y^2) of offsets, shape (..., 6)."""
    return np.stack([np.ones_like(dx), dx, dy, dx * dx, dx * dy, dy * dy], axis=-1)


@dataclass(frozen=True)
class LocalWeightedMean:
    """The LWM interpolant of fixed control points (values come later, per frame).

    Attributes
    ----------
    points : ndarray, shape (N, 2)
        Control points (x, y).
    neighbours : ndarray, shape (N, n), int
        Each point and its n - 1 nearest control points, nearest first.
    radii : ndarray, shape (N,)
        D_i: distance from point i to its (n - 1)-th nearest control point.
    solvers : ndarray, shape (N, 6, n)
        Per point, the pseudo-inverse mapping the values at its neighbours to
        its polynomial's coefficients (in offsets from the point scaled by D_i).
    """

    points: np.ndarray
    neighbours: np.ndarray
    radii: np.ndarray
    solvers: np.ndarray

    @classmethod
    def fit(cls, points: np.ndarray, n: int = 6) -> "LocalWeightedMean":
        """The interpolant of ``points`` (N, 2) with polynomials over n points each (6 <= n <= N)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"control points must have shape (N, 2), got {points.shape}")
        if not N_COEFFICIENTS <= n <= len(points):
            raise ValueError(f"LWM needs {N_COEFFICIENTS} <= n <= the {len(points)} control points, got n={n}")
        distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
        neighbours = np.argsort(distance, axis=1, kind="stable")[:, :n]
        radii = distance[np.arange(len(points)), neighbours[:, -1]]
        if not (radii > 0).all():
            raise ValueError("control points coincide; the LWM radius D_n would be 0")
        solvers = np.empty((len(points), N_COEFFICIENTS, n))
        for i, idx in enumerate(neighbours):
            offsets = (points[idx] - points[i]) / radii[i]
            solvers[i] = np.linalg.pinv(quadratic_basis(offsets[:, 0], offsets[:, 1]), rcond=_RCOND)
        return cls(points, neighbours, radii, solvers)

    def operator(self, query: np.ndarray) -> np.ndarray:
        """Matrix A (Q, N) such that the interpolated values at ``query`` (Q, 2) are ``A @ values``.

        Row q is ``sum_i W_i(q) S_i(q) / max(sum_i W_i(q), 1)`` with S_i
        written as weights on the values at point i's neighbours.
        """
        query = np.asarray(query, dtype=np.float64).reshape(-1, 2)
        out = np.zeros((len(query), len(self.points)))
        total = np.zeros(len(query))
        for i, centre in enumerate(self.points):
            offsets = (query - centre) / self.radii[i]
            r = np.hypot(offsets[:, 0], offsets[:, 1])
            near = np.flatnonzero(r < 1.0)
            if not near.size:
                continue
            w = lwm_weight(r[near])
            rows = quadratic_basis(offsets[near, 0], offsets[near, 1]) @ self.solvers[i]
            out[near[:, None], self.neighbours[i][None, :]] += w[:, None] * rows
            total[near] += w
        return out / np.maximum(total, 1.0)[:, None]

    def __call__(self, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Interpolate ``values`` (N, ...) given at the control points at ``query`` (Q, 2): (Q, ...)."""
        values = np.asarray(values, dtype=np.float64)
        return np.tensordot(self.operator(query), values, axes=(1, 0))
