"""Class motions, their time course, and the rigid head drift of a demo clip.

A class is a table of landmark displacement directions (the action units it
stands for). All other landmarks, eye corners and nose included, are pinned
to zero, so the thin-plate field moves only the region the class acts on and
the stable points an aligner relies on move with the head alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face import Subject, apply_affine, interocular
from .folds import FOLDS, fold_shade
from .params import DemoParams
from .warp import dense_field, grid_points, invert_displacement, upsample_map

STABLE_LANDMARKS = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
"""0-based rows that never move with an expression: nose (iBUG 28-36) and eye corners."""


@dataclass(frozen=True)
class ExpressionClass:
    """One synthetic expression class, labelled as its layout's annotations label it.

    Attributes
    ----------
    name : str
        The label: Estimated Emotion in a sheet, or the SMIC label folder.
    code : int
        Objective class (Davison et al. 2018: I = AU6/12, II = AU1/2/5,
        III = AU4/7, VI = AU15/17, VII = other), also used as SAMM's
        inducement code and in clip names (``<subject>_<code>_<clip>``,
        ``EP<code>_<clip>``).
    action_units : str or int
        The sheet's Action Units cell (an int where SAMM writes a bare number).
    moves : dict
        0-based landmark row → (dx, dy) direction in image axes (y down),
        relative to the most-moving point.
    folds : tuple of str
        Skin folds the action units deepen (:data:`.folds.FOLDS`).
    """

    name: str
    code: int
    action_units: str | int
    moves: dict[int, tuple[float, float]]
    folds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        still = sorted(set(self.moves) & set(STABLE_LANDMARKS))
        if still:
            raise ValueError(f"class {self.name!r} moves landmark rows {still}, which must stay still")
        unknown = sorted(set(self.folds) - set(FOLDS))
        if unknown:
            raise ValueError(f"class {self.name!r} names unknown folds {unknown}; known: {', '.join(FOLDS)}")

    def displacements(self) -> np.ndarray:
        """(68, 2) landmark displacements, largest norm 1, zero for unlisted rows."""
        disp = np.zeros((68, 2))
        for row, vec in self.moves.items():
            disp[row] = vec
        return disp / np.linalg.norm(disp, axis=1).max()


def _mirror(moves: dict[int, tuple[float, float]], pairs: dict[int, int]) -> dict[int, tuple[float, float]]:
    """Add the left-right mirror of each move (x negated) under its partner row."""
    out = dict(moves)
    for row, (dx, dy) in moves.items():
        out[pairs[row]] = (-dx, dy)
    return out


_BROW_PAIRS = {17: 26, 18: 25, 19: 24, 20: 23, 21: 22}
_LID_PAIRS = {37: 44, 38: 43, 40: 47, 41: 46}
_MOUTH_PAIRS = {48: 54, 49: 53, 59: 55, 60: 64, 50: 52, 58: 56}

# Landmark motions of the action units the demo uses (0-based iBUG rows).
# AU12: lip corners pulled up and out, the lips next to them follow.
AU12 = _mirror(
    {48: (-0.55, -0.85), 49: (-0.25, -0.45), 59: (-0.3, -0.4), 60: (-0.3, -0.45),
     50: (-0.05, -0.15), 58: (-0.1, -0.15)},
    _MOUTH_PAIRS,
)
# AU1+2: inner and outer brows raised together.
AU1_2 = _mirror({17: (0, -0.8), 18: (0, -0.95), 19: (0, -1), 20: (0, -1), 21: (0, -0.9)}, _BROW_PAIRS)
# AU4 (+ slight AU7): brows lowered and drawn to the midline, lids narrowed.
AU4_7 = _mirror(
    {21: (0.55, 0.75), 20: (0.4, 0.75), 19: (0.2, 0.55), 18: (0.1, 0.35), 17: (0, 0.2)}
    | {37: (0, 0.15), 38: (0, 0.15), 40: (0, -0.2), 41: (0, -0.2)},
    _BROW_PAIRS | _LID_PAIRS,
)
# AU15+17: lip corners pulled down, the chin boss pushes the lower lip up.
AU15_17 = _mirror(
    {48: (0.15, 0.9), 49: (0.05, 0.3), 60: (0.1, 0.3), 59: (0.05, -0.35), 58: (0, -0.5), 7: (0, -0.15)},
    _MOUTH_PAIRS | {7: 9},
) | {57: (0, -0.55), 66: (0, -0.3), 8: (0, -0.2)}
# AU4 alone: brows lowered and drawn together (CASME II's commonest "others").
AU4 = _mirror({21: (0.5, 0.7), 20: (0.35, 0.7), 19: (0.2, 0.5), 18: (0.1, 0.3), 17: (0, 0.15)}, _BROW_PAIRS)
# AU6: the cheeks raised, pushing the lower lids up (the eye part of a felt smile).
AU6 = _mirror({40: (0, -0.45), 41: (0, -0.5)}, _LID_PAIRS)
# AU5: the upper lids raised, widening the eyes.
AU5 = _mirror({37: (0, -0.45), 38: (0, -0.45)}, _LID_PAIRS)
# AU24: the lips pressed together: the upper lip's middle down, the lower lip's up (outer contour only: the
# inner lips of a closed mouth coincide and cannot move apart smoothly).
AU24 = _mirror({50: (0, 0.3), 58: (0, -0.35)}, _MOUTH_PAIRS) | {51: (0, 0.3), 57: (0, -0.35)}


def _table(*classes: ExpressionClass) -> dict[str, ExpressionClass]:
    return {cls.name: cls for cls in classes}


LAYOUT_CLASSES: dict[str, dict[str, ExpressionClass]] = {
    # SAMM: Estimated Emotion, objective class (also the clip-name code), Action Units as SAMM writes them.
    "samm": _table(
        ExpressionClass("Happiness", 1, 12, AU12, ("nasolabial",)),
        ExpressionClass("Surprise", 2, "1+2", AU1_2, ("forehead",)),
        ExpressionClass("Anger", 3, "4+7", AU4_7, ("glabella",)),
    ),
    # CASME II: lower-case emotions, objective classes as the 2019 sheet mostly gives them for these AUs.
    "casme2": _table(
        ExpressionClass("happiness", 1, 12, AU12, ("nasolabial",)),
        ExpressionClass("surprise", 2, "1+2", AU1_2, ("forehead",)),
        ExpressionClass("disgust", 3, "4+7", AU4_7, ("glabella",)),
        ExpressionClass("repression", 6, "15+17", AU15_17, ("chin",)),
        ExpressionClass("others", 7, 4, AU4, ("glabella",)),
    ),
    # SMIC: the label folders; codes number the classes for the clip plans only.
    "smic": _table(
        ExpressionClass("positive", 1, 12, AU12, ("nasolabial",)),
        ExpressionClass("surprise", 2, "1+2", AU1_2, ("forehead",)),
        ExpressionClass("negative", 3, "4+7", AU4_7, ("glabella",)),
    ),
    # CAS(ME)³: its lower-case emotions; AU cells with commas where CAS(ME)³ writes them so.
    "casme3": _table(
        ExpressionClass("happy", 1, "12", AU12, ("nasolabial",)),
        ExpressionClass("surprise", 2, "1+2", AU1_2, ("forehead",)),
        ExpressionClass("disgust", 3, "4,7", AU4_7, ("glabella",)),
    ),
}
"""Expression classes per layout, keyed by the label the layout writes."""

CLASSES = LAYOUT_CLASSES["samm"]
"""The SAMM-layout demo's classes (``demo``)."""

MACRO_CLASSES: dict[str, ExpressionClass] = _table(
    ExpressionClass("Happiness", 1, "6+12", AU12 | AU6, ("nasolabial",)),
    ExpressionClass("Surprise", 2, "1+2+5", AU1_2 | AU5, ("forehead",)),
    ExpressionClass("Anger", 3, "4+7+24", AU4_7 | AU24, ("glabella",)),
)
"""The SAMM-layout classes as macro-expressions (``demo-lv``): the whole expression, with more action units than
the fragment of it a micro-expression shows (:data:`CLASSES`)."""


def expression_class(name: str, layout: str = "samm") -> ExpressionClass:
    """The class called ``name`` in ``layout``; raises with the known names."""
    classes = LAYOUT_CLASSES[layout]
    try:
        return classes[name]
    except KeyError:
        raise ValueError(f"unknown demo class {name!r} for the {layout} layout; known: {', '.join(classes)}") from None


def face_anchors(landmarks: np.ndarray, params: DemoParams) -> np.ndarray:
    """Still points around the landmarks (N, 2): forehead, temples and cheeks.

    The iBUG landmarks stop at the brows and leave the cheeks empty; without
    still points there, a spline through moving brows would drag the whole
    forehead and hair. Offsets are fractions of the inter-ocular distance.
    """
    d = interocular(landmarks)
    up = np.array([0.0, -params.forehead_anchor * d])
    forehead = landmarks[[17, 19, 21, 22, 24, 26]] + up
    out = np.array([params.temple_anchor * d, 0.0])
    temples = np.stack([landmarks[17] - out, landmarks[26] + out])
    cheeks = np.stack([(landmarks[a] + landmarks[b]) / 2 for a, b in ((2, 31), (14, 35), (4, 48), (12, 54))])
    return np.concatenate([forehead, temples, cheeks])


def expression_basis(subject: Subject, cls: ExpressionClass, params: DemoParams) -> np.ndarray:
    """Forward displacement field of ``cls`` on ``subject``'s canvas at unit amplitude.

    Returns (gh, gw, 2) float64 on the coarse grid of :func:`.warp.grid_points`;
    it equals ``cls.displacements()`` at the subject's landmarks and is zero
    at the :func:`face_anchors`.
    """
    return landmark_field(subject, cls.displacements(), params)


def landmark_field(subject: Subject, displacements: np.ndarray, params: DemoParams) -> np.ndarray:
    """Forward displacement field on ``subject``'s canvas through ``displacements`` (68, 2) at its landmarks.

    Returns (gh, gw, 2) float64 on the coarse grid of :func:`.warp.grid_points`,
    zero at the :func:`face_anchors` and the canvas border.
    """
    shape = subject.image.shape[:2]
    grid = grid_points(shape, params.map_stride)
    anchors = face_anchors(subject.landmarks, params)
    centres = np.concatenate([subject.landmarks, anchors])
    values = np.concatenate([displacements, np.zeros_like(anchors)])
    field = dense_field(centres, values, shape, at=grid)
    return field.reshape(grid.shape)


def expression_shade(subject: Subject, cls: ExpressionClass, params: DemoParams) -> np.ndarray:
    """Darkening of ``subject``'s canvas by ``cls``'s folds at full intensity, (H', W') float32 in [0, depth].

    The canvas is multiplied by ``1 − intensity · shade`` before the
    expression warp (:func:`.folds.fold_shade`; depth ``params.fold_depth``).
    """
    shade = fold_shade(cls.folds, subject.landmarks, subject.image.shape[:2], params.fold_width, params.fold_blur)
    return np.float32(params.fold_depth) * shade


def amplitude_profile(n_frames: int, onset: int, apex: int, offset: int, release: int | None = None) -> np.ndarray:
    """Expression strength per frame index: 0 until onset, raised cosine to 1 at apex, back to 0 at offset.

    With ``release`` (apex <= release < offset) the strength stays 1 from
    ``apex`` to ``release`` before it falls: a held expression or a closed eye.

    Returns (n_frames,) float64 in [0, 1], exactly 0 outside (onset, offset)
    and exactly 1 from ``apex`` to ``release``.
    """
    release = apex if release is None else release
    t = np.arange(n_frames, dtype=np.float64)
    rise = np.clip((t - onset) / (apex - onset), 0, 1)
    fall = np.clip((offset - t) / (offset - release), 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))


@dataclass(frozen=True)
class HeadDrift:
    """Rigid head pose drifting from ``start`` to ``end`` over a clip.

    Poses are (tx, ty, rotation in degrees, positive counter-clockwise on
    screen) about ``pivot`` (frame pixels, the subject's eye midpoint). The
    pose at frame index k is ``start + (end − start)·s`` with
    ``s = (1 − cos(π·k/(n − 1)))/2``: smooth, at rest at both ends.
    """

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    pivot: tuple[float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator, params: DemoParams, pivot: np.ndarray) -> HeadDrift:
        bounds = np.array([params.head_shift_px, params.head_shift_px, params.head_rotation_deg])
        start, end = (tuple(float(v) for v in rng.uniform(-bounds, bounds)) for _ in range(2))
        return cls(start, end, (float(pivot[0]), float(pivot[1])))

    def pose(self, index: int, n_frames: int) -> np.ndarray:
        """(tx, ty, degrees) at frame ``index`` of ``n_frames``."""
        s = 0.5 - 0.5 * np.cos(np.pi * index / max(n_frames - 1, 1))
        return np.asarray(self.start) + (np.asarray(self.end) - np.asarray(self.start)) * s

    def affine(self, index: int, n_frames: int) -> np.ndarray:
        """2×3 matrix taking still-face frame pixels to moved-head frame pixels."""
        return pose_affine(self.pose(index, n_frames), self.pivot)


def pose_affine(pose: np.ndarray, pivot: tuple[float, float]) -> np.ndarray:
    """2×3 matrix of a rigid head pose (tx, ty, degrees counter-clockwise on screen) about ``pivot``."""
    tx, ty, degrees = pose
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    # Screen counter-clockwise with y pointing down.
    linear = np.array([[c, s], [-s, c]])
    pivot = np.asarray(pivot)
    return np.hstack([linear, (pivot - linear @ pivot + (tx, ty))[:, None]])


def frame_maps(
    subject: Subject,
    basis: np.ndarray,
    amplitude: float,
    head: np.ndarray,
    params: DemoParams,
) -> np.ndarray:
    """``cv2.remap`` map, (H, W, 2) float32, from a frame to the subject canvas.

    A frame pixel is taken back through the head pose (``head``, 2×3, frame
    to frame) to the still face, then through the inverse of the expression
    field scaled to ``amplitude`` pixels.
    """
    height, width = params.frame_size
    grid = grid_points((height, width), params.map_stride)
    inverse_head = np.linalg.inv(np.vstack([head, (0, 0, 1)]))[:2]
    still = apply_affine(inverse_head, grid.reshape(-1, 2)).reshape(grid.shape) + subject.pad
    source = invert_displacement(basis, amplitude, still, params.map_stride, params.inverse_iterations)
    return upsample_map(source, (height, width), params.map_stride)


def moved_landmarks(subject: Subject, cls: ExpressionClass, amplitude: float, head: np.ndarray) -> np.ndarray:
    """True landmark positions (68, 2) in frame pixels for an expression amplitude and head pose."""
    return apply_affine(head, subject.frame_landmarks + amplitude * cls.displacements())
