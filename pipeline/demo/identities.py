"""Who the demo subjects are: distinct people made from two photographs.

A demo subject must be a different person from every other demo subject,
in every demo corpus, or leave-one-subject-out on the demo is not subject
independent. With only two public-domain portraits shipped by installed
packages (:mod:`.sources`), new people are made the way face-morphing
studies make them:

- **shape** — the 68 landmarks are a blend of the two sources' (``shape_mix``,
  a little beyond either source allowed), then reshaped (``geometry``: face
  width, eye spacing, size and opening, brow height and slant, lower-face
  length, chin, cheeks, nose width and length, mouth width, height and lips,
  jaw width);
- **texture** — the face inside the jaw line and brows is a blend of the two
  photographs warped onto that shape (``texture_mix``), optionally made
  symmetric from one half of a source (``halves``), optionally with the eye
  region of the other source (``eye_swap``), with darker or wider brows, a
  skin tone and warmth, finer or coarser skin detail (an age cue) and stubble;
- **head** — hair, ears and background come from one source (``head``).

The table :data:`IDENTITIES` was chosen by ``benchmarks/demo_identity_search.py``
(its docstring says how): each row rendered where the presets use it and
described by dlib's face-recognition model (128-D descriptors), a member of
the closest pair perturbed and the change kept when the set's closest pair
moved apart and dlib's landmarks still agreed with the designed ones (rows
12-14, ``demo-casme3``'s people, were searched alone, the others kept). On
neutral frames of the four corpora the closest of the 105 pairs of the 15
people is 0.62 apart, the median 0.71, and all 105 pairs exceed dlib's
same-person threshold of 0.6 (``tests/test_demo_identities.py`` measures it).

References
----------
D. E. King, "Dlib-ml: A machine learning toolkit", JMLR 10, 2009 (face
recognition model ``dlib_face_recognition_resnet_model_v1``).
https://jmlr.org/papers/v10/king09a.html
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEFT_EYE = slice(36, 42)
"""0-based landmark rows of the eye on the image's left (iBUG 37-42)."""
RIGHT_EYE = slice(42, 48)
JAW = slice(0, 17)
BROWS = slice(17, 27)
EYES = slice(36, 48)
MOUTH = slice(48, 68)
OUTER_LIPS = slice(48, 60)
INNER_LIPS = slice(60, 68)
NOSE_TIP = slice(30, 36)
NOSE_BASE = slice(31, 36)

GEOMETRY_RANGES: dict[str, tuple[float, float]] = {
    "aspect": (-0.22, 0.22),
    "eyes": (-0.22, 0.22),
    "lower": (-0.22, 0.22),
    "mouth_width": (-0.22, 0.22),
    "eye_size": (-0.22, 0.22),
    "nose_width": (-0.22, 0.3),
    "jaw": (-0.2, 0.2),
    "brow": (-0.15, 0.22),
    "eye_open": (-0.35, 0.3),
    "nose_length": (-0.1, 0.12),
    "lips": (-0.45, 0.6),
    "chin": (-0.1, 0.15),
    "cheeks": (-0.1, 0.15),
    "brow_slant": (-0.1, 0.1),
    "mouth_y": (-0.08, 0.08),
}
"""Face-shape changes an identity may make (see :func:`reshape`), each a signed
fraction, and the range the identity search explores (a change outside it
moves dlib's landmarks more than 3 px from the designed ones)."""

GEOMETRY_KEYS = tuple(GEOMETRY_RANGES)
"""Names of the face-shape changes, in the order :func:`reshape` applies them."""

SOURCE_INDEX = {"astronaut": 0, "hopper": 1}
"""Position of each source in ``Identity.halves`` and in the mixes (0 = astronaut)."""

HALVES = ("both", "left", "right")
"""Which half of a source face a texture uses: as photographed, or one half mirrored onto the other."""

SHAPE_MIX_RANGE = (-0.25, 1.25)
"""Landmark blends may go a little beyond either source (a caricature of it, away from the other)."""

APPEARANCE_RANGES: dict[str, tuple[float, float]] = {
    "brow_tone": (0.45, 1.0),
    "brow_width": (0.04, 0.11),
    "skin_tone": (0.55, 1.15),
    "skin_warmth": (-0.12, 0.15),
    "detail": (-0.8, 1.2),
    "beard": (0.0, 0.75),
}
"""Texture changes (fields of :class:`Identity`) and the range the identity search explores."""


@dataclass(frozen=True)
class Identity:
    """A demo person (see the module docstring).

    Attributes
    ----------
    shape_mix : float
        0 = the astronaut's landmarks, 1 = Grace Hopper's; within
        :data:`SHAPE_MIX_RANGE` (beyond 0 or 1 exaggerates one source's shape).
    texture_mix : float
        0 = the astronaut's face texture, 1 = Grace Hopper's.
    head : {"astronaut", "hopper"}
        Source of the hair, ears and background.
    halves : tuple of str
        Per source (astronaut, Hopper), which half of its face the texture
        uses (:data:`HALVES`).
    eye_swap : bool
        Take the eye region (brows to cheekbones) from the source that
        ``texture_mix`` weighs less.
    brow_tone : float
        Brow darkness: levels inside the brows are multiplied by it.
    brow_width : float
        Half-height of the darkened brow band, in inter-ocular distances
        (thicker brows).
    skin_tone : float
        Skin levels (face, neck) multiplied by it: darker or lighter skin.
    skin_warmth : float
        Colour of the skin: red levels times ``1 + warmth``, blue times
        ``1 - warmth`` (olive to ruddy; greyscale corpora see its luminance only).
    detail : float
        Age cue: the face's fine detail (wrinkles, pores, shading finer than
        a tenth of the eye distance) times ``1 + detail``; -0.8 smooths
        the skin young, positive values deepen wrinkles.
    beard : float
        Strength of a stubble shadow on the upper lip, chin and jaw (0: none):
        a male cue.
    geometry : tuple of (str, float)
        Face-shape changes, keys from :data:`GEOMETRY_KEYS`.
    """

    shape_mix: float
    texture_mix: float
    head: str
    halves: tuple[str, str] = ("both", "both")
    eye_swap: bool = False
    brow_tone: float = 1.0
    brow_width: float = 0.06
    skin_tone: float = 1.0
    skin_warmth: float = 0.0
    detail: float = 0.0
    beard: float = 0.0
    geometry: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        low, high = SHAPE_MIX_RANGE
        if not (low <= self.shape_mix <= high and 0 <= self.texture_mix <= 1):
            raise ValueError(f"shape_mix must lie in [{low}, {high}] and texture_mix in [0, 1], "
                             f"got {self.shape_mix}, {self.texture_mix}")
        if self.head not in SOURCE_INDEX:
            raise ValueError(f"head must be 'astronaut' or 'hopper', got {self.head!r}")
        if any(h not in HALVES for h in self.halves):
            raise ValueError(f"halves {self.halves} must be among {HALVES}")
        if not (self.brow_tone > 0 and self.brow_width > 0 and self.skin_tone > 0 and self.detail > -1
                and 0 <= self.beard <= 1 and abs(self.skin_warmth) < 1):
            raise ValueError(f"brow_tone, brow_width and skin_tone must be positive, detail above -1, beard in "
                             f"[0, 1] and |skin_warmth| below 1; got {self}")
        unknown = sorted({k for k, _ in self.geometry} - set(GEOMETRY_KEYS))
        if unknown:
            raise ValueError(f"unknown geometry keys {unknown}; known: {', '.join(GEOMETRY_KEYS)}")


def _bump(index: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """Weights 1 at ``centre`` falling linearly to 0 at ``half_width`` away (jaw-contour positions)."""
    return np.clip(1 - np.abs(index - centre) / half_width, 0, 1)


def reshape(landmarks: np.ndarray, geometry: dict[str, float]) -> np.ndarray:
    """Landmarks (68, 2) with an identity's face-shape changes applied.

    Every change is a smooth, order-preserving move of whole features, so
    the warp between the shapes never folds. Lengths are fractions of the
    inter-ocular distance d unless said otherwise:

    - ``lower``: points below the eye line move down by ``lower·d`` times
      their depth relative to the chin (a longer or shorter lower face);
    - ``jaw``: the jaw widens by that fraction, growing from the nose base to the chin;
    - ``eyes``: each eye and brow moves outwards by ``eyes·d/2``;
    - ``eye_size``: each eye scales about its centre by ``1 + eye_size``;
    - ``brow``: brows rise by ``brow·d``;
    - ``nose_width``, ``mouth_width``: relative widths;
    - ``eye_open``: eye aperture (height) scales by ``1 + eye_open``;
    - ``nose_length``: the nose tip and base move down by ``nose_length·d``
      (the bridge stretches with them);
    - ``lips``: the outer lip line moves away from the mouth's centre line
      by that fraction of its distance (fuller or thinner lips);
    - ``chin``: the chin moves down by ``chin·d``, fading out along the jaw;
    - ``cheeks``: the jaw contour at cheek height moves out by ``cheeks·d/2``
      (a fuller or leaner face);
    - ``brow_slant``: each brow's inner end moves down and its outer end up
      by ``brow_slant·d/2``;
    - ``mouth_y``: the mouth moves down by ``mouth_y·d``;
    - ``aspect``: the whole face widens by that fraction about its midline.
    """
    g = {k: 0.0 for k in GEOMETRY_KEYS} | dict(geometry)
    left, right = landmarks[LEFT_EYE].mean(axis=0), landmarks[RIGHT_EYE].mean(axis=0)
    d = float(np.linalg.norm(right - left))
    cx, eye_y = (left + right) / 2
    out = landmarks.astype(np.float64).copy()
    chin_y, nose_y = landmarks[8, 1], landmarks[33, 1]
    depth = np.clip((landmarks[:, 1] - eye_y) / (chin_y - eye_y), 0, None)
    out[:, 1] += g["lower"] * d * depth
    jaw_weight = np.clip((landmarks[JAW, 1] - nose_y) / (chin_y - nose_y), 0, 1)
    out[JAW, 0] = cx + (out[JAW, 0] - cx) * (1 + g["jaw"] * jaw_weight)
    side = np.sign(landmarks[:, 0] - cx)
    for part in (LEFT_EYE, RIGHT_EYE, BROWS):
        out[part, 0] += side[part] * g["eyes"] * d / 2
    for part in (LEFT_EYE, RIGHT_EYE):
        centre = out[part].mean(axis=0)
        out[part] = centre + (out[part] - centre) * [1 + g["eye_size"], (1 + g["eye_size"]) * (1 + g["eye_open"])]
    out[BROWS, 1] -= g["brow"] * d
    for part, key in ((NOSE_BASE, "nose_width"), (MOUTH, "mouth_width")):
        mid = out[part, 0].mean()
        out[part, 0] = mid + (out[part, 0] - mid) * (1 + g[key])
    out[NOSE_TIP, 1] += g["nose_length"] * d
    out[[28, 29], 1] += g["nose_length"] * d * np.array([1 / 3, 2 / 3])
    out[MOUTH, 1] += g["mouth_y"] * d
    mouth_line = out[INNER_LIPS, 1].mean()
    out[OUTER_LIPS, 1] = mouth_line + (out[OUTER_LIPS, 1] - mouth_line) * (1 + g["lips"])
    contour = np.arange(17, dtype=np.float64)
    out[JAW, 1] += g["chin"] * d * _bump(contour, 8, 5)
    cheek = np.maximum(_bump(contour, 4, 3), _bump(contour, 12, 3))
    out[JAW, 0] += side[JAW] * g["cheeks"] * d / 2 * cheek
    for part, inner_last in ((slice(17, 22), True), (slice(22, 27), False)):
        t = np.linspace(0, 1, 5) if inner_last else np.linspace(1, 0, 5)
        out[part, 1] += g["brow_slant"] * d * (t - 0.5)
    out[:, 0] = cx + (out[:, 0] - cx) * (1 + g["aspect"])
    return out


def _id(shape_mix, texture_mix, head, halves=("both", "both"), eye_swap=False, *, brow_tone=1.0, brow_width=0.06,
        skin_tone=1.0, skin_warmth=0.0, detail=0.0, beard=0.0, **geometry) -> Identity:
    return Identity(shape_mix, texture_mix, head, halves, eye_swap, brow_tone, brow_width, skin_tone, skin_warmth,
                    detail, beard, tuple(geometry.items()))


IDENTITIES: tuple[Identity, ...] = (
    _id(0.44, 0.33, "astronaut", ("right", "both"), brow_tone=0.82, brow_width=0.091, skin_tone=1.04, aspect=-0.01,
        eyes=-0.04, lower=-0.06, mouth_width=-0.1, eye_size=0.01, nose_width=0.03, jaw=-0.04, brow=0.08, cheeks=-0.1,
        chin=0.11, mouth_y=-0.02),
    _id(0.01, 0.0, "hopper", ("both", "left"), brow_width=0.046, skin_warmth=0.01, aspect=0.01, eyes=0.05, lower=0.07,
        mouth_width=0.09, eye_size=0.1, nose_width=-0.04, jaw=-0.03, brow=0.11, cheeks=-0.02,
        mouth_y=-0.03, brow_slant=0.09, lips=-0.03),
    _id(0.11, 0.0, "astronaut", ("left", "right"), eye_swap=True, brow_tone=0.69, brow_width=0.053, detail=-0.65,
        aspect=0.05, eyes=0.04, lower=0.01, mouth_width=0.19, eye_size=0.05, nose_width=0.08, jaw=0.05, brow=-0.11,
        chin=0.06, mouth_y=0.08),
    _id(-0.01, 0.0, "astronaut", ("both", "left"), brow_tone=0.95, brow_width=0.05, aspect=0.13, eyes=-0.22,
        lower=-0.12, mouth_width=-0.01, eye_size=-0.22, nose_width=0.16, jaw=-0.07, brow=-0.03, cheeks=0.02,
        nose_length=0.03, eye_open=-0.14),
    _id(0.71, 0.0, "hopper", ("both", "right"), brow_tone=0.91, brow_width=0.044, detail=-0.39, beard=0.05,
        aspect=0.1, eyes=0.01, lower=0.12, mouth_width=-0.14, eye_size=-0.01, nose_width=-0.06, jaw=-0.11, brow=0.02,
        lips=0.16, brow_slant=0.03, cheeks=-0.06, eye_open=-0.09, chin=0.08),
    _id(0.2, 0.26, "hopper", ("right", "both"), brow_width=0.073, beard=0.41, aspect=-0.18, eyes=-0.22, lower=-0.07,
        mouth_width=0.19, eye_size=0.16, nose_width=-0.22, jaw=0.11, brow=-0.11, mouth_y=-0.06, chin=0.11,
        cheeks=0.07, eye_open=-0.15),
    _id(0.97, 1.0, "astronaut", ("right", "left"), eye_swap=True, brow_tone=0.91, brow_width=0.067, skin_tone=0.93,
        aspect=-0.15, eyes=-0.12, lower=-0.22, mouth_width=-0.17, eye_size=-0.1, nose_width=0.17, jaw=0.19,
        brow=-0.14, eye_open=-0.34, nose_length=-0.07, lips=-0.38, brow_slant=0.09),
    _id(0.07, 0.0, "astronaut", ("both", "left"), eye_swap=True, brow_tone=0.63, brow_width=0.071, skin_tone=0.96,
        skin_warmth=-0.12, aspect=-0.18, eyes=-0.1, lower=-0.2, mouth_width=0.13, eye_size=0.12, nose_width=0.05,
        jaw=-0.19, brow=-0.13, lips=0.46),
    _id(0.04, 0.5, "astronaut", ("left", "left"), eye_swap=True, brow_tone=0.72, brow_width=0.051, skin_warmth=0.07,
        aspect=0.1, eyes=0.05, lower=-0.02, mouth_width=-0.06, eye_size=-0.22, nose_width=-0.21, jaw=-0.09,
        brow=-0.05, chin=-0.08, nose_length=-0.04, mouth_y=-0.02),
    _id(0.55, 0.0, "hopper", ("left", "both"), brow_tone=0.86, brow_width=0.043, skin_warmth=0.03, detail=0.44,
        aspect=-0.15, eyes=-0.13, lower=0.15, mouth_width=0.22, eye_size=-0.17, nose_width=-0.22, jaw=-0.19,
        brow=0.03, lips=-0.39, eye_open=-0.31, cheeks=0.05),
    _id(-0.21, 0.03, "astronaut", ("both", "both"), brow_tone=0.98, brow_width=0.094, skin_tone=0.79,
        skin_warmth=0.04, detail=0.84, beard=0.53, aspect=-0.09, eyes=0.07, lower=-0.09, mouth_width=0.19,
        eye_size=0.14, nose_width=-0.19, jaw=-0.14, brow=0.17, eye_open=-0.05, nose_length=-0.1, lips=-0.12,
        chin=-0.03, cheeks=0.12, brow_slant=-0.01, mouth_y=0.07),
    _id(0.85, 0.99, "hopper", ("left", "left"), brow_tone=0.87, brow_width=0.068, skin_warmth=0.07, detail=-0.2,
        beard=0.08, aspect=-0.09, eyes=0.04, lower=-0.22, mouth_width=0.09, eye_size=0.01, nose_width=0.1, jaw=-0.03,
        brow=0.19, nose_length=0.02, chin=-0.06, brow_slant=0.02, mouth_y=-0.01, eye_open=-0.23, lips=0.22),
    _id(0.35, 0.33, "astronaut", ("right", "right"), brow_tone=0.96, brow_width=0.075, skin_tone=1.15,
        skin_warmth=0.1, detail=0.63, beard=0.31, aspect=-0.2, eyes=0.07, lower=-0.19, mouth_width=0.2,
        eye_size=0.05, nose_width=-0.17, jaw=-0.18, brow=-0.11, cheeks=-0.04, chin=-0.04, mouth_y=-0.03,
        eye_open=0.15, nose_length=-0.05, lips=-0.15, brow_slant=-0.07),
    _id(0.57, 0.0, "hopper", ("right", "right"), brow_tone=0.94, brow_width=0.098, skin_tone=1.08,
        skin_warmth=-0.08, detail=-0.66, aspect=-0.16, eyes=-0.16, lower=0.18, mouth_width=0.09, nose_width=-0.22,
        jaw=-0.2, brow=0.01, cheeks=0.15, chin=0.06, mouth_y=0.01, eye_open=0.19, nose_length=-0.03, lips=-0.05,
        brow_slant=-0.04),
    _id(0.66, 0.53, "hopper", ("both", "left"), eye_swap=True, brow_tone=0.64, brow_width=0.045, skin_tone=1.1,
        skin_warmth=-0.04, detail=0.89, beard=0.61, aspect=-0.09, eyes=-0.11, lower=0.01, mouth_width=0.22,
        eye_size=-0.16, nose_width=0.02, jaw=0.15, brow=0.06, cheeks=0.02, chin=-0.1, mouth_y=0.01, eye_open=0.22,
        nose_length=-0.03, lips=-0.03, brow_slant=0.01),
)
"""Every demo person; :data:`.params.PRESETS` gives each corpus disjoint rows."""
