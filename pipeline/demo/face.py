"""The neutral face of each synthetic subject, on a canvas larger than a frame.

A subject is an :class:`.identities.Identity` rendered from the two source
photographs (:mod:`.sources`): each source is placed so that its eyes are
level, ``interocular_px`` apart, at ``eye_line`` of the frame; the
identity's landmarks are a blend of the placed sources' landmarks, reshaped;
each source is warped onto them by a thin-plate spline through the
landmarks; the face textures are blended inside the face and the head of
one source kept outside. A subject's lighting (gamma, contrast, brightness,
gradient) and overall size are drawn from its own generator. The canvas is
padded so that per-frame head motion never samples outside it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..stages.landmarks import shape_predictor_path
from .identities import (
    BROWS,
    EYES,
    IDENTITIES,
    JAW,
    LEFT_EYE,
    OUTER_LIPS,
    RIGHT_EYE,
    SOURCE_INDEX,
    Identity,
    reshape,
)
from .params import DemoParams
from .sources import SOURCE_NAMES, source_face
from .warp import dense_field, grid_points, upsample_map

__all__ = [
    "BROWS", "EYES", "JAW", "LEFT_EYE", "RIGHT_EYE", "Subject", "apply_affine", "astronaut_grey",
    "astronaut_landmarks", "canonical_similarity",
    "eye_centres", "interocular", "make_subject", "render_subject", "shape_predictor_path",
]

MIRROR_ROWS = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)
"""iBUG row of each landmark's left-right partner (the nose bridge 28-31 is its own)."""


def astronaut_grey() -> np.ndarray:
    """The astronaut photograph as greyscale, (512, 512) uint8 (used by :mod:`.scenes`)."""
    return cv2.cvtColor(np.asarray(source_face("astronaut").image), cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=1)
def astronaut_landmarks() -> np.ndarray:
    """The 68 dlib landmarks of the greyscale astronaut's face, (68, 2) float64 (largest detection; memoised)."""
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
    """2×3 similarity taking source pixels to canonical canvas pixels.

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
        Subject id as the layout writes it (``"001"``, ``"01"``, ``"s1"``).
    number : int
        The subject's number (1-based), which seeds its clips.
    image : ndarray
        Neutral face, (H + 2·pad, W + 2·pad) greyscale or (…, 3) BGR, float32
        levels in [0, 255].
    landmarks : ndarray
        (68, 2) float64 landmark positions in canvas pixels.
    pad : int
        Canvas margin; frame pixel (x, y) is canvas pixel (x + pad, y + pad).
    """

    subject: str
    number: int
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


def identity_affine(rng: np.random.Generator, params: DemoParams, centre: np.ndarray) -> np.ndarray:
    """2×3 small global scale about ``centre`` (a subject's overall face size)."""
    scale = 1 + rng.uniform(-1, 1) * params.scale_jitter
    return np.array([[scale, 0, (1 - scale) * centre[0]], [0, scale, (1 - scale) * centre[1]]])


def photometric(image: np.ndarray, rng: np.random.Generator, params: DemoParams) -> np.ndarray:
    """A subject's lighting: gamma, contrast about mid-grey, brightness, linear gradient.

    Works on intensities in [0, 1] of a (H, W) or (H, W, C) image and returns
    levels in [0, 255] float32.
    """
    gamma = rng.uniform(*params.gamma_range)
    contrast = rng.uniform(*params.contrast_range)
    brightness = rng.uniform(*params.brightness_range)
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0, params.gradient_strength)
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * (xs / width - 0.5) + np.sin(angle) * (ys / height - 0.5)) * strength
    if image.ndim == 3:
        ramp = ramp[..., None]
    out = np.clip(image / 255.0, 0, 1) ** gamma
    out = ((out - 0.5) * contrast + 0.5 + brightness) * (1 + ramp)
    return (np.clip(out, 0, 1) * 255).astype(np.float32)


def symmetric_half(image: np.ndarray, landmarks: np.ndarray, half: str) -> tuple[np.ndarray, np.ndarray]:
    """A face made symmetric from one half: that half mirrored about the face midline.

    ``half`` is "left" or "right" (of the image) or "both" (unchanged).
    Returns the image and its landmarks (the mean of each landmark and its
    mirrored partner, so they are symmetric too).
    """
    if half == "both":
        return image, landmarks
    width = image.shape[1]
    midline = float(landmarks[27:31, 0].mean())
    mirrored = cv2.warpAffine(image, np.float32([[-1, 0, 2 * midline], [0, 1, 0]]), (width, image.shape[0]),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    flipped = landmarks[MIRROR_ROWS] * [-1, 1] + [2 * midline, 0]
    xs = np.arange(width, dtype=np.float32)
    keep = (xs < midline) if half == "left" else (xs >= midline)
    weight = cv2.GaussianBlur(keep.astype(np.float32)[None, :].repeat(8, axis=0), (0, 0), 2.0)[0]
    weight = weight[None, :, None] if image.ndim == 3 else weight[None, :]
    return image * weight + mirrored * (1 - weight), (landmarks + flipped) / 2


def region_mask(points: np.ndarray, shape: tuple[int, int], blur: float) -> np.ndarray:
    """(H, W) float32 mask: the convex hull of ``points`` filled with 1, feathered by a Gaussian of ``blur`` px."""
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.rint(points).astype(np.int32)), 1.0)
    return cv2.GaussianBlur(mask, (0, 0), blur)


def face_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the face: inside the jaw line and brows (raised by 0.3·d), feathered."""
    d = interocular(landmarks)
    points = np.concatenate([landmarks[JAW], landmarks[BROWS] - [0, 0.3 * d]])
    return region_mask(points, shape, 0.09 * d)


def eye_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the eye region: brows (raised by 0.15·d) down to the cheekbones and the nose bridge, feathered."""
    d = interocular(landmarks)
    points = np.concatenate([landmarks[BROWS] - [0, 0.15 * d], landmarks[[1, 15, 29]]])
    return region_mask(points, shape, 0.055 * d)


def darken_brows(image: np.ndarray, landmarks: np.ndarray, tone: float, width: float) -> np.ndarray:
    """Brows darkened to ``tone`` over a band ``width``·d above and below the brow landmarks."""
    if tone == 1.0:
        return image
    d = interocular(landmarks)
    out = image
    for part in (slice(17, 22), slice(22, 27)):
        points = landmarks[part]
        band = np.concatenate([points - [0, width * d], (points + [0, width * d])[::-1]])
        mask = region_mask(band, image.shape[:2], 0.023 * d)
        mask = mask[..., None] if image.ndim == 3 else mask
        out = out * (1 - mask * (1 - tone))
    return out


def feature_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the eyes, brows and lips (each feature's hull, widened by 0.06·d and feathered): not skin."""
    d = interocular(landmarks)
    mask = np.zeros(shape, np.float32)
    for part in (LEFT_EYE, RIGHT_EYE, slice(17, 22), slice(22, 27), OUTER_LIPS):
        points = landmarks[part]
        centre = points.mean(axis=0)
        spread = points - centre
        grown = centre + spread + 0.06 * d * spread / np.maximum(np.linalg.norm(spread, axis=1, keepdims=True), 1e-6)
        mask = np.maximum(mask, region_mask(grown, shape, 0.03 * d))
    return mask


def neck_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the neck: the jaw line from ear to ear extended 0.8·d down, feathered."""
    d = interocular(landmarks)
    lower_jaw = landmarks[3:14]
    return region_mask(np.concatenate([lower_jaw, lower_jaw + [0, 0.8 * d]]), shape, 0.09 * d)


def age_texture(image: np.ndarray, landmarks: np.ndarray, detail: float) -> np.ndarray:
    """The skin's fine detail (finer than 0.04·d) times ``1 + detail``, eyes, brows and lips untouched.

    Negative ``detail`` smooths wrinkles and pores (a younger look), positive
    deepens them (an older one).
    """
    if detail == 0:
        return image
    d = interocular(landmarks)
    low = cv2.GaussianBlur(image, (0, 0), 0.04 * d)
    skin = (1 - feature_mask(landmarks, image.shape[:2]))[..., None]
    return image + skin * detail * (image - low)


def tint_skin(image: np.ndarray, landmarks: np.ndarray, tone: float, warmth: float) -> np.ndarray:
    """Face and neck skin (not eyes, brows, lips) times ``tone``, red ``1 + warmth``, blue ``1 - warmth`` (RGB)."""
    if tone == 1 and warmth == 0:
        return image
    shape = image.shape[:2]
    skin = np.maximum(face_region(landmarks, shape), neck_region(landmarks, shape))
    skin = (skin * (1 - feature_mask(landmarks, shape)))[..., None]
    gain = tone * np.array([1 + warmth, 1.0, 1 - warmth], np.float32)
    return image * (1 - skin + skin * gain)


BEARD_SEED = 20170331
"""Seed of the stubble grain; fixed, so that a bearded identity renders the same bytes every time."""

STUBBLE_SHADE = np.array([1.0, 0.95, 0.8], np.float32)
"""Relative darkening of red, green and blue by stubble: a bluish shadow on light skin."""


def beard_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the stubble: jaw from the sideburns to the chin, cheeks below the cheekbones and the
    upper lip below the nose, lips left out; feathered."""
    d = interocular(landmarks)
    jaw = landmarks[2:15]
    upper = np.array([
        landmarks[54] + [0.3 * d, -0.3 * d],
        landmarks[35] + [0.05 * d, 0.08 * d],
        landmarks[33] + [0, 0.1 * d],
        landmarks[31] + [-0.05 * d, 0.08 * d],
        landmarks[48] + [-0.3 * d, -0.3 * d],
    ])
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.rint(np.concatenate([jaw, upper])).astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.05 * d)
    lips = region_mask(landmarks[OUTER_LIPS], shape, 0.02 * d)
    return mask * (1 - lips)


def add_stubble(image: np.ndarray, landmarks: np.ndarray, strength: float) -> np.ndarray:
    """A stubble shadow of ``strength`` (0-1) over :func:`beard_region`, with a fine hair grain."""
    if strength == 0:
        return image
    d = interocular(landmarks)
    shape = image.shape[:2]
    grain = np.random.default_rng(BEARD_SEED).standard_normal(shape, dtype=np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.5 + 0.003 * d)
    grain = np.clip(0.7 + 0.15 * grain / grain.std(), 0, 1)
    shade = (strength * beard_region(landmarks, shape) * grain)[..., None] * STUBBLE_SHADE
    return image * (1 - shade)


def warp_onto(image: np.ndarray, landmarks: np.ndarray, target: np.ndarray, params: DemoParams) -> np.ndarray:
    """``image`` warped so that its ``landmarks`` land on ``target`` (thin-plate spline, forehead anchored).

    Forehead anchors 0.8·d above the brows move with the brows, so hair
    follows the face shape; the canvas border stays put.
    """
    shape = image.shape[:2]
    grid = grid_points(shape, params.map_stride)

    def anchored(points: np.ndarray) -> np.ndarray:
        return np.concatenate([points, points[[17, 19, 21, 22, 24, 26]] - [0, 0.8 * interocular(points)]])

    dst, src = anchored(target), anchored(landmarks)
    back = dense_field(dst, src - dst, shape, at=grid)
    maps = upsample_map(grid + back.reshape(grid.shape), shape, params.map_stride)
    return cv2.remap(image, maps, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def render_identity(identity: Identity, params: DemoParams, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """An identity's neutral face on the canvas: (H', W', 3) float32 RGB in [0, 255] and (68, 2) landmarks."""
    height, width = params.frame_size
    size = (width + 2 * pad, height + 2 * pad)
    placed = []
    for name, half in zip(SOURCE_NAMES, identity.halves):
        source = source_face(name)
        to_canvas = canonical_similarity(source.landmarks, params, pad)
        image = cv2.warpAffine(source.image.astype(np.float32), to_canvas, size, flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        placed.append(symmetric_half(image, apply_affine(to_canvas, source.landmarks), half))
    (astro, astro_lm), (hopper, hopper_lm) = placed
    target = reshape((1 - identity.shape_mix) * astro_lm + identity.shape_mix * hopper_lm, dict(identity.geometry))
    warped = [warp_onto(img, lm, target, params) for img, lm in placed]
    w = identity.texture_mix
    face = (1 - w) * warped[0] + w * warped[1]
    if identity.eye_swap:
        eyes = eye_region(target, face.shape[:2])[..., None]
        face = face * (1 - eyes) + warped[1 if w < 0.5 else 0] * eyes
    face = age_texture(face, target, identity.detail)
    inside = face_region(target, face.shape[:2])[..., None]
    image = inside * face + (1 - inside) * warped[SOURCE_INDEX[identity.head]]
    image = tint_skin(image, target, identity.skin_tone, identity.skin_warmth)
    image = darken_brows(image, target, identity.brow_tone, identity.brow_width)
    image = add_stubble(image, target, identity.beard)
    return np.clip(image, 0, 255).astype(np.float32), target


def make_subject(number: int, params: DemoParams, subject_id: str | None = None) -> Subject:
    """Render subject ``number`` (1-based): identity ``params.identities[number - 1]`` (:func:`render_subject`)."""
    return render_subject(IDENTITIES[params.identities[number - 1]], number, params, subject_id)


def render_subject(identity: Identity, number: int, params: DemoParams, subject_id: str | None = None) -> Subject:
    """Subject ``number`` (1-based) of a corpus with ``params``, as the person ``identity``.

    The identity fixes who the subject is; the subject's generator adds a
    small overall scale and the lighting. Greyscale unless ``params.colour``
    (then BGR, as OpenCV writes frames).
    """
    rng = np.random.default_rng([params.seed, number, 0])
    pad = canvas_pad(params)
    rgb, landmarks = render_identity(identity, params, pad)
    affine = identity_affine(rng, params, landmarks[EYES].mean(axis=0))
    size = (rgb.shape[1], rgb.shape[0])
    rgb = cv2.warpAffine(rgb, affine, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    if params.colour:
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    else:
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return Subject(
        subject=subject_id or f"{number:03d}",
        number=number,
        image=photometric(image, rng, params),
        landmarks=apply_affine(affine, landmarks),
        pad=pad,
    )
