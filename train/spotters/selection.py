"""Curves and settings to interval tables, and the choice of each pass's setting on held-out people.

:func:`spotted_rows` applies a fitted spotter's passes to one video's curves;
:func:`choose_settings` tries every setting of each pass on the videos it is
given (people held out of training) and keeps, per pass, the one with the
highest MEGC F1 of the pass's kind (the first of equals, in the pass's order
of settings), recording every setting's F1 so the report can show the curve.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..spotting_eval import KINDS, OVERALL, SpottingCounts, interval_table, spotting_counts
from .base import Pass
from .intervals import interval_records

if TYPE_CHECKING:
    from .videos import VideoTable

__all__ = ["Choice", "choose_settings", "pass_rows"]


@dataclass(frozen=True)
class Choice:
    """The setting chosen for one pass, and how every setting scored.

    Attributes
    ----------
    setting : float
    counts : SpottingCounts
        The chosen setting's counts of the pass's kind on the videos.
    grid : tuple of (float, float)
        (setting, F1) of every setting tried, in order.
    videos : tuple of str
        The videos it was chosen on.
    """

    setting: float
    counts: SpottingCounts
    grid: tuple[tuple[float, float], ...]
    videos: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {"setting": self.setting, **self.counts.as_record(), "grid": [list(g) for g in self.grid],
                "videos": list(self.videos)}


def pass_rows(spot_pass: Pass, curve: np.ndarray, setting: float, videos: VideoTable,
              video: str) -> tuple[float | None, list[dict]]:
    """One pass of one video: its threshold and its intervals as interval-table rows (frame numbers)."""
    threshold, spotted = spot_pass.spot(curve, setting, float(videos.value(video, "fps")))
    return threshold, interval_records(spotted, videos.frame_numbers(video), str(videos.value(video, "dataset")),
                                       video)


def choose_settings(passes: Sequence[Pass], curves: Mapping[str, Mapping[str, np.ndarray]], videos: VideoTable,
                    truth: pd.DataFrame) -> dict[str, Choice]:
    """Each pass's setting with the highest F1 of its kind over the videos of ``curves``.

    The counts are :func:`~mepipe.train.spotting_eval.spotting_table`'s
    (pooled over the videos and their datasets), with the truth checked and
    split by video and kind once per call rather than once per setting.

    Parameters
    ----------
    passes : sequence of Pass
    curves : mapping of video id to (curve name -> curve)
        The curves of the videos to choose on (never a test video).
    videos : VideoTable
        Their fps, dataset and frame numbers.
    truth : pandas.DataFrame
        Their annotated intervals (other videos' rows are ignored).
    """
    ids = list(curves)
    if not ids:
        raise ValueError("no video to choose a setting on")
    held_out = _HeldOut.of(videos, ids, truth)
    out = {}
    for spot_pass in passes:
        grid, best = [], None
        for setting in spot_pass.settings:
            counts = held_out.counts(spot_pass, setting, [curves[v][spot_pass.curve] for v in ids])
            grid.append((float(setting), counts.f1))
            if best is None or counts.f1 > best[1].f1 + 1e-12:
                best = (float(setting), counts)
        out[spot_pass.name] = Choice(best[0], best[1], tuple(grid), tuple(ids))
    return out


@dataclass(frozen=True)
class _HeldOut:
    """The videos settings are chosen on, read once: fps, frame numbers and true (onset, offset) rows per kind.

    Attributes
    ----------
    fps : tuple of float
    numbers : tuple of ndarray
        Each video's frame numbers (spotted positions become them).
    truth : dict of kind to tuple of ndarray (n, 2)
        Each video's true intervals of the kind, in the videos' order.
    """

    fps: tuple[float, ...]
    numbers: tuple[np.ndarray, ...]
    truth: dict[str, tuple[np.ndarray, ...]]

    @classmethod
    def of(cls, videos: VideoTable, ids: Sequence[str], truth: pd.DataFrame) -> _HeldOut:
        listed = [(str(videos.value(v, "dataset")), v) for v in ids]
        keys = set(listed)
        real = interval_table(truth[[(d, v) in keys for d, v in zip(truth["dataset"].astype(str),
                                                                      truth["video"].astype(str))]], "truth")
        groups = {key: group[["onset", "offset"]].to_numpy(dtype=np.int64)
                  for key, group in real.groupby(["dataset", "video", "kind"], sort=False)}
        empty = np.zeros((0, 2), dtype=np.int64)
        return cls(tuple(float(videos.value(v, "fps")) for v in ids),
                   tuple(np.asarray(videos.frame_numbers(v), dtype=np.int64) for v in ids),
                   {kind: tuple(groups.get((d, v, kind), empty) for d, v in listed) for kind in KINDS})

    def counts(self, spot_pass: Pass, setting: float, curves: Sequence[np.ndarray]) -> SpottingCounts:
        """The pooled MEGC counts of the pass's ``chosen_by`` kind (micro, macro or overall) at ``setting``."""
        spotted: dict[str, list[list[tuple[int, int]]]] = {kind: [] for kind in KINDS}
        for curve, fps, numbers in zip(curves, self.fps, self.numbers):
            found = spot_pass.spot(curve, setting, fps)[1]
            for kind in KINDS:
                spotted[kind].append([(numbers[s.first], numbers[s.last]) for s in found if s.kind == kind])
        kinds = KINDS if spot_pass.chosen_by == OVERALL else (spot_pass.chosen_by,)
        return sum((spotting_counts(spotted[k], self.truth[k]) for k in kinds), SpottingCounts())
