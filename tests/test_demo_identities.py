"""Demo subjects are different people by dlib's own face-recognition model.

Each subject of each demo corpus is rendered as its neutral frame (no
expression, no head motion, no noise) in its corpus's size and colour, and
described by ``dlib_face_recognition_resnet_model_v1`` (128-D); dlib calls
two faces the same person below a distance of 0.6.
"""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import dlib
import numpy as np
import pytest

from mepipe.pipeline.demo import PRESETS
from mepipe.pipeline.demo.face import make_subject
from mepipe.pipeline.demo.layouts import subject_id

SAME_PERSON = 0.6
"""dlib's threshold: descriptors closer than this are one person (dlib's face_recognition example)."""

NEAR_DUPLICATE = 0.45
"""Below this two faces are variations of one photograph: the first demo's six astronaut subjects were 0.10-0.22 apart."""


def model_file(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


@pytest.fixture(scope="module")
def descriptors() -> dict[str, np.ndarray]:
    """``dataset/subject`` → 128-D descriptor of the subject's neutral frame, for every demo corpus."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))
    model = dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))
    out = {}
    for dataset, params in PRESETS.items():
        for number in range(1, params.n_subjects + 1):
            subject = make_subject(number, params, subject_id(params.layout, number))
            pad = subject.pad
            frame = np.clip(np.rint(subject.image[pad:-pad, pad:-pad]), 0, 255).astype(np.uint8)
            rgb = np.ascontiguousarray(np.repeat(frame[..., None], 3, 2) if frame.ndim == 2 else frame[..., ::-1])
            faces = detector(rgb, 1)
            assert len(faces) == 1, f"{dataset}/{subject.subject}: {len(faces)} faces"
            shape = predictor(rgb, faces[0])
            out[f"{dataset}/{subject.subject}"] = np.array(model.compute_face_descriptor(rgb, shape))
    return out


def distances(descriptors) -> dict[tuple[str, str], float]:
    return {(a, b): float(np.linalg.norm(descriptors[a] - descriptors[b]))
            for a, b in itertools.combinations(sorted(descriptors), 2)}


@pytest.mark.slow
def test_every_pair_of_demo_subjects_are_different_people(descriptors):
    pairs = distances(descriptors)
    closest = min(pairs, key=pairs.get)
    assert pairs[closest] > SAME_PERSON, f"{closest} are {pairs[closest]:.3f} apart"


@pytest.mark.slow
def test_no_two_demo_subjects_are_variations_of_one_photograph(descriptors):
    pairs = distances(descriptors)
    people = sum(p.n_subjects for p in PRESETS.values())
    assert len(pairs) == people * (people - 1) // 2
    closest = min(pairs, key=pairs.get)
    print("closest pair", closest, round(pairs[closest], 3), "median", round(float(np.median(list(pairs.values()))), 3),
          "above 0.6", sum(d > SAME_PERSON for d in pairs.values()))
    assert pairs[closest] > NEAR_DUPLICATE, f"{closest} are {pairs[closest]:.3f} apart"
