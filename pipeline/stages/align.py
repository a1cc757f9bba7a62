"""Stage 2.3: crop the face and align every frame to the clip's first frame.

The crop comes from the first frame's eye centres (Xia et al. 2019, eq. 1):
with the eye centres e1 (image left) and e2 and their distance d, the box
starts at e1 - (d1·d, d2·d) along the eye line and its normal and is
d4·d wide and d3·d high. The printed eq. 1 mixes the axes (its vertical term
is d1·(y_l - y_r), near zero for level eyes, which would cut the brows off);
this reading keeps the paper's constants and gives a box symmetric about the
eyes: 0.4·d beyond each eye centre sideways, 0.6·d above the eyes, 1.6·d below.

Every later frame is first mapped onto the first frame, then through the
same crop. Two methods (``AlignParams.method``):

- ``similarity``: a least-squares similarity fitted to stable points (eye
  corners, nose), which removes head motion but not expression motion.
- ``lwm``: Xia's eq. 2, the local weighted mean transformation (Goshtasby
  1988, :mod:`.lwm`) of the control points ``lwm_points`` (Xia: all 68),
  which maps every control point of the frame onto its place in the first
  frame. It is computed as the similarity plus the LWM of what the
  similarity leaves (the landmark residuals), which is the same warp near
  the landmarks (a quadratic reproduces the similarity exactly) and falls
  back to the similarity away from them, where LWM is undefined.

Temporal smoothing (``smoothing_ms``) acts on the similarity's matrices as
before, and for ``lwm`` also on the landmark residuals over time. The LWM
weights and polynomials depend only on the first frame's points, so the
warp is linear in the frame's landmark positions and smoothing the
residuals is exactly smoothing the warp.

**Deviation from Xia: the default is ``similarity``.** LWM maps every
control point onto the first frame's, so with Xia's 68 points it also maps
the landmarks that move with the expression (brows, lids, mouth) back to
their neutral place and removes that motion from the crops. On the 36-clip
demo of six different people (``benchmarks/alignment_demo.py``, true
landmarks carried through each warp, 2026-11-30): both keep the stable
points near the first frame's (median per-frame mean 0.38 px similarity,
0.49 px LWM; 90th percentile of the worst point 2.1 and 3.4 px), but LWM
keeps 47 % of the expression displacement at the apex (similarity 101 %)
and the std-diff apex estimate is off by 0.97 frames on average instead of
0.44 (exact on 21 clips instead of 30). (On the earlier demo of one
photograph: 51 % against 98 % kept, apex error 3.8 against 0.11 frames.) The printed n = 6 (exact quadratics through 6 neighbours) is also
numerically unusable on 68 landmarks: stable points land up to 60 px off.
LWM over the stable points alone (``lwm_points = stable_points``) keeps 94 %
of the expression but its apex error is 2.0 frames. Mapping every frame of
a clip onto its first frame over all 68 points is what Xia's text says
("all images in one sequence can be aligned frame by frame", citing Pfister
et al. 2011), and what costs the expression here.

**Long videos.** A long video has one reference geometry, its first frame
with a face (:func:`.landmarks.first_face`, found once per worker
process and video), and every frame of every window is mapped onto it. Head
motion is smoothed within each window (``mode="nearest"`` at its ends);
frames of a window in which no face was found are cropped at the reference
position (their ``face_found`` is False). Crops are 128 pixels a side there
by default (:data:`LONG_VIDEO_SIZE`).

References
----------
Xia et al. (2019), Spatiotemporal Recurrent Convolutional Networks for
Recognizing Spontaneous Micro-expressions. https://doi.org/10.1109/TMM.2019.2931351
Goshtasby (1988), Image registration by local approximation methods.
https://doi.org/10.1016/0262-8856(88)90016-9
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from mepipe.featurestore import features

from .frames import VideoFrames
from .landmarks import LEFT_EYE, RIGHT_EYE, LandmarkParams, first_face
from .lwm import N_COEFFICIENTS, LocalWeightedMean
from .cost import per_frame
from .registry import SOURCE_FRAMES, StageOutput, register_stage
from .windows import SOURCE_VIDEO, Windowed

VERSION = "2"

METHODS = ("similarity", "lwm")
"""Ways to map every frame onto the first: see the module docstring."""

ALL_LANDMARKS = tuple(range(1, 69))
"""1-based numbers of the 68 iBUG landmarks: Xia's LWM control points."""

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}

LONG_VIDEO_SIZE = 128
"""Crop side on long videos: the spotting baselines' 128x128 (SOFTNet, MEAN), which their features and Nag's
64x64 inputs are made from, at a quarter of the 256-pixel crops' store and disk."""


@dataclass(frozen=True)
class AlignParams:
    """Crop geometry and alignment settings.

    Attributes
    ----------
    deltas : (d1, d2, d3, d4)
        Xia eq. 1 constants: side margin, top margin, height and width, in
        inter-ocular distances.
    size : int
        Side of the canonical square crop in pixels; consumers resize from it.
    method : {"similarity", "lwm"}
        How every frame is mapped onto the first (module docstring; Xia:
        ``lwm``, which removes half of the expression motion, so
        ``similarity`` is the default).
    stable_points : tuple of int
        1-based landmark numbers the per-frame similarity is fitted to: the
        eye corners 37, 40, 43, 46 (not the lids, which move in blinks) and
        the nose 28-36.
    lwm_points : tuple of int
        1-based landmark numbers that are LWM control points (``lwm``; Xia:
        all 68).
    lwm_neighbours : int
        n, the control points each LWM polynomial is fitted to (>= 6). Xia's
        wording is n = 6, an exact fit through the point and its 5 nearest;
        12 (least squares) because 6-point landmark neighbourhoods are often
        near-degenerate and amplify landmark jitter (see :mod:`.lwm`).
    smoothing_ms : float
        Gaussian smoothing (sigma, milliseconds) of the per-frame transform
        over time (the similarity's matrices; for ``lwm`` also the landmark
        residuals). Head motion is slow next to landmark jitter; at 200 fps
        15 ms is 3 frames, at 25 fps it is below one frame. 0 = none.
    interpolation : str
        ``linear``, ``cubic`` or ``area`` resampling for the warp.
    """

    deltas: tuple[float, float, float, float] = (0.4, 0.6, 2.2, 1.8)
    size: int = 256
    method: str = "similarity"
    stable_points: tuple[int, ...] = (37, 40, 43, 46, 28, 29, 30, 31, 32, 33, 34, 35, 36)
    lwm_points: tuple[int, ...] = ALL_LANDMARKS
    lwm_neighbours: int = 12
    smoothing_ms: float = 15.0
    interpolation: str = "linear"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"AlignParams.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("stable_points", "lwm_points"):
            points = tuple(getattr(self, name))
            if len(set(points)) != len(points) or not all(isinstance(p, (int, np.integer)) and 1 <= p <= 68
                                                          for p in points):
                raise ValueError(f"AlignParams.{name} must be distinct landmark numbers in 1..68, got {points!r}")
            object.__setattr__(self, name, tuple(int(p) for p in points))
        if not (isinstance(self.lwm_neighbours, int) and N_COEFFICIENTS <= self.lwm_neighbours <= len(self.lwm_points)):
            raise ValueError(f"AlignParams.lwm_neighbours must be an int from {N_COEFFICIENTS} to the "
                             f"{len(self.lwm_points)} lwm_points, got {self.lwm_neighbours!r}")
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(f"AlignParams.interpolation must be one of {sorted(_INTERPOLATION)}, "
                             f"got {self.interpolation!r}")
        if self.method == "lwm" and self.interpolation == "area":
            raise ValueError("AlignParams.interpolation 'area' needs an affine warp (method 'similarity'); "
                             "use 'linear' or 'cubic' with method 'lwm'")
        if len(self.deltas) != 4 or min(self.deltas[2:]) <= 0:
            raise ValueError(f"AlignParams.deltas must be 4 numbers with positive height/width, got {self.deltas}")


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left eye (points 37-42) and image-right eye (43-48)."""
    return points[list(LEFT_EYE)].mean(0), points[list(RIGHT_EYE)].mean(0)


def crop_transform(points: np.ndarray, params: AlignParams = AlignParams()) -> np.ndarray:
    """2x3 affine from source pixels to crop pixels for one frame's landmarks (eq. 1)."""
    e1, e2 = (c.astype(np.float64) for c in eye_centres(points))
    d = float(np.linalg.norm(e2 - e1))
    if d <= 0:
        raise ValueError("eye centres coincide; landmarks are degenerate")
    ux = (e2 - e1) / d
    uy = np.array([-ux[1], ux[0]])
    d1, d2, d3, d4 = params.deltas
    top_left = e1 - d1 * d * ux - d2 * d * uy
    sx, sy = params.size / (d4 * d), params.size / (d3 * d)
    return np.array([[ux[0] * sx, ux[1] * sx, -top_left @ ux * sx],
                     [uy[0] * sy, uy[1] * sy, -top_left @ uy * sy]])


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src onto dst, 2x3."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, t = src - ms, dst - md
    norm = (s ** 2).sum()
    if norm == 0:
        raise ValueError("stable points coincide; cannot fit a similarity")
    a = (s * t).sum() / norm
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum() / norm
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (md - rot @ ms)[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine equal to applying ``inner`` then ``outer``."""
    m = outer[:, :2] @ inner
    m[:, 2] += outer[:, 2]
    return m


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """The 2x3 affine undoing ``m``."""
    linear = np.linalg.inv(m[:, :2])
    return np.hstack([linear, -(linear @ m[:, 2])[:, None]])


@dataclass
class AlignResult:
    crops: np.ndarray  # (T, S, S, C) uint8
    landmarks: np.ndarray  # (T, 68, 2) float32, crop pixels
    transforms: np.ndarray  # (T, 2, 3) float32, source -> crop: the warp for similarity, its affine part for lwm


def _sigma_frames(params: AlignParams, fps: float) -> float:
    return params.smoothing_ms * fps / 1000.0


def head_motion(landmarks: np.ndarray, params: AlignParams, fps: float,
                reference: np.ndarray | None = None) -> np.ndarray:
    """Per-frame similarity (T, 2, 3) mapping each frame's stable points onto the reference's (default: the first
    frame's), smoothed."""
    stable = [p - 1 for p in params.stable_points]
    target = (landmarks[0] if reference is None else reference)[stable]
    sims = np.array([fit_similarity(points[stable], target) for points in landmarks])
    sigma = _sigma_frames(params, fps)
    if sigma > 0 and len(sims) > 1:
        sims = gaussian_filter1d(sims, sigma, axis=0, mode="nearest")
    return sims


@dataclass
class ClipWarp:
    """The per-frame mapping between source pixels and crop pixels of one clip.

    Frame t's source pixels map to first-frame pixels by the similarity
    ``to_first[t]`` and, for ``lwm``, by the LWM that carries the control
    points onto the first frame's; the crop transform ``reference`` (eq. 1)
    then maps first-frame pixels into the crop. The LWM is held as what it
    adds to the similarity's inverse in the frame's pixels: ``residuals[t]``
    at the first frame's control points, interpolated by ``lwm``.
    """

    reference: np.ndarray  # (2, 3) first-frame source -> crop
    to_first: np.ndarray  # (T, 2, 3) frame t source -> first-frame source (similarity)
    lwm: LocalWeightedMean | None = None  # over the first frame's control points
    residuals: np.ndarray | None = None  # (T, N, 2) frame-t pixels

    @classmethod
    def fit(cls, landmarks: np.ndarray, params: AlignParams, fps: float,
            reference: np.ndarray | None = None) -> "ClipWarp":
        """The warp of a clip with landmarks (T, 68, 2) in source pixels, onto ``reference`` (68, 2) (default: its
        first frame's landmarks; for a window of a long video, the video's reference frame's)."""
        landmarks = np.asarray(landmarks, dtype=np.float64)
        first_points = landmarks[0] if reference is None else np.asarray(reference, dtype=np.float64)
        warp = cls(crop_transform(first_points, params), head_motion(landmarks, params, fps, first_points))
        if params.method == "lwm":
            control = [p - 1 for p in params.lwm_points]
            sigma = _sigma_frames(params, fps)
            track = landmarks[:, control]
            if sigma > 0 and len(track) > 1:
                track = gaussian_filter1d(track, sigma, axis=0, mode="nearest")
            first = first_points[control]
            expected = np.stack([apply_affine(invert_affine(m), first) for m in warp.to_first])
            warp.lwm = LocalWeightedMean.fit(first, params.lwm_neighbours)
            warp.residuals = track - expected
        return warp

    def affine(self, t: int) -> np.ndarray:
        """Source -> crop affine of frame t: the whole warp for ``similarity``, its affine part for ``lwm``."""
        return compose(self.reference, self.to_first[t])

    def to_source(self, t: int, crop_points: np.ndarray, operator: np.ndarray | None = None) -> np.ndarray:
        """Frame-t source pixels (Q, 2) of crop pixels (Q, 2).

        ``operator`` is ``self.lwm.operator`` at those points' first-frame
        positions, when the caller reuses it across frames.
        """
        first = apply_affine(invert_affine(self.reference), crop_points)
        source = apply_affine(invert_affine(self.to_first[t]), first)
        if self.lwm is not None:
            operator = self.lwm.operator(first) if operator is None else operator
            source = source + operator @ self.residuals[t]
        return source

    def to_crop(self, t: int, points: np.ndarray, tolerance: float = 1e-4, max_iterations: int = 50) -> np.ndarray:
        """Crop pixels (Q, 2) of frame-t source pixels (Q, 2): the inverse of :meth:`to_source`.

        For ``lwm`` the inverse has no closed form; it is found by the
        fixed-point iteration c <- c + A (p - to_source(c)), A the similarity's
        linear part, which converges while the LWM residual warp changes by
        less than a pixel per pixel (it changes by a few pixels over tens).
        """
        points = np.asarray(points, dtype=np.float64)
        m = self.affine(t)
        crop = apply_affine(m, points)
        if self.lwm is None:
            return crop
        for _ in range(max_iterations):
            step = (points - self.to_source(t, crop)) @ m[:, :2].T
            crop = crop + step
            if np.abs(step).max() < tolerance:
                break
        return crop


def align_clip(frames: np.ndarray, landmarks: np.ndarray, params: AlignParams = AlignParams(),
               fps: float = 200.0, reference: np.ndarray | None = None) -> AlignResult:
    """Aligned crops of a clip.

    Parameters
    ----------
    frames : (T, H, W) or (T, H, W, 3) uint8
    landmarks : (T, 68, 2) float32, source pixels
    fps : float
        Frame rate, for the temporal smoothing of head motion.
    reference : (68, 2) array, optional
        Landmarks of the frame every frame is aligned to; default the first frame's.

    Returns
    -------
    AlignResult
        crops (T, size, size, C) uint8 with C = 1 or 3, landmarks in crop
        pixels, and the per-frame source-to-crop affine transforms (for
        ``lwm``, the affine part of the warp, to which the LWM of the
        landmark residuals adds; :class:`ClipWarp` recomputes it from the
        landmarks).
    """
    if len(frames) != len(landmarks):
        raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark sets")
    warp = ClipWarp.fit(landmarks, params, fps, reference)
    flags = _INTERPOLATION[params.interpolation]
    n, s = len(frames), params.size
    channels = 1 if frames.ndim == 3 else frames.shape[3]
    crops = np.empty((n, s, s, channels), dtype=np.uint8)
    out_points = np.empty((n, 68, 2), dtype=np.float32)
    transforms = np.empty((n, 2, 3), dtype=np.float32)
    grid = operator = None
    if warp.lwm is not None:
        grid = np.stack(np.meshgrid(np.arange(s, dtype=np.float64), np.arange(s, dtype=np.float64)), -1).reshape(-1, 2)
        operator = warp.lwm.operator(apply_affine(invert_affine(warp.reference), grid))
    for t in range(n):
        m = warp.affine(t)
        if warp.lwm is None:
            warped = cv2.warpAffine(frames[t], m, (s, s), flags=flags, borderMode=cv2.BORDER_REPLICATE)
            out_points[t] = apply_affine(m, landmarks[t])
        else:
            source = warp.to_source(t, grid, operator).astype(np.float32).reshape(s, s, 2)
            warped = cv2.remap(frames[t], source[..., 0], source[..., 1], flags, borderMode=cv2.BORDER_REPLICATE)
            out_points[t] = warp.to_crop(t, landmarks[t])
        crops[t] = warped.reshape(s, s, channels)
        transforms[t] = m
    return AlignResult(crops, out_points, transforms)


def _outputs(result: AlignResult) -> StageOutput:
    return StageOutput({features.CROPS.name: result.crops, features.LANDMARKS_ALIGNED.name: result.landmarks,
                        features.TRANSFORMS.name: result.transforms})


def _kernel(ctx, inputs, params, read):
    return _outputs(align_clip(inputs[SOURCE_FRAMES].frames, inputs[features.LANDMARKS.name], params, ctx.fps))


@lru_cache(maxsize=4)
def video_reference(frames: VideoFrames, params: LandmarkParams) -> tuple[int, np.ndarray]:
    """A long video's reference: its first frame with a face and that face's landmarks (read-only).

    Kept per worker process (a few videos), so a worker searches each video once, however many of its windows it
    aligns; every window finds the same frame, as :func:`.landmarks.first_face` is deterministic.
    """
    position, points = first_face(frames, params)
    points.setflags(write=False)
    return position, points


def _window_kernel(ctx, inputs, params, read):
    """A window of a long video, aligned to the video's reference; frames without landmarks at the reference's place."""
    position, reference = video_reference(inputs[SOURCE_VIDEO], read["landmarks"])
    landmarks = np.array(inputs[features.LANDMARKS.name], dtype=np.float64)
    lost = np.isnan(landmarks).any(axis=(1, 2))
    landmarks[lost] = reference
    out = _outputs(align_clip(inputs[SOURCE_FRAMES].frames, landmarks, params, ctx.fps, reference))
    out.events.update({"reference_frame": int(inputs[SOURCE_VIDEO].ctx.frame_numbers[position]),
                       "frames_at_reference": int(lost.sum())})
    return out


def _video_events(windows: list[dict]) -> dict:
    """A long video's alignment events: its reference frame and the frames cropped at the reference's place."""
    return {"reference_frame": windows[0]["reference_frame"] if windows else None,
            "frames_at_reference": sum(w["frames_at_reference"] for w in windows)}


register_stage(
    name="align", version=VERSION, params=AlignParams, kernel=_kernel, group="core", reads=("landmarks",),
    reads_source=True, inputs=(features.LANDMARKS,),
    writes=(features.CROPS, features.LANDMARKS_ALIGNED, features.TRANSFORMS), cost=per_frame(),
    window=Windowed(kernel=_window_kernel, combine=_video_events, defaults={"size": LONG_VIDEO_SIZE}))
