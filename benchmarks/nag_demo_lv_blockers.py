"""What in the nag2019 spotter keeps it from learning demo-lv: its input, its intensity loss, or its motion map?

A per-frame CNN (three 3x3 conv + ReLU + 2x2 max-pool stages of 8, 16, 16 channels, the widths of the spotter's
narrow motion encoder, then FC 32 and one output) reads the baseline's flow of each frame: TV-L1 from frame
t - k // 2 to t + k - k // 2 on the stored 64x64 crops (k and solver as the store records them for
``roi_motion``; :func:`nag_spotter_signal.baseline_flows`), minus its median vector, divided by one standard
deviation over every video. It learns whether the frame lies in a micro-expression (``--target micro``, the
spotter's intensity target > 0.3 on a micro interval) or any expression (``any``), leave one video (= person) out,
Adam 1e-3, batches of 64, ``--epochs`` epochs, and prints the ROC AUC of its output on the training frames and on
the held-out person's. Variants, each changing one thing of the first:

- ``bce``: binary cross-entropy of the frame's label (nothing balanced);
- ``l1``: the spotter's intensity loss instead: a sigmoid output, L1 distance to Nag's intensity triangle;
- ``sigmoid-map``: ``bce``, but the encoder's features pass through one 1x1-conv channel and a sigmoid before
  the FC layers: the spotter's motion path (MPNet's motion likelihood, one channel in (0, 1));
- ``linear-map``: the same one channel without the sigmoid.

Beside them, the AUC of the flow's mean magnitude (no learning). A variant that is near 0.5 on its own training
frames did not learn at all.

    OMP_NUM_THREADS=1 python benchmarks/nag_demo_lv_blockers.py --store data/stores/demo-lv.zarr
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from nag_spotter_signal import baseline_flows
from scipy.stats import rankdata
from torch import nn

from mepipe.train.spotters.nag2019 import STEP_KINDS, frame_targets
from mepipe.train.spotters.videos import VideoTable

VARIANTS = ("bce", "l1", "sigmoid-map", "linear-map")


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney U / n1 n0)."""
    label = np.asarray(label, bool)
    ranks = rankdata(score)
    n1, n0 = int(label.sum()), int((~label).sum())
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class FrameNet(nn.Module):
    """The per-frame CNN; ``map_channel`` puts a one-channel 1x1 conv (``sigmoid``: and a sigmoid) before the FCs."""

    def __init__(self, map_channel: bool = False, sigmoid: bool = False, side: int = 64):
        super().__init__()
        self.encode = nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.map = nn.Conv2d(16, 1, 1) if map_channel else None
        self.sigmoid = sigmoid
        cells = (side // 8) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cells * (1 if map_channel else 16), 32), nn.ReLU(),
                                  nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encode(x)
        if self.map is not None:
            features = self.map(features)
            features = torch.sigmoid(features) if self.sigmoid else features
        return self.head(features).squeeze(1)


def train_and_score(variant: str, x: np.ndarray, label: np.ndarray, intensity: np.ndarray, epochs: int,
                    seed: int = 0) -> FrameNet:
    torch.manual_seed(seed)
    net = FrameNet(map_channel=variant.endswith("map"), sigmoid=variant == "sigmoid-map", side=x.shape[-1])
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys, targets = torch.from_numpy(x), torch.from_numpy(label.astype(np.float32)), torch.from_numpy(intensity)
    for _ in range(epochs):
        for batch in torch.randperm(len(xs)).split(64):
            out = net(xs[batch])
            loss = ((torch.sigmoid(out) - targets[batch]).abs().mean() if variant == "l1" else
                    nn.functional.binary_cross_entropy_with_logits(out, ys[batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo-lv.zarr")
    parser.add_argument("--target", choices=("micro", "any"), default="micro")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    videos = VideoTable.open([args.store])
    recorded = videos.stage_params("roi_motion")
    flows, labels, intensities = {}, {}, {}
    for video in sorted(videos.truth["video"].unique()):
        flow, k = baseline_flows(videos, video, recorded)
        rows = videos.truth[videos.truth["video"] == video].to_dict("records")
        intensity, kind = frame_targets(videos.frame_numbers(video), rows, float(videos.value(video, "fps")))
        middle = slice(k // 2, k // 2 + len(flow))
        inside = intensity[middle] > 0.3
        labels[video] = inside & (kind[middle] == STEP_KINDS.index("micro")) if args.target == "micro" else inside
        intensities[video] = intensity[middle].astype(np.float32)
        flows[video] = (flow - np.median(flow.reshape(len(flow), 2, -1), axis=2)[:, :, None, None]).astype(np.float32)
    scale = float(np.concatenate([f.ravel() for f in flows.values()]).std())
    print(f"flows t -> t + {k} of {len(flows)} videos in {time.perf_counter() - started:.0f} s; target {args.target}, "
          f"{args.epochs} epochs\n")
    print("| variant | held-out video | train AUC | test AUC | mean-magnitude AUC |")
    print("|---|---|---|---|---|")
    for variant in args.variants.split(","):
        for test in flows:
            train = [v for v in flows if v != test]
            x = np.concatenate([flows[v] for v in train]) / scale
            net = train_and_score(variant, x, np.concatenate([labels[v] for v in train]),
                                  np.concatenate([intensities[v] for v in train]), args.epochs)
            with torch.no_grad():
                fit_score = net(torch.from_numpy(x)).numpy()
                test_score = net(torch.from_numpy(flows[test] / scale)).numpy()
            magnitude = np.sqrt((flows[test] ** 2).sum(axis=1)).reshape(len(flows[test]), -1).mean(axis=1)
            print(f"| {variant} | {test} | {auc(np.concatenate([labels[v] for v in train]), fit_score):.3f} | "
                  f"{auc(labels[test], test_score):.3f} | {auc(labels[test], magnitude):.3f} |", flush=True)


if __name__ == "__main__":
    main()
