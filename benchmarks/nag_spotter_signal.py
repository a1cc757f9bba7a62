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

A usable input moves more inside expressions than outside (ratio > 1) and
correlates with the target. Printed as Markdown.

    python benchmarks/nag_spotter_signal.py --store data/stores/demo-lv.zarr
"""
from __future__ import annotations

import argparse

import numpy as np

from mepipe.featurestore.features import FLOW_CONSECUTIVE
from mepipe.train.spotters.nag2019 import frame_targets
from mepipe.train.spotters.videos import VideoTable


def local_motion(flow: np.ndarray, step: int) -> np.ndarray:
    """99th percentile of |flow(t -> t+step) - its median vector| per pair, flow (T-1, 2, H, W) consecutive."""
    cumulative = np.concatenate([np.zeros((1, *flow.shape[1:]), np.float64), np.cumsum(flow, axis=0)])
    summed = cumulative[step:] - cumulative[:-step]
    median = np.median(summed.reshape(len(summed), 2, -1), axis=2)[:, :, None, None]
    residual = np.sqrt(((summed - median) ** 2).sum(axis=1)).reshape(len(summed), -1)
    return np.percentile(residual, 99, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo-lv.zarr")
    parser.add_argument("--steps", default="1,7,37", help="Frames between the two frames of the flow [1,7,37].")
    args = parser.parse_args()
    videos = VideoTable.open([args.store])
    print("| video | s | local motion inside | outside | ratio | correlation with the target |")
    print("|---|---|---|---|---|---|")
    for video in sorted(videos.truth["video"].unique()):
        numbers = videos.frame_numbers(video)
        rows = videos.truth[videos.truth["video"] == video].to_dict("records")
        intensity, _ = frame_targets(numbers, rows, float(videos.value(video, "fps")))
        flow = videos.read(FLOW_CONSECUTIVE.name, video, 0, len(numbers) - 1).astype(np.float64)
        for step in (int(s) for s in args.steps.split(",")):
            motion, target = local_motion(flow, step), intensity[step:]
            inside = target > 0.3
            print(f"| {video} | {step} | {motion[inside].mean():.3f} | {motion[~inside].mean():.3f} | "
                  f"{motion[inside].mean() / motion[~inside].mean():.2f} | {np.corrcoef(motion, target)[0, 1]:.3f} |")


if __name__ == "__main__":
    main()
