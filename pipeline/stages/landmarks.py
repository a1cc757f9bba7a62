"""Stage 2.2: 68-point facial landmarks per frame (dlib HOG detector + iBUG shape predictor).

The face is detected on a downscaled frame and landmarks are predicted at full
resolution. After the first detection the face is tracked: each frame's box is
the detection box moved with the landmarks, and the detector runs again only
when the landmarks jump (inter-ocular distance changes by more than
``redetect_tolerance``) or every ``redetect_every`` frames.

References
----------
Kazemi & Sullivan (2014), One millisecond face alignment with an ensemble of
regression trees. https://doi.org/10.1109/CVPR.2014.241
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import ClipError

VERSION = "1"

LEFT_EYE = tuple(range(36, 42))
"""0-based indices of points 37-42 (the eye on the image's left)."""
RIGHT_EYE = tuple(range(42, 48))
"""0-based indices of points 43-48."""


@dataclass(frozen=True)
class LandmarkParams:
    """Detection and tracking settings.

    Attributes
    ----------
    detect_scale : float
        Factor the frame is resized by before detection (detection costs
        grow with area; landmarks are always predicted at full resolution).
    upsample : int
        dlib detector upsampling passes (finds smaller faces, 4x cost each).
    redetect_every : int
        Run the detector again every N frames (0: only when tracking fails).
    redetect_tolerance : float
        Relative change of the inter-ocular distance from the first
        detection that counts as a tracking failure.
    """

    detect_scale: float = 0.5
    upsample: int = 0
    redetect_every: int = 0
    redetect_tolerance: float = 0.15


def shape_predictor_path() -> Path:
    """The iBUG 68-point model shipped by ``face-recognition-models``.

    Located with importlib rather than imported: that package imports the
    removed ``pkg_resources`` at import time.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package face-recognition-models is not installed; "
                                "pip install face-recognition-models (it ships the 68-point model)")
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"68-point shape predictor not found at {path}")
    return path


@lru_cache(maxsize=1)
def _models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))


def detect_face(grey: np.ndarray, params: LandmarkParams) -> np.ndarray | None:
    """The largest face box (left, top, right, bottom) in source pixels, or None."""
    detector, _ = _models()
    small = grey
    if params.detect_scale != 1.0:
        small = cv2.resize(grey, None, fx=params.detect_scale, fy=params.detect_scale, interpolation=cv2.INTER_AREA)
    rects = detector(small, params.upsample)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / params.detect_scale


def predict_landmarks(grey: np.ndarray, box: np.ndarray) -> np.ndarray:
    """68 landmarks (x, y) float32 for a face box, at the frame's resolution."""
    import dlib

    _, predictor = _models()
    rect = dlib.rectangle(*(int(round(v)) for v in box))
    shape = predictor(grey, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the two eye centres (means of points 37-42 and 43-48)."""
    return float(np.linalg.norm(points[list(RIGHT_EYE)].mean(0) - points[list(LEFT_EYE)].mean(0)))


@dataclass
class LandmarkResult:
    landmarks: np.ndarray  # (T, 68, 2) float32
    face_found: np.ndarray  # (T,) bool
    boxes: np.ndarray  # (T, 4) float32


def track_landmarks(grey_frames: np.ndarray, params: LandmarkParams = LandmarkParams()) -> LandmarkResult:
    """Landmarks for every frame of a greyscale clip (T, H, W) uint8.

    Frames where no face is found get landmarks interpolated from their
    neighbours and ``face_found`` False; a clip with no face at all raises
    :class:`ClipError`.
    """
    n = len(grey_frames)
    points = np.full((n, 68, 2), np.nan, dtype=np.float32)
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    anchor_box = anchor_centre = None
    ref_iod = None
    for t, frame in enumerate(grey_frames):
        due = bool(params.redetect_every) and t % params.redetect_every == 0
        if t > 0 and anchor_box is not None and found[t - 1] and not due:
            box = anchor_box + np.tile(points[t - 1].mean(0) - anchor_centre, 2)
            pts = predict_landmarks(frame, box)
            if abs(inter_ocular(pts) / ref_iod - 1) <= params.redetect_tolerance:
                points[t], boxes[t], found[t] = pts, box, True
                continue
        box = detect_face(frame, params)
        if box is None:
            continue
        pts = predict_landmarks(frame, box)
        points[t], boxes[t], found[t] = pts, box, True
        anchor_box, anchor_centre = box, pts.mean(0)
        ref_iod = ref_iod or inter_ocular(pts)
    if not found.any():
        raise ClipError(f"no face found in any of the {n} frames")
    return LandmarkResult(_interpolate(points, found), found, _interpolate(boxes, found))


def _interpolate(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill rows where ``found`` is False by linear interpolation over time."""
    if found.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1).copy()
    for j in range(flat.shape[1]):
        flat[~found, j] = np.interp(t[~found], t[found], flat[found, j])
    return flat.reshape(values.shape)
