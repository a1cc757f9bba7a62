"""Skin folds an action unit deepens: the appearance change that goes with its motion.

FACS describes each action unit by its motion *and* by the appearance
changes it makes: AU1+2 wrinkle the forehead horizontally, AU4 makes
vertical furrows between the brows, AU12 deepens the nasolabial folds, AU17
wrinkles the chin below the lower lip. A warp of a photograph moves skin
but cannot make those folds, so the demo draws them: each fold is a
polyline placed from the subject's neutral landmarks, stroked and feathered
into a shade map on the subject canvas, and a frame darkens the canvas by
``depth · intensity · shade`` before the expression warp, so the fold moves
with the skin and comes and goes with the expression.

Where a fold sits follows the face (landmarks), and what it looks like does
not depend on who the subject is, so a single frame carries a cue to its
class that identity differences do not mask: with six different people and
a 1-2 px motion at 64x64, motion alone is smaller than the differences
between faces (brow heights differ by up to 0.2 eye distances).

References
----------
P. Ekman, W. V. Friesen, J. C. Hager, *Facial Action Coding System: the
manual*, Research Nexus, 2002 (appearance changes of AU1, AU2, AU4, AU12, AU17).
"""
from __future__ import annotations

import cv2
import numpy as np

from .face import interocular

FOLDS = ("forehead", "glabella", "nasolabial", "chin")
"""Folds an expression class may deepen (:func:`fold_lines`)."""


def _mirrored(points: np.ndarray, centre_x: float) -> list[np.ndarray]:
    """A polyline and its mirror about the vertical line x = ``centre_x``."""
    return [points, points * [-1, 1] + [2 * centre_x, 0]]


def fold_lines(name: str, landmarks: np.ndarray) -> list[np.ndarray]:
    """Polylines (each (K, 2), canvas pixels) of fold ``name`` on a face with neutral ``landmarks`` (68, 2).

    Lengths are fractions of the inter-ocular distance d; the face midline is
    the nose bridge (iBUG 28-31).

    - ``forehead``: three arcs 0.12, 0.22 and 0.32·d above the brows, as wide as their inner two thirds
      (inside Xia's crop, whose top is 0.6·d above the eyes);
    - ``glabella``: two vertical furrows 0.1·d either side of the midline, from 0.3·d above the inner
      brow ends to 0.05·d below them;
    - ``nasolabial``: a curve on each side from beside the nose wing down and out to 0.12·d beyond the
      mouth corner;
    - ``chin``: an arc 0.18·d below the lower lip, as wide as the mouth's middle half.
    """
    d = interocular(landmarks)
    mid = float(landmarks[27:31, 0].mean())
    if name == "forehead":
        brows = landmarks[[18, 19, 20, 23, 24, 25]]
        return [brows - [0, k * d] for k in (0.12, 0.22, 0.32)]
    if name == "glabella":
        top = float(min(landmarks[21, 1], landmarks[22, 1]))
        line = np.array([[mid - 0.1 * d, top - 0.3 * d], [mid - 0.1 * d, top + 0.05 * d]])
        return _mirrored(line, mid)
    if name == "nasolabial":
        wing, corner = landmarks[31], landmarks[48]
        line = np.array([wing + [-0.12 * d, -0.02 * d], wing + [-0.22 * d, 0.18 * d],
                         corner + [-0.12 * d, 0.08 * d]])
        return _mirrored(line, mid)
    if name == "chin":
        lip = landmarks[[58, 57, 56]]
        return [lip + [0, 0.18 * d]]
    raise ValueError(f"unknown fold {name!r}; known: {', '.join(FOLDS)}")


def fold_shade(names: tuple[str, ...], landmarks: np.ndarray, shape: tuple[int, int], width: float,
               blur: float) -> np.ndarray:
    """(H, W) float32 shade map of the folds ``names``: strokes ``width``·d wide, feathered by ``blur``·d.

    Scaled so that the deepest point of a fold is 1 (all zero without folds).
    """
    shade = np.zeros(shape, np.float32)
    if not names:
        return shade
    d = interocular(landmarks)
    thickness = max(1, int(round(width * d)))
    for name in names:
        for line in fold_lines(name, landmarks):
            cv2.polylines(shade, [np.rint(line).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA)
    shade = cv2.GaussianBlur(shade, (0, 0), blur * d)
    return shade / shade.max()
