"""Blinks: the lids' motion and the closed eye's look, for the long-video demo.

A blink is eye-region motion that no micro-expression sheet annotates, and
the commonest false alarm of a motion-peak spotter. Two parts, as for an
expression and its folds (:mod:`.folds`):

- **motion**: the upper lids move down by a fraction of the eye's opening
  (the lower lids up a little, the brows down a little); the eye corners
  stay, so an aligner is not disturbed;
- **look**: a thin-plate warp cannot close an eye, so the canvas is blended
  towards a closed-eye version of the face (the eye openings filled from the
  surrounding skin, a dark lash line along the lower lid) in proportion to
  the closure, before the warp.

References
----------
A. R. Bentivoglio et al., "Analysis of blink rate patterns in normal
subjects", Movement Disorders 12(6), 1997 (a blink lasts about 100-150 ms;
the lid opens more slowly than it closes). https://doi.org/10.1002/mds.870120629
"""
from __future__ import annotations

import cv2
import numpy as np

from .face import interocular, region_mask
from .identities import LEFT_EYE, RIGHT_EYE

UPPER_LIDS = (37, 38, 43, 44)
LOWER_LIDS = (41, 40, 47, 46)
"""0-based iBUG rows of the upper lids and, in the same order, the lower-lid point below each."""
LOWER_LID_SHARE = 0.15
"""The lower lid's rise as a fraction of the upper lid's fall."""
BROW_SHARE = 0.1
"""The brows' fall as a fraction of the upper lid's (orbicularis pulls them a little)."""
LASH_DARKNESS = 0.45
"""Relative darkening of the lash line of a closed eye."""


def lid_displacements(landmarks: np.ndarray, travel: float) -> np.ndarray:
    """(68, 2) landmark displacements, pixels, of a fully closed blink.

    Each upper-lid point moves down by ``travel`` times the eye's opening
    below it; the lower lids and the brows follow by :data:`LOWER_LID_SHARE`
    and :data:`BROW_SHARE`.
    """
    disp = np.zeros((68, 2))
    falls = []
    for upper, lower in zip(UPPER_LIDS, LOWER_LIDS):
        fall = travel * (landmarks[lower, 1] - landmarks[upper, 1])
        disp[upper, 1] = fall
        disp[lower, 1] = -LOWER_LID_SHARE * fall
        falls.append(fall)
    disp[17:27, 1] = BROW_SHARE * float(np.mean(falls))
    return disp


def eye_openings(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 mask of both eye openings: the lid contours grown by 15 % about their centre, feathered."""
    d = interocular(landmarks)
    mask = np.zeros(shape, np.float32)
    for part in (LEFT_EYE, RIGHT_EYE):
        points = landmarks[part]
        centre = points.mean(axis=0)
        grown = centre + (points - centre) * 1.15
        mask = np.maximum(mask, region_mask(grown, shape, 0.02 * d))
    return np.clip(mask / max(float(mask.max()), 1e-6), 0, 1)


def closed_eyes(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face ``image`` (float32 levels, (H, W) or (H, W, 3)) with both eyes shut.

    The openings are filled from the surrounding skin (``cv2.inpaint``,
    Telea's method) and a lash line is drawn along each lower lid, from the
    outer to the inner corner.
    """
    d = interocular(landmarks)
    shape = image.shape[:2]
    hole = (eye_openings(landmarks, shape) > 0.05).astype(np.uint8)
    hole = cv2.dilate(hole, np.ones((3, 3), np.uint8))
    levels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    filled = cv2.inpaint(levels, hole, max(2.0, 0.06 * d), cv2.INPAINT_TELEA).astype(np.float32)
    lashes = np.zeros(shape, np.float32)
    for row in ((36, 41, 40, 39), (42, 47, 46, 45)):
        line = landmarks[list(row)] - [0, 0.01 * d]
        cv2.polylines(lashes, [np.rint(line).astype(np.int32)], False, 1.0, max(1, int(round(0.025 * d))),
                      cv2.LINE_AA)
    lashes = cv2.GaussianBlur(lashes, (0, 0), max(0.5, 0.008 * d))
    if image.ndim == 3:
        lashes = lashes[..., None]
    return filled * (1 - LASH_DARKNESS * lashes)
