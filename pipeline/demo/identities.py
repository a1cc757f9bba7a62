"""Who the demo subjects are: distinct people made from two photographs.

A demo subject must be a different person from every other demo subject,
in every demo corpus, or leave-one-subject-out on the demo is not subject
independent. With only two public-domain portraits shipped by installed
packages (:mod:`.sources`), new people are made the way face-morphing
studies make them:

- **shape** — the 68 landmarks are a blend of the two sources' (``shape_mix``),
  then reshaped (``geometry``: face width, eye spacing, eye size, brow height,
  lower-face length, nose and mouth width, jaw width);
- **texture** — the face inside the jaw line and brows is a blend of the two
  photographs warped onto that shape (``texture_mix``), optionally made
  symmetric from one half of a source (``halves``), optionally with the eye
  region of the other source (``eye_swap``) and darker, wider brows;
- **head** — hair, ears and background come from one source (``head``).

The table :data:`IDENTITIES` was chosen from 150 random identities
(shape and texture mixes, halves, eye swap, brows, every geometry key within
±0.2) rendered as the SAMM-layout demo renders them: a farthest-point
selection by dlib's face-recognition model (128-D descriptors), keeping the
demo's first two subjects among those whose dlib landmarks agree with the
designed ones best, then refined by perturbing a member of the closest pair
and keeping changes that raised the set's minimum. On neutral frames of the
three corpora the closest of the 66 pairs is 0.57 apart, the median 0.64,
and 53 pairs exceed dlib's same-person threshold of 0.6: two photographs do
not yet give 12 people that dlib tells apart every time
(``tests/test_demo_identities.py`` measures it).

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
NOSE_BASE = slice(31, 36)

GEOMETRY_KEYS = ("aspect", "eyes", "lower", "mouth_width", "eye_size", "nose_width", "jaw", "brow")
"""Face-shape changes an identity may make, each a signed fraction (see :func:`reshape`)."""

SOURCE_INDEX = {"astronaut": 0, "hopper": 1}
"""Position of each source in ``Identity.halves`` and in the mixes (0 = astronaut)."""

HALVES = ("both", "left", "right")
"""Which half of a source face a texture uses: as photographed, or one half mirrored onto the other."""


@dataclass(frozen=True)
class Identity:
    """A demo person (see the module docstring).

    Attributes
    ----------
    shape_mix, texture_mix : float
        0 = the astronaut's landmarks / face texture, 1 = Grace Hopper's.
    head : {"astronaut", "hopper"}
        Source of the hair, ears and background.
    halves : tuple of str
        Per source (astronaut, Hopper), which half of its face the texture
        uses (:data:`HALVES`).
    eye_swap : bool
        Take the eye region (brows to cheekbones) from the source that
        ``texture_mix`` weighs less.
    brow_tone : float
        Brow darkness: grey levels inside the brows are multiplied by it.
    brow_width : float
        Half-height of the darkened brow band, in inter-ocular distances.
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
    geometry: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not (0 <= self.shape_mix <= 1 and 0 <= self.texture_mix <= 1):
            raise ValueError(f"shape_mix and texture_mix must lie in [0, 1], got {self.shape_mix}, {self.texture_mix}")
        if self.head not in SOURCE_INDEX:
            raise ValueError(f"head must be 'astronaut' or 'hopper', got {self.head!r}")
        if any(h not in HALVES for h in self.halves):
            raise ValueError(f"halves {self.halves} must be among {HALVES}")
        unknown = sorted({k for k, _ in self.geometry} - set(GEOMETRY_KEYS))
        if unknown:
            raise ValueError(f"unknown geometry keys {unknown}; known: {', '.join(GEOMETRY_KEYS)}")


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
        out[part] = centre + (out[part] - centre) * (1 + g["eye_size"])
    out[BROWS, 1] -= g["brow"] * d
    for part, key in ((NOSE_BASE, "nose_width"), (MOUTH, "mouth_width")):
        mid = out[part, 0].mean()
        out[part, 0] = mid + (out[part, 0] - mid) * (1 + g[key])
    out[:, 0] = cx + (out[:, 0] - cx) * (1 + g["aspect"])
    return out


def _id(shape_mix, texture_mix, head, halves=("both", "both"), eye_swap=False, brow_tone=1.0, brow_width=0.06,
        **geometry) -> Identity:
    return Identity(shape_mix, texture_mix, head, halves, eye_swap, brow_tone, brow_width, tuple(geometry.items()))


IDENTITIES: tuple[Identity, ...] = (
    _id(0.44, 0.5, "astronaut", ("right", "both"), brow_tone=0.78, brow_width=0.07,
        aspect=-0.01, eyes=-0.04, lower=-0.06, mouth_width=-0.1, eye_size=0.01, nose_width=0.03, jaw=0.03, brow=0.02),
    _id(0.01, 0.0, "astronaut", ("both", "left"), brow_tone=1.0, brow_width=0.08,
        aspect=0.01, eyes=0.06, lower=0.07, mouth_width=0.09, eye_size=0.2, nose_width=-0.06, jaw=-0.02, brow=0.11),
    _id(0.11, 0.0, "astronaut", ("both", "right"), eye_swap=True, brow_tone=0.84, brow_width=0.053,
        aspect=0.05, eyes=0.12, lower=0.17, mouth_width=0.19, eye_size=0.05, nose_width=0.22, jaw=-0.06, brow=-0.15),
    _id(0.1, 0.0, "astronaut", ("both", "left"), brow_tone=0.95, brow_width=0.05,
        aspect=0.13, eyes=-0.22, lower=-0.22, mouth_width=-0.01, eye_size=-0.22, nose_width=0.16, jaw=-0.07, brow=-0.03),
    _id(0.71, 0.0, "astronaut", ("both", "right"), brow_tone=0.91, brow_width=0.067,
        aspect=0.17, eyes=0.01, lower=0.21, mouth_width=-0.12, eye_size=0.1, nose_width=-0.06, jaw=0.07, brow=0.02),
    _id(1.0, 0.5, "hopper", ("both", "right"), brow_tone=1.0, brow_width=0.073,
        aspect=-0.12, eyes=-0.22, lower=-0.17, mouth_width=0.19, eye_size=0.16, nose_width=-0.22, jaw=0.02, brow=-0.09),
    _id(0.97, 1.0, "astronaut", ("right", "left"), eye_swap=True, brow_tone=1.0, brow_width=0.083,
        aspect=-0.15, eyes=-0.12, lower=-0.1, mouth_width=-0.21, eye_size=-0.1, nose_width=0.22, jaw=0.13, brow=-0.14),
    _id(0.07, 0.0, "hopper", ("both", "left"), eye_swap=True, brow_tone=0.81, brow_width=0.086,
        aspect=-0.22, eyes=-0.04, lower=-0.2, mouth_width=0.13, eye_size=0.11, nose_width=0.05, jaw=-0.19, brow=-0.1),
    _id(0.06, 0.5, "astronaut", ("left", "left"), eye_swap=True, brow_tone=0.72, brow_width=0.071,
        aspect=0.05, eyes=0.1, lower=-0.05, mouth_width=-0.06, eye_size=-0.22, nose_width=-0.12, jaw=-0.07, brow=0.07),
    _id(0.55, 0.0, "hopper", ("left", "right"), brow_tone=0.98, brow_width=0.057,
        aspect=-0.14, eyes=-0.06, lower=0.22, mouth_width=0.22, eye_size=-0.1, nose_width=-0.22, jaw=0.1, brow=0.03),
    _id(0.92, 0.0, "hopper", ("right", "both"), brow_tone=0.67, brow_width=0.055,
        aspect=-0.22, eyes=0.01, lower=0.19, mouth_width=-0.22, eye_size=0.02, nose_width=0.07, jaw=-0.15, brow=0.22),
    _id(0.85, 1.0, "hopper", ("left", "left"), brow_tone=0.6, brow_width=0.068,
        aspect=-0.09, eyes=0.08, lower=-0.22, mouth_width=0.08, eye_size=-0.12, nose_width=0.11, jaw=0.03, brow=0.19),
)
"""Every demo person; :data:`.params.PRESETS` gives each corpus disjoint rows."""
