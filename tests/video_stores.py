"""Small synthetic long-video stores for tests of spotting runs, written directly with ``StoreWriter``.

Each video (200 fps, frame numbers from 1) holds a micro- and a
macro-expression at random places and one unannotated "blink" between them.
An expression moves a bright blob in the lower half of 16x16 RGB frames
(displacement rising linearly to the apex and back); the blink darkens and
moves a blob in the upper half. The region curves (``roi_magnitude``) are
the motion from frame t to t + k in each region the way the roi_motion stage
measures it (absolute change of the displacement over k frames; brows and
mouth see the expression, eyes the blink), NaN for the last k frames; the
consecutive flow is the blob's displacement between frames, ``flow_apart``
its displacement from frame t to t + k (NaN for the last k frames). The store is a
real long-video store: samples, intervals table, build record, manifest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from conftest import finish_synthetic_store

from mepipe.featurestore.features import ROI_REGIONS
from mepipe.featurestore.schema import INTERVAL_COLUMNS, SAMPLE_COLUMNS, UNIT_ATTR
from mepipe.featurestore.writer import StoreWriter

FPS = 200.0
K = 20
"""Frames between the two frames of the region curves' flow."""
SIZE = 16


def _profile(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Displacement at positions 0..n-1: 0 outside onset..offset, rising linearly to 1 at the apex and back."""
    t = np.arange(n, dtype=np.float64)
    up = np.clip((t - onset) / max(1, apex - onset), 0, 1)
    down = np.clip((offset - t) / max(1, offset - apex), 0, 1)
    return np.where(t <= apex, up, down) * ((t >= onset) & (t <= offset))


def plan_video(rng: np.random.Generator, n_frames: int) -> dict[str, tuple[int, int, int]]:
    """Positions (onset, apex, offset) of the video's micro, macro and blink events, apart from each other."""
    micro_len, macro_len, blink_len = int(rng.integers(50, 90)), int(rng.integers(140, 200)), 24
    order = rng.permutation(["micro", "macro", "blink"])
    lengths = {"micro": micro_len, "macro": macro_len, "blink": blink_len}
    free = n_frames - 40 - sum(lengths.values())
    gaps = np.diff(np.sort(rng.integers(0, free, 3)), prepend=0)
    events, start = {}, 20
    for kind, gap in zip(order, gaps):
        start += int(gap)
        length = lengths[kind]
        events[kind] = (start, start + length // 2, start + length - 1)
        start += length
    return events


def write_video_store(path: Path, *, n_subjects: int = 4, n_frames: int = 600, seed: int = 0,
                      dataset: str = "demo-lv") -> Path:
    """A long-video store of ``n_subjects`` people with one video each (see the module docstring)."""
    rng = np.random.default_rng(seed)
    writer = StoreWriter(path)
    writer.create({UNIT_ATTR: "video"})
    samples, intervals = [], []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for s in range(1, n_subjects + 1):
        subject, video = f"{s:03d}", f"{s:03d}_1"
        events = plan_video(rng, n_frames)
        expression = _profile(n_frames, *events["micro"]) + 2 * _profile(n_frames, *events["macro"])
        blink = _profile(n_frames, *events["blink"])
        low = np.exp(-((yy[None] - 11) ** 2 + (xx[None] - 8 - 2 * expression[:, None, None]) ** 2) / 4.0)
        high = np.exp(-((yy - 4) ** 2 + (xx - 8) ** 2) / 3.0)
        frames = 90.0 + 120 * low - 60 * blink[:, None, None] * high[None]
        frames = frames[..., None] + rng.normal(0, 2.0, (n_frames, SIZE, SIZE, 3))
        flow = np.zeros((n_frames - 1, 2, SIZE, SIZE))
        flow[:, 0, 8:] = np.diff(2 * expression)[:, None, None]
        flow[:, 1, :8] = np.diff(blink)[:, None, None]
        flow += rng.normal(0, 0.01, flow.shape)
        apart = np.full((n_frames, 2, SIZE, SIZE), np.nan)
        apart[:-K] = 0.0
        apart[:-K, 0, 8:] = 2 * (expression[K:] - expression[:-K])[:, None, None]
        apart[:-K, 1, :8] = (blink[K:] - blink[:-K])[:, None, None]
        change = {"expression": np.abs(expression[K:] - expression[:-K]), "blink": np.abs(blink[K:] - blink[:-K])}
        regions = np.full((n_frames, len(ROI_REGIONS)), np.nan)
        for r, name in enumerate(ROI_REGIONS):
            source = change["blink"] if name.startswith("eye") else \
                change["expression"] if name.startswith(("brow", "mouth")) else np.zeros(n_frames - K)
            regions[:n_frames - K, r] = source + rng.normal(0.05, 0.01, n_frames - K)
        numbers = np.arange(1, n_frames + 1)
        writer.write_feature(video, "frame", numbers, "synthetic")
        writer.write_feature(video, "frames_rgb", np.clip(frames, 0, 255).astype(np.uint8), "synthetic",
                             frame_numbers=numbers)
        writer.write_feature(video, "flow_consecutive", flow.astype(np.float16), "synthetic")
        writer.write_feature(video, "flow_apart", apart.astype(np.float16), "synthetic", {"events": {"k": K}},
                             frame_numbers=numbers)
        writer.write_feature(video, "roi_magnitude", regions.astype(np.float32), "synthetic", {"events": {"k": K}},
                             frame_numbers=numbers)
        row = dict.fromkeys(SAMPLE_COLUMNS, "")
        row.update(sample=video, dataset=dataset, subject=subject, clip=video, fps=FPS, n_frames=n_frames,
                   status="ok", onset=None, apex=None, offset=None, onset_est=None, apex_est=None, offset_est=None,
                   apex_ncc=None)
        samples.append(row)
        for n, kind in enumerate(("micro", "macro"), start=1):
            onset, apex, offset = (p + 1 for p in events[kind])  # positions to frame numbers
            intervals.append({"dataset": dataset, "video": video, "name": f"{video}_{n}", "onset": onset, "apex": apex,
                              "offset": offset, "kind": kind, "action_units": "", "au_codes": "", "emotion": "",
                              "flags": ""})
    writer.write_samples(pd.DataFrame(samples))
    writer.write_intervals(pd.DataFrame(intervals, columns=[c for c in INTERVAL_COLUMNS if c != "interval"]))
    finish_synthetic_store(writer, dataset, flow_apart={"k": K})
    return path
