"""Head turns and nods on a flat photograph: a relief map of the face and the parallax it makes.

A demo face is a photograph, so a rigid in-plane pose (:class:`.motion.HeadDrift`)
is all a warp can do to it, and an aligner fitting a similarity to eye
corners and nose undoes that exactly. A real turn or nod is out of plane:
points nearer the camera (the nose tip, the middle of the face) move
further than the face's outline. Here each canvas point has a depth (an
ellipsoid over the face plus a ridge along the nose, in inter-ocular
distances d) and a turn by angle θ moves it by ``sin θ · depth`` across the
image (a nod: down it). Under orthographic projection that is the
first-order motion of a rotation about an axis through the face's outline;
the aligner's similarity removes its average, not the nose's parallax, so a
turn leaves motion in every region after alignment, as on real faces.
"""
from __future__ import annotations

import numpy as np

from .face import interocular

NOSE_RIDGE_SIGMA = (0.15, 0.35)
"""Width and length (Gaussian sigmas, in d) of the nose ridge, centred between the nose tip and the bridge."""
FOREHEAD_ABOVE_BROWS = 0.5
"""How far the face ellipsoid reaches above the brows, in d."""


def face_relief(landmarks: np.ndarray, points: np.ndarray, face_depth: float, nose_depth: float) -> np.ndarray:
    """Depth in pixels, towards the camera, of ``points`` (..., 2) on a face with neutral ``landmarks`` (68, 2).

    The face ellipsoid spans the jaw's width and brows-plus-forehead to chin,
    ``face_depth``·d deep in its middle and falling to 0 with zero slope at
    its rim (``cos²``), so the warp stays smooth; the nose ridge adds up to
    ``nose_depth``·d.
    """
    d = interocular(landmarks)
    left, right = landmarks[0, 0], landmarks[16, 0]
    top = landmarks[17:27, 1].min() - FOREHEAD_ABOVE_BROWS * d
    bottom = landmarks[8, 1]
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    half = np.array([(right - left) / 2, (bottom - top) / 2])
    r = np.sqrt((((points - centre) / half) ** 2).sum(axis=-1))
    ellipsoid = face_depth * d * np.cos(np.pi / 2 * np.minimum(r, 1.0)) ** 2
    ridge_centre = 0.7 * landmarks[30] + 0.3 * landmarks[28]
    sigma = np.asarray(NOSE_RIDGE_SIGMA) * d
    ridge = nose_depth * d * np.exp(-0.5 * (((points - ridge_centre) / sigma) ** 2).sum(axis=-1))
    return ellipsoid + ridge


def parallax(depth: np.ndarray, yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Forward displacement (..., 2) of points at ``depth`` under a turn (positive: to the image's right) and
    a nod (positive: down)."""
    return np.stack([np.sin(np.deg2rad(yaw_deg)) * depth, np.sin(np.deg2rad(pitch_deg)) * depth], axis=-1)
