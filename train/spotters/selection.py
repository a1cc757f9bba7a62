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

from ..spotting_eval import ALL, SpottingCounts, spotting_table
from .base import Pass
from .intervals import interval_records

if TYPE_CHECKING:
    from .videos import VideoTable

__all__ = ["Choice", "choose_settings", "pass_rows", "score_of"]


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


def score_of(rows: Sequence[dict], truth: pd.DataFrame, videos: VideoTable, ids: Sequence[str],
             kind: str) -> SpottingCounts:
    """The pooled MEGC counts of ``kind`` (micro, macro or overall) of predicted rows over the videos ``ids``."""
    listed = [(str(videos.value(v, "dataset")), v) for v in ids]
    keys = set(listed)
    real = truth[[(d, v) in keys for d, v in zip(truth["dataset"].astype(str), truth["video"].astype(str))]]
    table = spotting_table(pd.DataFrame.from_records(list(rows)) if rows else pd.DataFrame(), real, videos=listed)
    return next(r.counts for r in table if r.dataset == ALL and r.kind == kind)


def choose_settings(passes: Sequence[Pass], curves: Mapping[str, Mapping[str, np.ndarray]], videos: VideoTable,
                    truth: pd.DataFrame) -> dict[str, Choice]:
    """Each pass's setting with the highest F1 of its kind over the videos of ``curves``.

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
    out = {}
    for spot_pass in passes:
        grid, best = [], None
        for setting in spot_pass.settings:
            rows = [row for v in ids for row in pass_rows(spot_pass, curves[v][spot_pass.curve], setting, videos, v)[1]]
            counts = score_of(rows, truth, videos, ids, spot_pass.chosen_by)
            grid.append((float(setting), counts.f1))
            if best is None or counts.f1 > best[1].f1 + 1e-12:
                best = (float(setting), counts)
        out[spot_pass.name] = Choice(best[0], best[1], tuple(grid), tuple(ids))
    return out
