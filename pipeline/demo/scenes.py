"""Frames with several faces of chosen sizes at chosen places: detection and tracking test scenes.

Each face is the demo's base face (scikit-image's ``astronaut``, public
domain), scaled so that dlib's face box is ``size`` pixels wide and blended
into a smooth random backdrop with a soft elliptical mask. The true 68
landmarks of every face come with the frame, so a test can tell which face a
tracker followed and how well.

>>> frame, truth = render_scene([(200, 180, 60), (450, 200, 40)])  # doctest: +SKIP
>>> frame.shape, len(truth), truth[0].shape                        # doctest: +SKIP
((360, 640), 2, (68, 2))
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from .face import astronaut_grey, astronaut_landmarks

Face = tuple[float, float, float]
"""(x, y, size): the centre of dlib's face box and its width, in frame pixels."""


@functools.lru_cache(maxsize=1)
def astronaut_face_box() -> np.ndarray:
    """dlib's box (left, top, right, bottom) around the astronaut's face, the largest detection."""
    import dlib

    faces = dlib.get_frontal_face_detector()(astronaut_grey(), 1)
    if not faces:
        raise RuntimeError("dlib found no face in skimage.data.astronaut(); check the dlib installation")
    r = max(faces, key=lambda r: r.area())
    return np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64)


def render_scene(faces: Sequence[Face], shape: tuple[int, int] = (360, 640), seed: int = 0,
                 noise_sigma: float = 2.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """One greyscale frame (H, W) uint8 holding ``faces``, and each face's true landmarks (68, 2).

    The backdrop and the noise depend only on ``seed``; faces are drawn in
    the order given (later ones on top).
    """
    height, width = shape
    rng = np.random.default_rng(seed)
    coarse = rng.integers(60, 200, (max(2, height // 8), max(2, width // 8))).astype(np.uint8)
    canvas = cv2.resize(cv2.GaussianBlur(coarse, (5, 5), 2), (width, height),
                        interpolation=cv2.INTER_CUBIC).astype(np.float32)
    source, box, points = astronaut_grey().astype(np.float32), astronaut_face_box(), astronaut_landmarks()
    truth = []
    for x, y, size in faces:
        scale = size / (box[2] - box[0])
        matrix = np.array([[scale, 0, x - scale * (box[0] + box[2]) / 2],
                           [0, scale, y - scale * (box[1] + box[3]) / 2]])
        face = cv2.warpAffine(source, matrix, (width, height),
                              flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        mask = np.zeros((height, width), np.float32)
        cv2.ellipse(mask, (int(round(x)), int(round(y - 0.05 * size))),
                    (max(1, int(0.85 * size)), max(1, int(1.1 * size))), 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.08 * size))
        canvas = canvas * (1 - mask) + face * mask
        truth.append(points @ matrix[:, :2].T + matrix[:, 2])
    frame = np.clip(canvas + rng.normal(0, noise_sigma, canvas.shape), 0, 255).astype(np.uint8)
    return frame, truth


def render_clip(tracks: Sequence[Sequence[Face | None]], shape: tuple[int, int] = (360, 640),
                seed: int = 0) -> tuple[np.ndarray, list[list[np.ndarray | None]]]:
    """Frames (T, H, W) uint8 from per-frame face lists, and per frame the true landmarks of each face.

    ``tracks[t]`` lists the faces of frame ``t``; a ``None`` entry leaves that
    person out of the frame (its truth is None), keeping the others' indices.
    """
    frames, truths = [], []
    for t, faces in enumerate(tracks):
        shown = [f for f in faces if f is not None]
        frame, drawn = render_scene(shown, shape, seed=seed + t)
        it = iter(drawn)
        truths.append([next(it) if f is not None else None for f in faces])
        frames.append(frame)
    return np.stack(frames), truths
