"""Stage 2.2: 68-point facial landmarks per frame (dlib HOG detector + iBUG shape predictor).

Detection. dlib's frontal-face detector slides an 80x80 window
(:data:`DETECTOR_WINDOW`) down an image pyramid, so on a frame scaled by ``s``
it finds faces of about ``80 / s`` source pixels and larger. It therefore runs
on a ladder of scales: ``detect_scale`` first (a SAMM face of ~400 px is found
on a half-size frame for a quarter of the full-size cost), then twice that,
and so on up to ``80 / min_face`` (2x, upsampled, for faces of 40 px in
640x360 video), leaving out scales whose frame would exceed
``max_detect_pixels``. Looking for the largest face, the ladder stops at the
first scale that finds one: large faces cost what they cost before.

Choosing a person. A clip may show several people; ``face`` picks one:
``largest`` (default) follows the person whose face is largest over the clip
(the detector is run on ``track_samples`` more frames only when the first
detection holds several faces), ``center`` the face nearest the frame centre,
and ``"N"`` the N-th face from the left (1 = leftmost), both chosen on the
first frame where faces are found.

Tracking. Landmarks are predicted at full resolution in a box that moves with
them. Tracking counts as lost, and the detector runs again, when the
inter-ocular distance drifts by more than ``redetect_tolerance``, the box
leaves the frame, or the face patch stops resembling the previous frame's
(normalised cross-correlation below ``min_track_ncc``: a cut, an occlusion, a
person walking off); also every ``redetect_every`` frames if set. A
re-detection keeps the same person: the face nearest the last position, of a
similar size, or, in a shot that has shown nobody else, the one face found
(after a cut). Frames where that person is not found keep ``face_found``
False (landmarks interpolated); after ``reacquire_after`` such frames the
choice is made afresh.

Long videos. Each window of a long video is tracked on its own, starting
with a detection at its first frame; a window in which nobody is found
keeps NaN landmarks and boxes and ``face_found`` False (nothing to
interpolate from), where a clip without a face fails. The first frame with
a face of the whole video (:func:`first_face`) is align's reference.

References
----------
Dalal & Triggs (2005), Histograms of oriented gradients for human detection.
https://doi.org/10.1109/CVPR.2005.177
Kazemi & Sullivan (2014), One millisecond face alignment with an ensemble of
regression trees. https://doi.org/10.1109/CVPR.2014.241
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from mepipe.featurestore import features

from ..errors import ClipError
from .cost import per_frame
from .frames import VideoFrames, to_grey
from .registry import SOURCE_FRAMES, StageOutput, register_stage
from .windows import Windowed

VERSION = "2"

LEFT_EYE = tuple(range(36, 42))
"""0-based indices of points 37-42 (the eye on the image's left)."""
RIGHT_EYE = tuple(range(42, 48))
"""0-based indices of points 43-48."""

DETECTOR_WINDOW = 80
"""Side in pixels of the smallest face dlib's frontal HOG detector finds (its scanning window)."""

FACE_CHOICES = ("largest", "center")
"""Named ways of picking the person to follow; a number N (the N-th face from the left) is the third."""

_PATCH = 24
"""Side of the face patch compared between frames to notice a lost track."""


class NoFaceError(ClipError):
    """No face was found in any frame of a clip (or of a window of a long video)."""


@dataclass(frozen=True)
class LandmarkParams:
    """Detection, person choice and tracking settings.

    Attributes
    ----------
    detect_scale : float
        First (cheapest) scale of the detection ladder; detection cost grows
        with the scaled frame's area. Landmarks are always predicted at full
        resolution.
    min_face : int
        Smallest face searched for, in source pixels (the side of dlib's
        box); sets the top of the ladder, ``80 / min_face``.
    max_detect_pixels : int
        The ladder leaves out scales whose frame would have more pixels
        (a 2040x1088 frame stops at scale 1; 640x360 video reaches 2).
    face : str
        Whose face to follow: ``"largest"``, ``"center"`` or ``"N"`` (the
        N-th face from the left, 1-based). Part of the cache key.
    track_samples : int
        With several faces and ``face="largest"``, how many more frames are
        searched to find whose face is largest over the clip.
    redetect_every : int
        Run the detector again every N frames (0: only when tracking is lost).
    redetect_tolerance : float
        Relative change of the inter-ocular distance that counts as a lost track.
    min_track_ncc : float
        Normalised cross-correlation of the face patch with the previous
        frame's below which the track counts as lost.
    reacquire_after : int
        Frames without the followed person after which the person is chosen
        afresh by ``face``.
    """

    detect_scale: float = 0.5
    min_face: int = 40
    max_detect_pixels: int = 4_000_000
    face: str = "largest"
    track_samples: int = 4
    redetect_every: int = 0
    redetect_tolerance: float = 0.15
    min_track_ncc: float = 0.5
    reacquire_after: int = 10

    def __post_init__(self):
        face = str(self.face).strip().lower()
        if face not in FACE_CHOICES and not (face.isdigit() and int(face) >= 1):
            raise ValueError(f"LandmarkParams.face must be 'largest', 'center' or N >= 1 (the N-th face from "
                             f"the left), got {self.face!r}")
        object.__setattr__(self, "face", face)
        if not 0 < self.detect_scale <= 4:
            raise ValueError(f"LandmarkParams.detect_scale must be in (0, 4], got {self.detect_scale!r}")
        if not (isinstance(self.min_face, int) and self.min_face >= 20):
            raise ValueError(f"LandmarkParams.min_face must be an int >= 20 px, got {self.min_face!r}")
        for name in ("max_detect_pixels", "track_samples", "redetect_every", "reacquire_after"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"LandmarkParams.{name} must be an int >= 0, got {value!r}")


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


def detection_scales(shape: tuple[int, ...], params: LandmarkParams, down_to: float | None = None) -> list[float]:
    """The ladder of scales the detector runs at, cheapest first.

    ``down_to`` (source pixels) is the smallest face wanted, ``min_face`` by
    default; the ladder doubles from ``detect_scale`` until a face that small
    fills the detector window, or the scaled frame would exceed
    ``max_detect_pixels``.
    """
    top = DETECTOR_WINDOW / max(float(down_to or params.min_face), float(params.min_face))
    area = float(shape[0] * shape[1])
    scale = min(params.detect_scale, top)
    scales = [scale]
    while scale < top:
        scale = min(2 * scale, top)
        if area * scale * scale > params.max_detect_pixels:
            break
        scales.append(scale)
    return scales


@dataclass
class Detections:
    """Face boxes (left, top, right, bottom) in source pixels, and the scales the detector ran at."""

    boxes: list[np.ndarray] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    found_at: float | None = None


def detect_faces(grey: np.ndarray, params: LandmarkParams, *, every_scale: bool = False,
                 down_to: float | None = None, known: Detections | None = None) -> Detections:
    """Faces in a greyscale frame, climbing the scale ladder.

    Stops at the first scale that finds a face unless ``every_scale``; a face
    found again at a finer scale (box overlap above 0.5) is kept once.
    ``known`` is an earlier result on the same frame: its faces are kept and
    its scales are not run again.
    """
    detector, _ = _models()
    out = Detections(list(known.boxes), [], known.found_at) if known is not None else Detections()
    done = set(known.scales) if known is not None else set()
    for scale in detection_scales(grey.shape, params, down_to):
        if scale in done:
            continue
        out.scales.append(scale)
        if scale == 1.0:
            scaled = grey
        else:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            scaled = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=interpolation)
        for r in detector(scaled, 0):
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale
            if all(_iou(box, b) <= 0.5 for b in out.boxes):
                out.boxes.append(box)
                out.found_at = out.found_at or scale
        if out.boxes and not every_scale:
            break
    return out


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


def choose_face(boxes: list[np.ndarray], shape: tuple[int, ...], face: str) -> int | None:
    """Index of the box ``face`` picks: largest, nearest the centre, or N-th from the left (None if fewer)."""
    if not boxes:
        return None
    if face == "largest":
        return int(np.argmax([_area(b) for b in boxes]))
    if face == "center":
        centre = np.array([shape[1], shape[0]], dtype=np.float64) / 2
        return int(np.argmin([np.linalg.norm(_centre(b) - centre) for b in boxes]))
    order = np.argsort([_centre(b)[0] for b in boxes])
    n = int(face)
    return int(order[n - 1]) if n <= len(boxes) else None


def match_face(box: np.ndarray, boxes: list[np.ndarray]) -> int | None:
    """The box in ``boxes`` that is ``box``'s face again: centre within 0.75 box widths, size within 2x."""
    width = _width(box)
    best, best_distance = None, 0.75
    for i, b in enumerate(boxes):
        distance = np.linalg.norm(_centre(b) - _centre(box)) / width
        if distance < best_distance and 0.5 < _width(b) / width < 2.0:
            best, best_distance = i, distance
    return best


def _largest_track(detect, n_frames: int, start: int, boxes: list[np.ndarray], params: LandmarkParams) -> int:
    """Which of the faces found at frame ``start`` is largest over the clip (box area summed over samples).

    ``detect(t)`` returns the :class:`Detections` of frame ``t``; each face is
    followed from sample to sample with :func:`match_face`.
    """
    score = [_area(b) for b in boxes]
    last = list(boxes)
    later = np.linspace(start, n_frames - 1, params.track_samples + 1).round().astype(int)[1:]
    for t in sorted(set(later.tolist()) - {start}):
        found = list(detect(t).boxes)
        for i in np.argsort(score)[::-1]:
            j = match_face(last[i], found)
            if j is not None:
                score[i] += _area(found[j])
                last[i] = found.pop(j)
    return int(np.argmax(score))


def _face_patch(grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The frame inside ``box`` at _PATCH x _PATCH, float32; None if the box has left the frame.

    Large boxes are first subsampled to about twice the patch size (a
    strided view costs nothing; area-averaging 370 px down to 24 px costs
    more than the shape prediction it guards).
    """
    h, w = grey.shape[:2]
    left, top = max(0, int(box[0])), max(0, int(box[1]))
    right, bottom = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if right - left < 4 or bottom - top < 4:
        return None
    step = max(1, min(right - left, bottom - top) // (2 * _PATCH))
    patch = cv2.resize(grey[top:bottom:step, left:right:step], (_PATCH, _PATCH), interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32)


def _ncc(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-6 else 0.0


def _inside_fraction(box: np.ndarray, shape: tuple[int, ...]) -> float:
    h, w = shape[:2]
    inner = max(0.0, min(box[2], w) - max(box[0], 0)) * max(0.0, min(box[3], h) - max(box[1], 0))
    return inner / max(_area(box), 1e-9)


@dataclass
class LandmarkResult:
    """Per-frame landmarks of the followed person, and what it took to find them.

    ``detector_runs`` counts detector calls (one per scale tried);
    ``faces_at_start`` is how many faces the first detection found.
    """

    landmarks: np.ndarray  # (T, 68, 2) float32
    face_found: np.ndarray  # (T,) bool
    boxes: np.ndarray  # (T, 4) float32
    faces_at_start: int = 1
    detector_runs: int = 0
    redetections: int = 0
    found_at_scale: float | None = None

    @property
    def face_fraction(self) -> float:
        return float(self.face_found.mean()) if len(self.face_found) else 0.0

    def events(self) -> dict:
        """Per-clip numbers for the build report and the feature's attributes."""
        widths = self.boxes[self.face_found, 2] - self.boxes[self.face_found, 0]
        return {"frames_without_face": int((~self.face_found).sum()), "face_fraction": round(self.face_fraction, 4),
                "face_px": round(float(np.median(widths)), 1) if len(widths) else None,
                "faces_at_start": self.faces_at_start, "detector_runs": self.detector_runs,
                "redetections": self.redetections, "found_at_scale": self.found_at_scale}


class _Tracker:
    """The per-clip state of :func:`track_landmarks`: one followed person across the frames."""

    def __init__(self, grey_frames: np.ndarray, params: LandmarkParams):
        n = len(grey_frames)
        self.frames, self.params = grey_frames, params
        self.points = np.full((n, 68, 2), np.nan, dtype=np.float32)
        self.boxes = np.full((n, 4), np.nan, dtype=np.float32)
        self.found = np.zeros(n, dtype=bool)
        self.runs = self.redetections = 0
        self.anchor_box = self.anchor_centre = self.last_box = self.patch = None
        self.ref_iod = 0.0
        self.missing = 0
        self.alone = True

    def detect(self, t: int, **kwargs) -> Detections:
        found = detect_faces(self.frames[t], self.params, **kwargs)
        self.runs += len(found.scales)
        return found

    def start(self) -> tuple[int, Detections, int] | None:
        """The first frame with a face to follow, its detections, and which one is followed.

        Looking for the largest face, the ladder stops at the first scale
        with a face; it then climbs on only if faces down to half that size
        could still be missed (never for a large face found at the first
        scale), so that the other people in the shot are known too.
        """
        params = self.params
        for t in range(len(self.frames)):
            found = self.detect(t, every_scale=params.face != "largest")
            choice = choose_face(found.boxes, self.frames[t].shape, params.face)
            if choice is None:
                continue
            if params.face == "largest":
                half = 0.5 * _width(found.boxes[choice])
                if detection_scales(self.frames[t].shape, params, half)[-1] > found.found_at:
                    found = self.detect(t, every_scale=True, down_to=half, known=found)
                    choice = choose_face(found.boxes, self.frames[t].shape, params.face)
                if len(found.boxes) > 1:
                    choice = _largest_track(self.detect, len(self.frames), t, found.boxes, params)
            self.alone = len(found.boxes) == 1
            return t, found, choice
        return None

    def accept(self, t: int, box: np.ndarray, points: np.ndarray, detected: bool,
               patch: np.ndarray | None = None) -> None:
        self.points[t], self.boxes[t], self.found[t] = points, box, True
        self.patch = patch if patch is not None else _face_patch(self.frames[t], box)
        self.last_box, self.missing = box, 0
        if detected:
            self.anchor_box, self.anchor_centre = box, points.mean(0)
            self.ref_iod = inter_ocular(points)

    def follow(self, t: int) -> bool:
        """Predict frame ``t`` in the box moved with the landmarks; False if the track is lost."""
        box = self.anchor_box + np.tile(self.points[t - 1].mean(0) - self.anchor_centre, 2)
        frame = self.frames[t]
        pts = predict_landmarks(frame, box)
        if (abs(inter_ocular(pts) / self.ref_iod - 1) > self.params.redetect_tolerance
                or _inside_fraction(box, frame.shape) < 0.5):
            return False
        patch = _face_patch(frame, box)
        if _ncc(patch, self.patch) < self.params.min_track_ncc:
            return False
        self.accept(t, box, pts, detected=False, patch=patch)
        return True

    def redetect(self, t: int) -> None:
        """Find the followed person again, or leave the frame without a face.

        The person is the face nearest the last position with a similar
        size; in a shot that has only ever shown one face, also the one face
        found anywhere (a cut or a quick move). After ``reacquire_after``
        frames without the person, the choice is made afresh.
        """
        params = self.params
        afresh = self.missing >= params.reacquire_after
        found = self.detect(t, every_scale=True, down_to=None if afresh else 0.5 * _width(self.last_box))
        if afresh:
            choice = choose_face(found.boxes, self.frames[t].shape, params.face)
        else:
            choice = match_face(self.last_box, found.boxes)
            if choice is None and self.alone and len(found.boxes) == 1:
                choice = 0
        self.alone = self.alone and len(found.boxes) <= 1
        self.redetections += 1
        if choice is None:
            self.missing += 1
            return
        box = found.boxes[choice]
        self.accept(t, box, predict_landmarks(self.frames[t], box), detected=True)


def track_landmarks(grey_frames: np.ndarray, params: LandmarkParams = LandmarkParams()) -> LandmarkResult:
    """Landmarks of one person in every frame of a greyscale clip (T, H, W) uint8.

    Frames where that person is not found get landmarks interpolated from
    their neighbours and ``face_found`` False; a clip with no face at all
    raises :class:`ClipError`.
    """
    n = len(grey_frames)
    tracker = _Tracker(grey_frames, params)
    start = tracker.start()
    if start is None:
        scales = ", ".join(f"{s:g}" for s in detection_scales(grey_frames[0].shape, params))
        wanted = "any" if params.face in FACE_CHOICES else f"{params.face} or more"
        raise NoFaceError(f"no face found in any of the {n} frames ({wanted} faces of {params.min_face} px and "
                          f"larger looked for, detector at scales {scales}; see landmarks.min_face)")
    t0, found, choice = start
    box = found.boxes[choice]
    tracker.accept(t0, box, predict_landmarks(grey_frames[t0], box), detected=True)
    for t in range(t0 + 1, n):
        due = bool(params.redetect_every) and (t - t0) % params.redetect_every == 0
        if tracker.found[t - 1] and not due and tracker.follow(t):
            continue
        tracker.redetect(t)
    return LandmarkResult(_interpolate(tracker.points, tracker.found), tracker.found,
                          _interpolate(tracker.boxes, tracker.found), faces_at_start=len(found.boxes),
                          detector_runs=tracker.runs, redetections=tracker.redetections,
                          found_at_scale=found.found_at)


def _interpolate(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill rows where ``found`` is False by linear interpolation over time."""
    if found.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1).copy()
    for j in range(flat.shape[1]):
        flat[~found, j] = np.interp(t[~found], t[found], flat[found, j])
    return flat.reshape(values.shape)


def _area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _width(box: np.ndarray) -> float:
    return float(box[2] - box[0])


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _area(np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def first_face(frames: VideoFrames, params: LandmarkParams) -> tuple[int, np.ndarray]:
    """The first frame of a whole video with a face to follow, and that face's landmarks (68, 2) float32.

    Detected as a clip's first frame is (the ladder of scales, ``params.face``
    choosing among several faces), decoding one frame at a time until one
    is found.

    Raises
    ------
    NoFaceError
        No frame of the video shows a face.
    """
    for position, frame in frames.frames():
        grey = to_grey(frame[None])[0]
        found = detect_faces(grey, params, every_scale=params.face != "largest")
        choice = choose_face(found.boxes, grey.shape, params.face)
        if choice is not None:
            return position, predict_landmarks(grey, found.boxes[choice])
    raise NoFaceError(f"no face found in any of the video's {len(frames)} frames (see landmarks.min_face)")


def _kernel(ctx, inputs, params, read):
    decoded = inputs[SOURCE_FRAMES]
    result = track_landmarks(to_grey(decoded.frames), params)
    return StageOutput({features.FRAME.name: np.asarray(ctx.frame_numbers, dtype=np.int64),
                        features.LANDMARKS.name: result.landmarks, features.FACE_FOUND.name: result.face_found,
                        features.FACE_BOX.name: result.boxes},
                       result.events(), decoded.digest)


def _window_kernel(ctx, inputs, params, read):
    """A window of a long video: tracked from a detection at its first frame; NaN where it holds no face at all."""
    try:
        out = _kernel(ctx, inputs, params, read)
    except NoFaceError:
        n = len(ctx.frame_numbers)
        out = StageOutput({features.FRAME.name: np.asarray(ctx.frame_numbers, dtype=np.int64),
                           features.LANDMARKS.name: np.full((n, features.N_LANDMARKS, 2), np.nan, np.float32),
                           features.FACE_FOUND.name: np.zeros(n, bool),
                           features.FACE_BOX.name: np.full((n, 4), np.nan, np.float32)},
                          {"frames_without_face": n, "face_fraction": 0.0, "face_px": None, "faces_at_start": 0,
                           "detector_runs": None, "redetections": 0, "found_at_scale": None})
    out.events["frames"] = len(ctx.frame_numbers)
    return out


def video_face_events(windows: list[dict]) -> dict:
    """A long video's face events from its windows' (:meth:`LandmarkResult.events` plus each window's ``frames``)."""
    frames = sum(w["frames"] for w in windows)
    without = sum(w["frames_without_face"] for w in windows)
    sizes = [w["face_px"] for w in windows if w.get("face_px") is not None]
    return {"frames_without_face": without, "face_fraction": round(1 - without / frames, 4) if frames else 0.0,
            "face_px": round(float(np.median(sizes)), 1) if sizes else None,
            "faces_at_start": windows[0]["faces_at_start"] if windows else 0,
            "detector_runs": sum(w.get("detector_runs") or 0 for w in windows),
            "redetections": sum(w["redetections"] for w in windows),
            "found_at_scale": next((w["found_at_scale"] for w in windows if w.get("found_at_scale")), None),
            "windows_without_face": sum(w["frames_without_face"] == w["frames"] for w in windows)}


register_stage(
    name="landmarks", version=VERSION, params=LandmarkParams, kernel=_kernel, group="core", reads_source=True,
    writes=(features.FRAME, features.LANDMARKS, features.FACE_FOUND, features.FACE_BOX), cost=per_frame(setup=_models),
    window=Windowed(kernel=_window_kernel, combine=video_face_events))
