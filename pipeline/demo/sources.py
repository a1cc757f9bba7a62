"""The two photographs every demo face is made from, and their dlib landmarks.

Both are public-domain portraits that installed packages already ship, so
the demo needs no download:

- ``astronaut``: Eileen Collins, NASA portrait (public domain), shipped by
  scikit-image as ``skimage.data.astronaut()``.
- ``hopper``: Rear Admiral Grace Hopper, US Navy portrait (public domain),
  shipped by matplotlib as ``mpl-data/sample_data/grace_hopper.jpg``.

Demo subjects are new faces built from these two (:mod:`.identities`), not
the two women themselves.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..stages.landmarks import shape_predictor_path

SOURCE_NAMES = ("astronaut", "hopper")
"""The source photographs, in the order identities mix them (0 = astronaut, 1 = Hopper)."""

CREDITS = {
    "astronaut": "Eileen Collins, NASA portrait, public domain (skimage.data.astronaut)",
    "hopper": "Grace Hopper, US Navy portrait, public domain (matplotlib sample_data/grace_hopper.jpg)",
}
"""Where each source photograph comes from; written to every demo's ``demo.json``."""


@dataclass(frozen=True)
class SourceFace:
    """One source photograph: RGB pixels and the 68 dlib landmarks of its face.

    Attributes
    ----------
    name : str
        One of :data:`SOURCE_NAMES`.
    image : ndarray
        (H, W, 3) uint8 RGB.
    landmarks : ndarray
        (68, 2) float64 (x, y) pixel positions, iBUG order.
    """

    name: str
    image: np.ndarray
    landmarks: np.ndarray


def _hopper_path() -> Path:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's sample image {path} is missing; reinstall matplotlib")
    return path


def _load(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., :3])
    if name == "hopper":
        bgr = cv2.imread(str(_hopper_path()), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    raise ValueError(f"unknown source face {name!r}; known: {', '.join(SOURCE_NAMES)}")


@functools.lru_cache(maxsize=None)
def source_face(name: str) -> SourceFace:
    """The source photograph ``name`` with its landmarks (memoised: a constant of the installed packages).

    The largest dlib detection is used (on the astronaut the detector also
    fires on the mission patch).
    """
    import dlib

    image = _load(name)
    faces = dlib.get_frontal_face_detector()(image, 1)
    if not faces:
        raise RuntimeError(f"dlib found no face in the source photograph {name!r}; check the dlib installation")
    face = max(faces, key=lambda r: r.area())
    shape = dlib.shape_predictor(str(shape_predictor_path()))(image, face)
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    image.setflags(write=False)
    landmarks.setflags(write=False)
    return SourceFace(name=name, image=image, landmarks=landmarks)
