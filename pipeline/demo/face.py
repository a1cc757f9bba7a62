"""The base face of the demo and its synthetic subjects.

The face is scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain),
greyscale. Its 68 iBUG landmarks are found once with dlib; every subject is a
small geometric (landmark-driven) and photometric variation of that face,
rendered on a canvas slightly larger than a frame so that per-frame head
motion never samples outside it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..stages.landmarks import shape_predictor_path
from .params import DemoParams
from .warp import dense_field, grid_points, upsample_map

LEFT_EYE = slice(36, 42)
"""0-based landmark rows of the eye on the image's left (iBUG 37-42)."""
RIGHT_EYE = slice(42, 48)
JAW = slice(0, 17)
BROWS = slice(17, 27)
EYES = slice(36, 48)


def astronaut_grey() -> np.ndarray:
    """The astronaut image as greyscale, (512, 512) uint8."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=1)
def astronaut_landmarks() -> np.ndarray:
    """The 68 dlib landmarks of the astronaut's face, (68, 2) float64 (x, y).

    Memoised: loading the predictor takes about a second and the answer is a
    constant of the installed dlib model. The largest detection is used (the
    detector also fires on the mission patch).
    """
    import dlib

    image = astronaut_grey()
    faces = dlib.get_frontal_face_detector()(image, 1)
    if not faces:
        raise RuntimeError("dlib found no face in skimage.data.astronaut(); check the dlib installation")
    face = max(faces, key=lambda r: r.area())
    shape = dlib.shape_predictor(str(shape_predictor_path()))(image, face)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eyes (means of iBUG 37-42 and 43-48)."""
    return landmarks[LEFT_EYE].mean(axis=0), landmarks[RIGHT_EYE].mean(axis=0)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


def canonical_similarity(landmarks: np.ndarray, params: DemoParams, pad: int) -> np.ndarray:
    """2×3 similarity taking astronaut pixels to canonical canvas pixels.

    The eyes become level, ``params.interocular_px`` apart, with their midpoint
    at ``params.eye_line`` of the frame (shifted by the canvas padding).
    """
    left, right = eye_centres(landmarks)
    src_mid, src_vec = (left + right) / 2, right - left
    height, width = params.frame_size
    dst_mid = np.array([params.eye_line[0] * width + pad, params.eye_line[1] * height + pad])
    scale = params.interocular_px / np.linalg.norm(src_vec)
    angle = -np.arctan2(src_vec[1], src_vec[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[c, -s], [s, c]])
    return np.hstack([linear, (dst_mid - linear @ src_mid)[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped by a 2×3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class Subject:
    """One synthetic subject: its neutral face and landmarks on a padded canvas.

    Attributes
    ----------
    subject : str
        Three-digit id, ``"001"``.
    image : ndarray
        Neutral face, (H + 2·pad, W + 2·pad) float32 grey levels in [0, 255].
    landmarks : ndarray
        (68, 2) float64 landmark positions in canvas pixels.
    pad : int
        Canvas margin; frame pixel (x, y) is canvas pixel (x + pad, y + pad).
    """

    subject: str
    image: np.ndarray
    landmarks: np.ndarray
    pad: int

    @property
    def frame_landmarks(self) -> np.ndarray:
        """Landmarks in frame pixels."""
        return self.landmarks - self.pad


def canvas_pad(params: DemoParams) -> int:
    """Canvas margin covering the largest head motion at the frame corners, plus the cubic kernel's reach."""
    height, width = params.frame_size
    reach = np.hypot(height, width) * np.sin(np.deg2rad(params.head_rotation_deg))
    return int(np.ceil(reach + params.head_shift_px)) + 4


def identity_displacements(landmarks: np.ndarray, rng: np.random.Generator, params: DemoParams) -> np.ndarray:
    """Landmark displacements (68, 2) that give a subject its face shape.

    Three independent draws: jaw width (jaw points scaled about the face's
    vertical axis), eye distance (each eye and brow shifted sideways by half
    the change) and jaw drop (the lower jaw moved down, most at the chin).
    """
    d = interocular(landmarks)
    centre = landmarks[EYES].mean(axis=0)
    width = rng.uniform(-1, 1) * params.face_width_jitter
    eyes = rng.uniform(-1, 1) * params.eye_distance_jitter
    jaw = rng.uniform(-1, 1) * params.jaw_jitter
    disp = np.zeros_like(landmarks)
    disp[JAW, 0] = width * (landmarks[JAW, 0] - centre[0])
    side = np.sign(landmarks[:, 0] - centre[0])
    for part in (EYES, BROWS):
        disp[part, 0] += side[part] * eyes * d / 2
    mouth_y = landmarks[48:68, 1].mean()
    chin_y = landmarks[8, 1]
    drop = np.clip((landmarks[JAW, 1] - mouth_y) / (chin_y - mouth_y), 0, 1)
    disp[JAW, 1] += jaw * d * drop
    return disp


def identity_affine(rng: np.random.Generator, params: DemoParams, centre: np.ndarray) -> np.ndarray:
    """2×3 small global scale about ``centre`` (a subject's overall face size)."""
    scale = 1 + rng.uniform(-1, 1) * params.scale_jitter
    return np.array([[scale, 0, (1 - scale) * centre[0]], [0, scale, (1 - scale) * centre[1]]])


def photometric(image: np.ndarray, rng: np.random.Generator, params: DemoParams) -> np.ndarray:
    """A subject's lighting: gamma, contrast about mid-grey, brightness, linear gradient.

    Works on intensities in [0, 1] and returns grey levels in [0, 255] float32.
    """
    gamma = rng.uniform(*params.gamma_range)
    contrast = rng.uniform(*params.contrast_range)
    brightness = rng.uniform(*params.brightness_range)
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0, params.gradient_strength)
    height, width = image.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * (xs / width - 0.5) + np.sin(angle) * (ys / height - 0.5)) * strength
    out = np.clip(image / 255.0, 0, 1) ** gamma
    out = ((out - 0.5) * contrast + 0.5 + brightness) * (1 + ramp)
    return (np.clip(out, 0, 1) * 255).astype(np.float32)


def make_subject(number: int, params: DemoParams) -> Subject:
    """Render subject ``number`` (1-based) from the astronaut.

    One remap goes from the astronaut straight to the subject's canvas, so the
    face is resampled once: canvas → (inverse identity affine) → (inverse
    non-rigid landmark warp) → (inverse canonical similarity) → astronaut.
    """
    rng = np.random.default_rng([params.seed, number, 0])
    pad = canvas_pad(params)
    height, width = params.frame_size
    shape = (height + 2 * pad, width + 2 * pad)
    to_canvas = canonical_similarity(astronaut_landmarks(), params, pad)
    base = apply_affine(to_canvas, astronaut_landmarks())
    moved = base + identity_displacements(base, rng, params)
    affine = identity_affine(rng, params, moved[EYES].mean(axis=0))
    inverse_affine = cv2.invertAffineTransform(affine)
    inverse_canonical = cv2.invertAffineTransform(to_canvas)

    grid = grid_points(shape, params.map_stride)
    shaped = apply_affine(inverse_affine, grid.reshape(-1, 2))
    back = dense_field(moved, base - moved, shape, at=shaped)
    source = apply_affine(inverse_canonical, shaped + back).reshape(grid.shape)
    maps = upsample_map(source, shape, params.map_stride)
    astronaut = astronaut_grey().astype(np.float32)
    image = cv2.remap(astronaut, maps, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return Subject(
        subject=f"{number:03d}",
        image=photometric(image, rng, params),
        landmarks=apply_affine(affine, moved),
        pad=pad,
    )
