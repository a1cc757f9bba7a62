"""How loud each kind of event of the long-video demo is to a training-free motion-peak spotter.

For every video of a written ``demo-lv`` (``mepipe demo --dataset demo-lv``),
from its frames and its truth file alone (no store, no spotter code):

1. align every frame to the first with a least-squares similarity fitted to
   the *true* stable landmarks (eye corners, nose; the align stage's points),
   an ideal aligner: whatever motion survives it survives any real one;
2. crop (Xia eq. 1) at ``--size`` pixels and compute TV-L1 (the demo's cheap
   settings) between frames t and t+k, k = half the corpus's mean
   micro-expression length, as the MEGC 2020 baseline sets its window;
3. per region (brows, eyes, nose, mouth corners, from the first frame's true
   landmarks) the mean flow magnitude, divided by that region's median over
   the video; the score of frame t is the largest region value;
4. per event, the highest score of the frames whose window t..t+k overlaps
   it, and whether that exceeds the MEGC-baseline threshold
   ``mean + p (max - mean)`` of the video's score, for each ``--p``.

The table says whether blinks, head turns and nods and macro-expressions
peak as high as micro-expressions (they should, so that peak picking is
fooled and a learned spotter has something to learn). Printed as Markdown.

    python benchmarks/demo_lv_peaks.py --root data/datasets/demo-lv

References
----------
Y. He, S.-J. Wang, J. Li, M. H. Yap, "Spotting macro- and micro-expression
intervals in long video sequences", IEEE FG 2020 (the MEGC 2020 baseline).
https://doi.org/10.1109/FG47880.2020.00036
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from mepipe.pipeline.demo.long_write import LV_TRUTH, frame_file, read_long_params, true_video_landmarks
from mepipe.pipeline.stages.align import AlignParams, apply_affine, compose, crop_transform, fit_similarity

REGIONS = {"brow_l": range(17, 22), "brow_r": range(22, 27), "eye_l": range(36, 42), "eye_r": range(42, 48),
           "nose": range(27, 36), "mouth_l": (48,), "mouth_r": (54,)}
"""0-based iBUG rows whose box (padded by 0.12 inter-ocular distances) is each region."""


def region_boxes(points: np.ndarray) -> dict[str, tuple[slice, slice]]:
    """Each region's pixel box in a crop, from the crop's landmarks (68, 2)."""
    pad = 0.12 * np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
    boxes = {}
    for name, rows in REGIONS.items():
        low = np.floor(points[list(rows)].min(0) - pad).astype(int).clip(0)
        high = np.ceil(points[list(rows)].max(0) + pad).astype(int) + 1
        boxes[name] = (slice(low[1], high[1]), slice(low[0], high[0]))
    return boxes


def video_scores(root: Path, video: str, params, k: int, size: int) -> tuple[np.ndarray, object]:
    """The per-frame score (n - k,) of a video and its plan."""
    plan, truth = true_video_landmarks(params, video)
    align = AlignParams(size=size)
    stable = [p - 1 for p in align.stable_points]
    reference = crop_transform(truth[0], align)
    crops = []
    for index in range(plan.n_frames):
        frame = cv2.imread(str(root / "SAMM_longvideos" / video / frame_file(video, plan.first_frame + index)),
                           cv2.IMREAD_GRAYSCALE)
        warp = compose(reference, fit_similarity(truth[index][stable], truth[0][stable]))
        crops.append(cv2.warpAffine(frame, warp, (size, size), flags=cv2.INTER_LINEAR))
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    tvl1.setScalesNumber(3)
    tvl1.setWarpingsNumber(2)
    tvl1.setEpsilon(0.05)
    boxes = region_boxes(apply_affine(reference, truth[0]))
    curves = np.zeros((plan.n_frames - k, len(boxes)))
    for t in range(plan.n_frames - k):
        magnitude = np.linalg.norm(tvl1.calc(crops[t], crops[t + k], None), axis=-1)
        curves[t] = [magnitude[box].mean() for box in boxes.values()]
    return (curves / np.median(curves, axis=0)).max(axis=1), plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="a written demo-lv")
    parser.add_argument("--videos", nargs="*", help="video ids (default: all)")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels [64]")
    parser.add_argument("--p", type=float, nargs="+", default=[0.1, 0.3], help="threshold fractions of max - mean")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    params = read_long_params(args.root)
    truth = json.loads((args.root / LV_TRUTH).read_text())
    k = max(1, int(round(truth["mean_micro_frames"] / 2)))
    videos = args.videos or [v["video"] for v in truth["videos"]]
    peaks, spotted, quiet = defaultdict(list), defaultdict(lambda: np.zeros(len(args.p), int)), []
    for video in videos:
        score, plan = video_scores(args.root, video, params, k, args.size)
        thresholds = score.mean() + np.asarray(args.p) * (score.max() - score.mean())
        busy = np.zeros(len(score), bool)
        for event in plan.events:
            first = max(0, event.onset - plan.first_frame - k)
            last = min(len(score), event.offset - plan.first_frame + 1)
            busy[first:last] = True
            peaks[event.kind].append(float(score[first:last].max()))
            spotted[event.kind] += score[first:last].max() > thresholds
        quiet.append(float(score[~busy].max()) if (~busy).any() else float("nan"))
        print(f"{video}: {plan.n_frames} frames, max {score.max():.2f}, quiet max {quiet[-1]:.2f}", flush=True)
    print(f"\nk = {k} frames, crops {args.size} px; score = max over regions of flow magnitude / region median\n")
    above = " | ".join(f"above p={p}" for p in args.p)
    print(f"| event | n | peak score: min | median | max | {above} |")
    print("| --- " * (5 + len(args.p)) + "|")
    for kind, values in peaks.items():
        counts = " | ".join(f"{c}/{len(values)}" for c in spotted[kind])
        print(f"| {kind} | {len(values)} | {min(values):.2f} | {np.median(values):.2f} | {max(values):.2f} | "
              f"{counts} |")
    print(f"| (no event) | {len(quiet)} videos | | {np.nanmedian(quiet):.2f} | {np.nanmax(quiet):.2f} |"
          + " |" * len(args.p))


if __name__ == "__main__":
    main()
