"""From a per-frame spotting curve to intervals: thresholds, runs above them, and the kind of each run.

Every spotter ends the same way: a curve with one value per frame of a
video (NaN where it has none), a threshold, and each maximal run of frames
above the threshold becomes one spotted interval whose kind (micro or macro)
follows from its length or from the pass that found it. Positions here are
indices into the video's frames (0 = its first stored frame);
:func:`interval_records` turns them into the video's frame numbers.

References
----------
.. [1] He, Wang, Li, Yap, FG 2020 (the MEGC 2020 baseline; :mod:`mepipe.train.spotting_eval` cites it in full):
   ``MDMD_codes/cmd.m`` thresholds ``C > cmean + 0.01 p (cmax - cmean)``.
.. [2] C. H. Yap, C. Kendrick, M. H. Yap, "SAMM Long Videos: a spontaneous facial micro- and
   macro-expressions dataset", IEEE FG 2020. https://doi.org/10.1109/FG47880.2020.00029 (a
   micro-expression lasts at most 500 ms; CAS(ME)² uses the same bound).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics import runs_of
from ..spotting_eval import KINDS

__all__ = ["MICRO_MAX_SECONDS", "Spotted", "interval_records", "kind_by_duration", "moving_mean",
           "relative_threshold", "runs_above", "spot_by_duration", "spot_relative_by_duration", "spot_runs"]

MICRO_MAX_SECONDS = 0.5
"""Longest micro-expression, in seconds (MEGC; SAMM Long Videos and CAS(ME)²): longer intervals are macro."""


@dataclass(frozen=True)
class Spotted:
    """One spotted interval of a video, by frame position.

    Attributes
    ----------
    first, last : int
        Positions of its first and last frame (inclusive).
    peak : int
        Position of the curve's highest value in it (the spotted apex).
    score : float
        The curve's value at ``peak``.
    kind : {"micro", "macro"}
    """

    first: int
    last: int
    peak: int
    score: float
    kind: str

    @property
    def n_frames(self) -> int:
        return self.last - self.first + 1


def relative_threshold(curve: Sequence[float], p: float) -> float | None:
    """``T = C_mean + p (C_max - C_mean)`` over the curve's finite values (MEGC 2020 baseline, ``cmd.m``).

    Returns None when the curve has no finite value or is flat (max = mean):
    nothing stands out, so nothing is spotted.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    values = np.asarray(curve, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    mean, top = float(values.mean()), float(values.max())
    if top - mean <= 1e-12 * max(1.0, abs(top)):
        return None
    return mean + p * (top - mean)


def runs_above(curve: Sequence[float], threshold: float | None) -> list[tuple[int, int]]:
    """(first, last) positions of each maximal run of frames whose value is strictly above ``threshold``.

    Strictly above, as the baseline's ``find(C > T)``; a NaN frame is never
    above, so it ends a run. No threshold (None) spots nothing.
    """
    if threshold is None:
        return []
    values = np.asarray(curve, dtype=np.float64)
    return runs_of(np.where(np.isfinite(values), values, -np.inf) > threshold)


def kind_by_duration(n_frames: int, fps: float, micro_max_seconds: float = MICRO_MAX_SECONDS) -> str:
    """``micro`` when ``n_frames`` frames last at most ``micro_max_seconds`` at ``fps`` (``n_frames <= max * fps``),
    else ``macro``."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    return "micro" if n_frames <= micro_max_seconds * fps + 1e-9 else "macro"


def spot_runs(curve: Sequence[float], threshold: float | None, kind: str) -> list[Spotted]:
    """The runs of ``curve`` above ``threshold`` as :class:`Spotted` intervals of one kind, with their peaks."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    values = np.asarray(curve, dtype=np.float64)
    return [_spotted(values, first, last, kind) for first, last in runs_above(values, threshold)]


def spot_by_duration(curve: Sequence[float], threshold: float, fps: float) -> tuple[float, list[Spotted]]:
    """The runs of ``curve`` above a fixed ``threshold``, each of the kind its length gives (:func:`kind_by_duration`)."""
    values = np.asarray(curve, dtype=np.float64)
    return threshold, [_spotted(values, first, last, kind_by_duration(last - first + 1, fps))
                       for first, last in runs_above(values, threshold)]


def spot_relative_by_duration(curve: Sequence[float], p: float, fps: float) -> tuple[float | None, list[Spotted]]:
    """:func:`spot_by_duration` at the curve's own :func:`relative_threshold` ``p`` (none for a flat curve)."""
    return spot_by_duration(curve, relative_threshold(curve, p), fps)


def moving_mean(curve: Sequence[float], frames: int) -> np.ndarray:
    """The centred mean of the finite values among each frame's ``frames`` neighbours (itself included; an even
    ``frames`` reaches one further back); NaN where none is finite. ``frames`` <= 1 returns the curve."""
    values = np.asarray(curve, dtype=np.float64)
    if frames <= 1 or values.size == 0:
        return values.copy()
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    index = np.arange(values.size)
    lo, hi = np.clip(index - frames // 2, 0, values.size), np.clip(index - frames // 2 + frames, 0, values.size)
    n = counts[hi] - counts[lo]
    return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def _spotted(values: np.ndarray, first: int, last: int, kind: str) -> Spotted:
    peak = first + int(np.argmax(values[first:last + 1]))
    return Spotted(first, last, peak, float(values[peak]), kind)


def interval_records(spotted: Sequence[Spotted], frame_numbers: Sequence[int], dataset: str,
                     video: str) -> list[dict]:
    """Spotted intervals as rows of an interval table (``dataset, video, onset, apex, offset, kind, score``),
    positions turned into the video's frame numbers, sorted by onset."""
    numbers = np.asarray(frame_numbers, dtype=np.int64)
    rows = [{"dataset": dataset, "video": video, "onset": int(numbers[s.first]), "apex": int(numbers[s.peak]),
             "offset": int(numbers[s.last]), "kind": s.kind, "score": s.score} for s in spotted]
    return sorted(rows, key=lambda r: (r["onset"], r["offset"], r["kind"]))
