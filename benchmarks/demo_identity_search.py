"""Search for the demo's identity table: people that dlib's face-recognition model tells apart.

How :data:`mepipe.pipeline.demo.identities.IDENTITIES` was chosen. Each
table row is rendered where the presets use it (its corpus's size, colour,
subject number and lighting; the neutral frame, as
``tests/test_demo_identities.py`` renders it) and described by dlib's
``dlib_face_recognition_resnet_model_v1`` (128-D). Starting from the table in
the repository, the search repeatedly picks a member of the closest pair (or,
half the time, of any pair closer than ``TARGET``), redraws 1-4 of its cues
(one time in five all of them: shape and texture mixes, halves, eye swap,
brows, skin tone and warmth, detail, stubble, geometry keys; each within
``SHAPE_MIX_RANGE``, ``APPEARANCE_RANGES`` and ``GEOMETRY_RANGES``, rounded to
two decimals) and keeps the change if the set's closest pair moves apart (or
stays and the pairs under ``TARGET`` move apart), provided dlib's detector
finds one face and its 68 landmarks lie on average no farther from the
designed ones than ``MAX_LANDMARK_ERROR`` px or than in the starting table.
Seeded, so a run is repeatable; it writes the best table as ``_id(...)`` rows.

The current table came from one run, seed 11, from the previous table
(closest pair 0.56, 51 of 66 pairs above 0.6), stopped after 2,000 tries
(16 minutes on a shared 2-core machine); that run described faces from a
detection without upsampling (closest pair 0.665). Row 1 (``demo/002``)
was then changed by hand (``eye_size`` 0.22 to 0.1, ``lower`` 0.11 to 0.07,
``nose_length`` 0.03 to 0): its apex frames gave 3.09 px in
``tests/test_demo.py``'s 3 px landmark test, and its first clip 1.06 px of
residual head motion in ``tests/test_build.py``'s 1 px alignment test,
although its neutral frame gave 2.49 px here (now 2.24 px). As the test
measures (and as this script now does) the closest pair is 0.621
(``demo/002``-``demo/005``), the median 0.718, and all 66 pairs exceed 0.6.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_identity_search.py --minutes 45

When a preset needs more people than the table has (``demo-casme3`` took rows
12-14), the missing rows start as fresh random people and ``--rows`` keeps
the search to them, so the other corpora's subjects, and their bytes, stay
as they are: rows 12-14 came from ``--rows 12,13,14 --seed 3``, which
measured the table's closest pair among the pairs involving them.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import time
from pathlib import Path

import dlib
import numpy as np

from mepipe.pipeline.demo import PRESETS
from mepipe.pipeline.demo.face import render_subject
from mepipe.pipeline.demo.identities import (
    APPEARANCE_RANGES, GEOMETRY_KEYS, GEOMETRY_RANGES, HALVES, IDENTITIES, SHAPE_MIX_RANGE, SOURCE_INDEX, Identity,
)
from mepipe.pipeline.demo.layouts import subject_id

TARGET = 0.64
"""Pairs closer than this count against a candidate table (a margin above dlib's 0.6)."""

MAX_LANDMARK_ERROR = 2.5
"""Mean distance (px) allowed between dlib's landmarks and the designed ones on the neutral frame (the demo's
tests allow 3 on subjects 1 and 2), or a row's error in the starting table where that is larger."""


def model_file(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


DETECTOR = dlib.get_frontal_face_detector()
PREDICTOR = dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))
MODEL = dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))

SLOTS = {row: (dataset, params, number)
         for dataset, params in PRESETS.items() for number, row in enumerate(params.identities, 1)}
"""Table row → where the presets render it: (dataset, params, subject number)."""


def describe(identity: Identity, row: int) -> tuple[np.ndarray, float] | None:
    """Descriptor and mean landmark error of ``identity`` rendered in ``row``'s slot; None if no single face.

    The descriptor comes from a detection upsampled once, as ``tests/test_demo_identities.py`` finds faces;
    the landmark error from one without upsampling, as ``tests/test_demo.py`` does.
    """
    dataset, params, number = SLOTS[row]
    subject = render_subject(identity, number, params, subject_id(params.layout, number))
    pad = subject.pad
    frame = np.clip(np.rint(subject.image[pad:-pad, pad:-pad]), 0, 255).astype(np.uint8)
    rgb = np.ascontiguousarray(np.repeat(frame[..., None], 3, 2) if frame.ndim == 2 else frame[..., ::-1])
    faces, upsampled = DETECTOR(rgb, 0), DETECTOR(rgb, 1)
    if len(faces) != 1 or len(upsampled) != 1:
        return None
    found = np.array([[p.x, p.y] for p in PREDICTOR(rgb, faces[0]).parts()], np.float64)
    error = float(np.linalg.norm(found - (subject.landmarks - pad), axis=1).mean())
    return np.array(MODEL.compute_face_descriptor(rgb, PREDICTOR(rgb, upsampled[0]))), error


def perturb(identity: Identity, rng: np.random.Generator, fresh: bool | None = None) -> Identity:
    """``identity`` with 1-4 cues redrawn (half of them uniformly in range, half as a small step), or one time in
    five (always with ``fresh=True``) every cue drawn uniformly (a new person)."""
    geometry = dict(identity.geometry)
    fields = {}
    names = ["shape_mix", "texture_mix", "head", "halves", "eye_swap", *APPEARANCE_RANGES, *GEOMETRY_KEYS]
    fresh = rng.random() < 0.2 if fresh is None else fresh
    for name in names if fresh else rng.choice(names, size=rng.integers(1, 5), replace=False):
        if name in ("head", "halves", "eye_swap"):
            fields[name] = {"head": lambda: str(rng.choice(list(SOURCE_INDEX))),
                            "halves": lambda: (str(rng.choice(HALVES)), str(rng.choice(HALVES))),
                            "eye_swap": lambda: bool(rng.integers(2))}[name]()
            continue
        low, high = (SHAPE_MIX_RANGE if name == "shape_mix" else (0.0, 1.0) if name == "texture_mix"
                     else APPEARANCE_RANGES.get(name) or GEOMETRY_RANGES[name])
        old = geometry.get(name, 0.0) if name in GEOMETRY_RANGES else getattr(identity, name)
        new = rng.uniform(low, high) if fresh or rng.random() < 0.5 else old + rng.normal(0, 0.25 * (high - low))
        new = round(float(np.clip(new, low, high)), 3 if name == "brow_width" else 2)
        if name in GEOMETRY_RANGES:
            geometry[name] = new
        else:
            fields[name] = new
    return dataclasses.replace(identity, geometry=tuple(geometry.items()), **fields)


def score(descriptors: list[np.ndarray], movable: set[int]) -> tuple[float, float, dict[tuple[int, int], float]]:
    """Closest pair, penalty of pairs under ``TARGET`` and every distance, over the pairs a search can change
    (those with a ``movable`` row)."""
    pairs = {(a, b): float(np.linalg.norm(descriptors[a] - descriptors[b]))
             for a, b in itertools.combinations(range(len(descriptors)), 2) if a in movable or b in movable}
    return min(pairs.values()), sum(max(0.0, TARGET - d) ** 2 for d in pairs.values()), pairs


def as_code(identity: Identity) -> str:
    defaults = Identity(0, 0, "astronaut")
    args = [repr(identity.shape_mix), repr(identity.texture_mix), repr(identity.head), repr(identity.halves)]
    if identity.eye_swap:
        args.append("eye_swap=True")
    args += [f"{f}={getattr(identity, f)!r}" for f in APPEARANCE_RANGES if getattr(identity, f) != getattr(defaults, f)]
    args += [f"{k}={v!r}" for k, v in identity.geometry if v != 0]
    return f"    _id({', '.join(args)}),"


def main() -> None:
    """Improve the table for ``--minutes``; write the best table to ``--out`` after every improvement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("data/demo_identities.txt"))
    parser.add_argument("--rows", help="comma-separated table rows the search may change (default: all)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    table = list(IDENTITIES)
    while len(table) <= max(SLOTS):  # a preset names rows the table lacks: start them as fresh people
        row = len(table)
        candidate = perturb(table[0], rng, fresh=True)
        while (found := describe(candidate, row)) is None or found[1] > MAX_LANDMARK_ERROR:
            candidate = perturb(table[0], rng, fresh=True)
        table.append(candidate)
    movable = {int(r) for r in args.rows.split(",")} if args.rows else set(range(len(table)))
    described = [describe(identity, row) for row, identity in enumerate(table)]
    assert all(d is not None for d in described), "a current identity has no single face"
    descriptors = [d[0] for d in described]
    bounds = [max(MAX_LANDMARK_ERROR, d[1]) for d in described]
    rejected = {"no face": 0, "landmarks": 0, "worse": 0}
    best_min, best_penalty, pairs = score(descriptors, movable)
    print(f"start: closest {best_min:.3f}, {sum(d > 0.6 for d in pairs.values())}/{len(pairs)} above 0.6",
          flush=True)
    end, tries = time.monotonic() + 60 * args.minutes, 0
    while time.monotonic() < end:
        tries += 1
        near = [pair for pair, d in pairs.items() if d < TARGET]
        pair = min(pairs, key=pairs.get) if rng.random() < 0.5 or not near else near[rng.integers(len(near))]
        row = int(rng.choice([r for r in pair if r in movable]))
        candidate = perturb(table[row], rng)
        try:
            result = describe(candidate, row)
        except ValueError:
            continue
        if tries % 200 == 0:
            print(f"try {tries}: rejected {rejected}", flush=True)
        if result is None or result[1] > bounds[row]:
            rejected["no face" if result is None else "landmarks"] += 1
            continue
        trial = descriptors.copy()
        trial[row] = result[0]
        new_min, new_penalty, new_pairs = score(trial, movable)
        if new_min > best_min + 1e-9 or (new_min >= best_min - 1e-9 and new_penalty < best_penalty):
            table[row], descriptors, pairs, best_min, best_penalty = candidate, trial, new_pairs, new_min, new_penalty
            print(f"try {tries}: row {row} closest {best_min:.3f} median {np.median(list(pairs.values())):.3f} "
                  f"{sum(d > 0.6 for d in pairs.values())}/{len(pairs)} above 0.6 (landmarks {result[1]:.2f} px)",
                  flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(f"# closest {best_min:.3f}\n" + "\n".join(as_code(identity) for identity in table) + "\n")
        else:
            rejected["worse"] += 1
    print(f"{tries} tries; closest {best_min:.3f}; rejected {rejected}")
    print("\n".join(as_code(identity) for identity in table))


if __name__ == "__main__":
    main()
