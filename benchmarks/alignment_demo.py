"""Alignment and apex accuracy of each alignment method on the demo, against the demo's ground truth.

For every clip of a demo dataset, the stored (detected) landmarks of a
built store are aligned with each method of ``align.method``; the demo's
true landmarks are then carried into the crops with each method's warp and
compared:

- **stable error**: distance of the true stable points (eye corners, nose:
  the points the demo never moves with an expression) from their place in
  the first frame's crop, per frame the mean over the points and the worst
  point. ``frame_*``: median of the per-frame means and 90th percentile of
  the per-frame worst point over every frame; ``clip_*``: per clip the
  largest per-frame mean (the build test asks < 1 px on every clip) and the
  largest worst point, summarised over the clips.
- **expression kept**: the true expression displacement of the moving
  landmarks at the apex, as found in the crops, over what it is in the
  source (mapped by the crop's scale): 1 = all of it, 0 = aligned away.
- **apex error**: |std-diff apex estimate - true apex| in frames, on the
  method's crops (Xia eq. 5), and on them magnified at alpha = 8 as the
  magnify stage does (resized to the apex size, Xia's gain; with
  ``--wu`` also with Wu's doubled fine-level gain).

    python benchmarks/alignment_demo.py --root data/datasets/demo --store data/stores/demo.zarr
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pandas as pd

from mepipe.featurestore import open_store
from mepipe.pipeline.datasets.base import get_adapter
from mepipe.pipeline.demo.face import make_subject
from mepipe.pipeline.demo.motion import STABLE_LANDMARKS, expression_class, moved_landmarks
from mepipe.pipeline.demo.synth import plan_clip, read_params
from mepipe.pipeline.stages import SOURCE, default_params
from mepipe.pipeline.stages.frames import load_frames
from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.stages import align, apex, magnify


MAGNIFICATIONS = {"apex_error_magnified": 1.0}
"""Apex errors measured on magnified crops, by the fine-level gain factor (1 = Xia, 2 = Wu's code)."""


def true_tracks(demo, filename):
    """True landmarks (T, 68, 2) of a clip and the same without the expression (head motion only)."""
    subject_id, code, clip = filename.split("_")
    cls = next(c for c in map(expression_class, demo.classes) if c.code == int(code))
    subject = make_subject(int(subject_id), demo)
    truth, _ = plan_clip(subject, cls, int(clip), demo)
    from mepipe.pipeline.demo.motion import amplitude_profile

    profile = amplitude_profile(demo.n_frames, truth.onset_index, truth.apex_index, truth.offset_index)
    heads = [truth.head.affine(k, demo.n_frames) for k in range(demo.n_frames)]
    full = np.stack([moved_landmarks(subject, cls, truth.amplitude_px * profile[k], heads[k])
                     for k in range(demo.n_frames)])
    neutral = np.stack([moved_landmarks(subject, cls, 0.0, heads[k]) for k in range(demo.n_frames)])
    return full, neutral, truth.apex_index


def measure(frames, detected, full, neutral, apex_true, params, fps):
    warp = align.ClipWarp.fit(detected, params, fps)
    n = len(detected)
    stable = list(STABLE_LANDMARKS)
    in_crop = np.stack([warp.to_crop(t, full[t]) for t in range(n)])
    deviation = np.linalg.norm(in_crop[:, stable] - in_crop[0, stable], axis=-1)
    expression = full[apex_true] - neutral[apex_true]
    moving = np.flatnonzero(np.linalg.norm(expression, axis=1) > 0.25 * np.linalg.norm(expression, axis=1).max())
    scale = np.sqrt(abs(np.linalg.det(warp.reference[:, :2])))
    found = in_crop[apex_true, moving] - in_crop[0, moving]
    ideal = expression[moving] @ warp.reference[:, :2].T
    kept = float(np.sum(found * ideal) / np.sum(ideal * ideal))
    crops = align.align_clip(frames, detected, params, fps).crops
    apex_params = dataclasses.replace(default_params()["apex"], stddiff_on="crops")
    errors = {"apex_error": abs(apex.estimate(crops, params=apex_params).apex_est - apex_true)}
    grey = apex.prepare(crops, apex_params).astype(np.uint8)
    on_magnified = dataclasses.replace(apex_params, stddiff_on="magnified")
    for name, gain in MAGNIFICATIONS.items():
        clip = magnify.magnify(grey, 8.0, magnify.MagnifyParams(exaggeration=gain))
        errors[name] = abs(apex.estimate(crops, params=on_magnified, magnified=clip).apex_est - apex_true)
    return {"frame_mean": deviation.mean(axis=1), "frame_worst": deviation.max(axis=1), "kept": kept,
            "scale": scale, **errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/datasets/demo", help="The demo dataset folder.")
    parser.add_argument("--store", default="data/stores/demo.zarr", help="A store built from it (landmarks).")
    parser.add_argument("--methods", default="similarity,lwm",
                        help="Comma-separated align.method values; 'lwm:N' sets lwm_neighbours, "
                             "'lwm-stable' uses the stable points as LWM control points.")
    parser.add_argument("--out", default=None, help="Write the per-method figures as JSON here.")
    parser.add_argument("--wu", action="store_true", help="Also the apex on clips magnified with Wu's gain.")
    args = parser.parse_args()
    if args.wu:
        MAGNIFICATIONS["apex_error_magnified_wu"] = 2.0
    demo = read_params(args.root)
    store = open_store(args.store)
    samples = {s.sample: s for s in get_adapter("demo")(args.root, None).samples}
    base = default_params()["align"]
    variants = {}
    for spec in args.methods.split(","):
        name, _, n = spec.partition(":")
        if name == "lwm-stable":
            params = dataclasses.replace(base, method="lwm", lwm_points=base.stable_points,
                                         lwm_neighbours=int(n or 12))
        else:
            params = dataclasses.replace(base, method=name, **({"lwm_neighbours": int(n)} if n else {}))
        variants[spec] = params
    rows = {spec: [] for spec in variants}
    for sid in store.sample_ids:
        ctx = ClipContext.of(samples[sid])
        frames = load_frames(ctx, default_params()[SOURCE])
        detected = store.read("landmarks", sid).astype(np.float64)
        full, neutral, apex_true = true_tracks(demo, sid)
        for spec, params in variants.items():
            rows[spec].append(measure(frames, detected, full, neutral, apex_true, params, ctx.fps))
    summary = {}
    for spec, clips in rows.items():
        means = np.concatenate([c["frame_mean"] for c in clips])
        worst = np.concatenate([c["frame_worst"] for c in clips])
        clip_mean = np.array([c["frame_mean"].max() for c in clips])
        clip_worst = np.array([c["frame_worst"].max() for c in clips])
        summary[spec] = {
            "clips": len(clips),
            "frame_mean_median_px": round(float(np.median(means)), 3),
            "frame_worst_p90_px": round(float(np.percentile(worst, 90)), 3),
            "clip_mean_median_px": round(float(np.median(clip_mean)), 3),
            "clip_mean_max_px": round(float(clip_mean.max()), 3),
            "clip_worst_p90_px": round(float(np.percentile(clip_worst, 90)), 3),
            "expression_kept": round(float(np.median([c["kept"] for c in clips])), 3),
        }
        for name in ("apex_error", *MAGNIFICATIONS):
            errors = np.array([c[name] for c in clips])
            summary[spec].update({f"{name}_mean": round(float(errors.mean()), 2), f"{name}_max": int(errors.max()),
                                  f"{name}_exact": int((errors == 0).sum())})
    print(pd.DataFrame(summary).to_string())
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
