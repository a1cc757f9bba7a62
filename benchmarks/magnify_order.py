"""Magnify, then resize, or the other way round: effective magnification, apex error and CPU cost.

Xia et al. (2019) magnify the aligned face and then resize it for STRCN-A
(64 x 48); the magnify stage before its version 2 resized the crops first.
For every clip of a built store (its aligned ``crops``), at the test alpha
and STRCN-A's size, this compares the two orders:

- **energy ratio**: the temporal-difference energy ``sum_t sum_px |I(t) -
  I(0)|`` (the total of Xia's eq. 4 heat map) of the magnified small clip
  over that of the unmagnified one (the crops resized); reported as the
  ratio of the sums over all clips, as the median of the per-clip ratios,
  and with squared differences (``_sq``, about k^2 for motion magnified k
  times).
- **apex error**: |argmax std-diff (Xia eq. 5) - the sheet's apex| in frames,
  on the 128x128 clip magnified in each order (the apex stage's input).
- **CPU seconds** of the stage's work per clip in each order, for the
  store's recorded alphas and for Xia's ten, with one thread.

    OMP_NUM_THREADS=1 python benchmarks/magnify_order.py --store data/stores/demo.zarr
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import pandas as pd

from mepipe.featurestore import open_store
from mepipe.pipeline.stages import apex, magnify
from mepipe.pipeline.stages.magnify import MagnifyParams


def area(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Every frame resized to ``size`` (W, H) with ``cv2.INTER_AREA``."""
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip])


def energy(clip: np.ndarray, power: int = 1) -> float:
    """sum over frames and pixels of |I(t) - I(0)| ** power."""
    x = clip.astype(np.float64)
    return float((np.abs(x - x[:1]) ** power).sum())


def shrink_then_magnify(grey: np.ndarray, params: MagnifyParams) -> dict[tuple[float, tuple[int, int]], np.ndarray]:
    """The stage's clips in the order before version 2: resize to each size, then magnify there."""
    out = {}
    for size, alphas in ((params.small_size, params.alphas), (params.size, (params.test_alpha,))):
        clips = magnify.magnify_frames(area(grey, size), alphas, tuple(range(len(grey))), params)
        out.update({(alpha, size): clips[k] for k, alpha in enumerate(alphas)})
    return out


def cpu(function, *args) -> float:
    started = time.process_time()
    function(*args)
    return time.process_time() - started


def apex_error(crops: np.ndarray, magnified: np.ndarray, truth: int) -> int:
    params = apex.ApexParams(stddiff_on="magnified")
    return abs(apex.estimate(crops, params=params, magnified=magnified[..., None]).apex_est - truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo.zarr", help="A built store (its crops are read).")
    parser.add_argument("--small-size", default="48,64",
                        help="W,H of STRCN-A's clip (48,64 now; 64,48 before issue 25 read Xia's size as W x H).")
    parser.add_argument("--out", help="Write the figures as JSON here.")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    store = open_store(args.store)
    recorded = store.record.stages["magnify"].params
    small_size = tuple(int(v) for v in args.small_size.split(","))
    stored = MagnifyParams(alphas=tuple(recorded["alphas"]), test_alpha=recorded["test_alpha"], small_size=small_size)
    xia = MagnifyParams(small_size=small_size)
    samples = store.samples.set_index("sample")
    rows = []
    for sid in store.sample_ids:
        crops = store.read("crops", sid)
        grey = magnify.squeezed(crops)
        alpha, small, size = stored.test_alpha, stored.small_size, stored.size
        new, old = magnify.magnify_resized(grey, stored), shrink_then_magnify(grey, stored)
        plain = area(grey, small)
        frames = store.read("frame", sid)
        sheet_apex = samples.loc[sid, "apex"]
        truth = None if pd.isna(sheet_apex) or sheet_apex not in frames else int(np.flatnonzero(frames == sheet_apex)[0])
        rows.append({
            **{f"{name}{suffix}": energy(clip, power) for name, clip in
               (("plain", plain), ("new", new[(alpha, small)]), ("old", old[(alpha, small)]))
               for suffix, power in (("", 1), ("_sq", 2))},
            "sample": sid,
            "apex_new": None if truth is None else apex_error(crops, new[(alpha, size)], truth),
            "apex_old": None if truth is None else apex_error(crops, old[(alpha, size)], truth),
            "cpu_new": cpu(magnify.magnify_resized, grey, stored), "cpu_old": cpu(shrink_then_magnify, grey, stored),
            "cpu_new_xia": cpu(magnify.magnify_resized, grey, xia), "cpu_old_xia": cpu(shrink_then_magnify, grey, xia),
        })
    apex_rows = [r for r in rows if r["apex_new"] is not None]
    summary = {
        "store": args.store, "clips": len(rows), "test_alpha": stored.test_alpha, "small_size": list(stored.small_size),
        "crop": list(store.read("crops", rows[0]["sample"]).shape[1:3]),
        "alphas": list(stored.alphas),
        **{f"energy_ratio_{order}{sq}": round(sum(r[order + sq] for r in rows) / sum(r["plain" + sq] for r in rows), 3)
           for sq in ("", "_sq") for order in ("new", "old")},
        **{f"energy_ratio_{order}_median": round(float(np.median([r[order] / r["plain"] for r in rows])), 3)
           for order in ("new", "old")},
        "apex_clips": len(apex_rows),
        **{f"apex_error_{order}": round(float(np.mean([r[f"apex_{order}"] for r in apex_rows])), 3)
           for order in ("new", "old")},
        **{f"cpu_s_per_clip_{key}": round(float(np.mean([r[f"cpu_{key}"] for r in rows])), 4)
           for key in ("new", "old", "new_xia", "old_xia")},
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"summary": summary, "clips": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
