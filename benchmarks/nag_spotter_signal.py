"""Whether the nag2019 spotter's input, the flow between consecutive 64x64 crops, shows where expressions are.

For every video of a long-video store (``mepipe build --dataset demo-lv``),
from the store's ``flow_consecutive`` and annotated intervals alone:

1. the flow from frame t to t + s as the sum of the s consecutive flows
   after t (s = ``--steps``; s = 1 is what one step of the spotter reads);
2. per pair, the flow minus its median vector over the crop (a global
   translation, e.g. a head shift, removed), and the 99th percentile of the
   remaining magnitudes: the strongest local motion of the face;
3. the spotter's own target for the frame the pair ends at (Nag's intensity
   triangle, :func:`mepipe.train.spotters.nag2019.frame_targets`); frames
   with target > 0.3 are "inside" an expression.

With ``--direct``, also the TV-L1 flow from frame t to t + k itself (not
a sum of consecutive flows): the baseline's k and solver, as the store
records them for ``roi_motion``, on grey versions of the stored 64x64
crops (``frames_rgb``), measured for the frame in the flow's middle
(t + k // 2): what the spotter would read if it took the baseline's flow.

A usable input moves more inside expressions than outside (ratio > 1) and
correlates with the target; the micro column compares micro-expression
frames alone with the outside. Printed as Markdown.

    python benchmarks/nag_spotter_signal.py --store data/stores/demo-lv.zarr [--direct]
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from mepipe.featurestore.features import FLOW_CONSECUTIVE, FRAMES_RGB
from mepipe.pipeline.stages.flow import TVL1Params, tvl1_flows
from mepipe.pipeline.stages.roi_motion import RoiMotionParams
from mepipe.train.spotters.nag2019 import STEP_KINDS, frame_targets
from mepipe.train.spotters.videos import VideoTable


def strongest_local(flow: np.ndarray) -> np.ndarray:
    """99th percentile of |flow - its median vector| per field, flow (N, 2, H, W)."""
    median = np.median(flow.reshape(len(flow), 2, -1), axis=2)[:, :, None, None]
    residual = np.sqrt(((flow - median) ** 2).sum(axis=1)).reshape(len(flow), -1)
    return np.percentile(residual, 99, axis=1)


def local_motion(flow: np.ndarray, step: int) -> np.ndarray:
    """:func:`strongest_local` of the flow from t to t + step, summed from the consecutive flows (T-1, 2, H, W)."""
    cumulative = np.concatenate([np.zeros((1, *flow.shape[1:]), np.float64), np.cumsum(flow, axis=0)])
    return strongest_local(cumulative[step:] - cumulative[:-step])


def baseline_flows(videos: VideoTable, video: str, recorded: dict) -> tuple[np.ndarray, int]:
    """TV-L1 from each stored crop (grey) to the one k frames later, (T - k, 2, H, W), and k: the k and solver the
    store records for ``roi_motion`` (k by :meth:`RoiMotionParams.frames_apart` at the video's rate)."""
    k = RoiMotionParams(k=int(recorded["k"]), k_seconds=float(recorded["k_seconds"])).frames_apart(
        float(videos.value(video, "fps")))
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in videos.read(FRAMES_RGB.name, video)])
    return tvl1_flows(grey[:-k], grey[k:], TVL1Params(**recorded["tvl1"])), k


def row(video: str, name: str, motion: np.ndarray, target: np.ndarray, kind: np.ndarray) -> str:
    """One table row: motion against the targets of the frames it is measured for."""
    inside, micro = target > 0.3, (target > 0.3) & (kind == STEP_KINDS.index("micro"))
    outside = motion[~inside].mean()
    return (f"| {video} | {name} | {motion[inside].mean():.3f} | {outside:.3f} | {motion[inside].mean() / outside:.2f} "
            f"| {motion[micro].mean() / outside:.2f} | {np.corrcoef(motion, target)[0, 1]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo-lv.zarr")
    parser.add_argument("--steps", default="1,7,37", help="Frames between the two frames of the flow [1,7,37].")
    parser.add_argument("--direct", action="store_true", help="Also TV-L1 from t to t + k directly (see above).")
    args = parser.parse_args()
    videos = VideoTable.open([args.store])
    recorded = videos.stage_params("roi_motion") if args.direct else {}
    print("| video | flow | local motion inside | outside | ratio | micro ratio | correlation with the target |")
    print("|---|---|---|---|---|---|---|")
    for video in sorted(videos.truth["video"].unique()):
        numbers = videos.frame_numbers(video)
        rows = videos.truth[videos.truth["video"] == video].to_dict("records")
        intensity, kind = frame_targets(numbers, rows, float(videos.value(video, "fps")))
        flow = videos.read(FLOW_CONSECUTIVE.name, video, 0, len(numbers) - 1).astype(np.float64)
        for step in (int(s) for s in args.steps.split(",")):
            print(row(video, f"sum of {step} consecutive", local_motion(flow, step), intensity[step:], kind[step:]))
        if args.direct:
            flow, k = baseline_flows(videos, video, recorded)
            motion = strongest_local(flow.astype(np.float64))
            middle = slice(k // 2, k // 2 + len(motion))
            print(row(video, f"t -> t + {k} directly", motion, intensity[middle], kind[middle]))


if __name__ == "__main__":
    main()
