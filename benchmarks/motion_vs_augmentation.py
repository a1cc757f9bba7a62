"""How far the expression moves the face against how far Kim's augmentation moves it, on a store's clips.

For each clip of a store (the demo's: ``demo_truth.csv`` beside its frames
gives each clip's true apex displacement ``amplitude_px`` in source
pixels), this prints, in pixels of Kim's 64x64 frames (``kim.size``):

- **expression**: the true apex displacement of the clip's most-moving
  landmark, mapped into the crop (the align stage's transform scale) and
  resized to ``kim.size``;
- **augmentation**: how far each variant of Kim's §3.1 grid (flips aside:
  rotations, shifts, scales) moves the same face's landmarks (those of its
  apex frame, in ``landmarks_aligned``), as the median over landmarks and
  the mean over the grid's variants;
- **per pair**: the expression displacement divided by the frames from onset
  to apex, what one of Nag's consecutive-frame flows sees at the clip's fps;
  and the median magnitude of the stored ``flow_consecutive`` inside and
  outside onset..offset (the motion against the flow's noise floor).

    python benchmarks/motion_vs_augmentation.py --store data/stores/demo.zarr --truth data/datasets/demo/demo_truth.csv
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from mepipe.featurestore import open_store
from mepipe.train.augment import AffineAugmentParams, affine_variants


def grid_displacements(points: np.ndarray, side: float, params: AffineAugmentParams) -> np.ndarray:
    """(V, N) distance each of N points (x, y in pixels of a side x side image) moves under each grid variant
    without flip (a mirror moves points across the face, which is no displacement of the same point)."""
    centre = points - side / 2.0
    out = []
    for flip, angle, shift, scale in affine_variants(params):
        if flip:
            continue
        rad = np.deg2rad(angle)
        rotation = np.array([[np.cos(rad), np.sin(rad)], [-np.sin(rad), np.cos(rad)]])
        moved = scale * centre @ rotation.T + np.asarray(shift)
        out.append(np.linalg.norm(moved - centre, axis=1))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--truth", required=True, help="demo_truth.csv of the demo the store was built from")
    parser.add_argument("--json", help="Write the per-clip figures here.")
    args = parser.parse_args()
    store = open_store(args.store)
    truth = pd.read_csv(args.truth, dtype={"subject": str}).set_index("filename")
    side = float(store.record.stages["kim"].params["size"])
    crop = float(store.record.stages["align"].params["size"])
    rows = []
    for sample in store.sample_ids:
        clip = truth.loc[sample]
        affine = store.read("transforms", sample)[0]
        to_crop = float(np.sqrt(abs(np.linalg.det(affine[:2, :2]))))
        expression = float(clip["amplitude_px"]) * to_crop * side / crop
        apex = int(clip["apex_index"])
        points = store.read("landmarks_aligned", sample)[apex] * side / crop
        moved = grid_displacements(points, side, AffineAugmentParams())
        frames = max(1, int(clip["apex_index"]) - int(clip["onset_index"]))
        flow = np.linalg.norm(store.read("flow_consecutive", sample).astype(np.float32), axis=1)  # (T-1, H, W)
        inside = np.zeros(len(flow), bool)
        inside[int(clip["onset_index"]):int(clip["offset_index"])] = True
        rows.append({"sample": sample, "expression_px": expression,
                     "augmentation_px": float(np.median(moved, axis=1).mean()),
                     "augmentation_max_px": float(moved.max(axis=1).mean()),
                     "per_pair_px": expression / frames,
                     "flow_p99_inside": float(np.percentile(flow[inside], 99)) if inside.any() else None,
                     "flow_p99_outside": float(np.percentile(flow[~inside], 99)) if (~inside).any() else None})
    table = pd.DataFrame(rows)
    summary = table.drop(columns="sample").describe().loc[["mean", "min", "max"]]
    print(f"store {args.store}: {len(table)} clips, frames {side:.0f}x{side:.0f} (crop {crop:.0f}), fps "
          f"{store.samples['fps'].iloc[0]}")
    print(summary.round(3).to_string())
    print(f"augmentation / expression: {float((table.augmentation_px / table.expression_px).mean()):.1f}x (median "
          f"landmark), {float((table.augmentation_max_px / table.expression_px).mean()):.1f}x (farthest landmark)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"store": args.store, "summary": summary.to_dict(), "clips": rows}, f, indent=2)


if __name__ == "__main__":
    main()
