"""Controls of a spotting result: what chance scores, and training on intervals moved to random places.

- :func:`chance_table`: the MEGC F1 a spotter would get by luck with the
  same predictions, each moved to a uniformly random place in its video
  (same count, lengths and kinds per video), averaged over draws. "Beats
  chance" means beating this.
- :func:`relocate`: annotated intervals moved to random places in their
  video (lengths, kinds and the apex's place within each kept): the
  shuffled-label control of a trained spotter, which must then fall to
  chance on the true intervals of its test videos.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..spotting_eval import ALL, IOU, KINDS, OVERALL, SpottingCounts, found_truths

__all__ = ["CHANCE_DRAWS", "chance_table", "relocate"]

CHANCE_DRAWS = 200
"""Draws the chance figures average over."""


def _place(lengths: np.ndarray, n_frames: int, first: int, rng: np.random.Generator) -> np.ndarray:
    """Random (onset, offset) of intervals of the given lengths within frames first .. first + n_frames - 1."""
    lengths = np.minimum(lengths, n_frames)
    starts = first + (rng.random(len(lengths)) * (n_frames - lengths + 1)).astype(np.int64)
    return np.stack([starts, starts + lengths - 1], axis=1)


def chance_table(predictions: pd.DataFrame, truth: pd.DataFrame, frames: Mapping[tuple[str, str], tuple[int, int]],
                 draws: int = CHANCE_DRAWS, seed: int = 0, iou: float = IOU) -> dict[tuple[str, str], dict]:
    """Mean MEGC counts and F1 of the predictions placed at random, per (dataset or ``all``, kind or ``overall``).

    Parameters
    ----------
    predictions, truth : pandas.DataFrame
        Interval tables (``dataset, video, onset, offset, kind``).
    frames : mapping of (dataset, video) to (first frame number, number of frames)
        Every evaluated video.
    draws : int
    seed : int
    iou : float

    Returns
    -------
    dict
        ``(dataset, kind) -> {"tp", "fp", "fn", "f1"}``: TP, FP, FN averaged
        over the draws and the mean of each draw's F1.
    """
    rng = np.random.default_rng(seed)
    groups = {}
    for (dataset, video), (first, n_frames) in frames.items():
        for kind in KINDS:
            p = predictions[(predictions["dataset"] == dataset) & (predictions["video"] == video)
                            & (predictions["kind"] == kind)]
            t = truth[(truth["dataset"] == dataset) & (truth["video"] == video) & (truth["kind"] == kind)]
            groups[(dataset, video, kind)] = ((p["offset"] - p["onset"] + 1).to_numpy(dtype=np.int64),
                                              t[["onset", "offset"]].to_numpy(dtype=np.int64), first, n_frames)
    datasets = sorted({d for d, _ in frames})
    sums: dict[tuple[str, str], list[float]] = {}
    for _ in range(draws):
        per: dict[tuple[str, str], SpottingCounts] = {}
        for (dataset, _video, kind), (lengths, real, first, n_frames) in groups.items():
            placed = _place(lengths, n_frames, first, rng)
            counts = SpottingCounts.found(len(real), len(placed), int(found_truths(placed, real, iou).sum()))
            for key in ((dataset, kind), (dataset, OVERALL), (ALL, kind), (ALL, OVERALL)):
                per[key] = per.get(key, SpottingCounts()) + counts
        for key, counts in per.items():
            total = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            for i, value in enumerate((counts.tp, counts.fp, counts.fn, counts.f1)):
                total[i] += value
    order = [(d, k) for d in datasets + [ALL] for k in (*KINDS, OVERALL)]
    return {key: dict(zip(("tp", "fp", "fn", "f1"), (v / draws for v in sums[key]))) for key in order if key in sums}


def relocate(truth: pd.DataFrame, frames: Mapping[str, tuple[int, int]], seed: int = 0) -> pd.DataFrame:
    """The annotated intervals moved to random places in their videos.

    Parameters
    ----------
    truth : pandas.DataFrame
        ``video, onset, apex, offset, kind`` (and other columns, kept).
    frames : mapping of video to (first frame number, number of frames)
    seed : int

    Returns
    -------
    pandas.DataFrame
        Same rows and lengths; onset, apex and offset shifted together.
    """
    rng = np.random.default_rng(seed)
    out = truth.copy()
    out["apex"] = out["apex"].astype(object)
    for video, rows in truth.groupby("video", sort=False):
        first, n_frames = frames[video]
        lengths = (rows["offset"] - rows["onset"] + 1).to_numpy(dtype=np.int64)
        placed = _place(lengths, n_frames, first, rng)
        shift = placed[:, 0] - rows["onset"].to_numpy(dtype=np.int64)
        out.loc[rows.index, "onset"] = placed[:, 0]
        out.loc[rows.index, "offset"] = placed[:, 1]
        apex = rows["apex"].astype("float64").to_numpy()
        out.loc[rows.index, "apex"] = [None if np.isnan(a) else int(a + s) for a, s in zip(apex, shift)]
    return out
