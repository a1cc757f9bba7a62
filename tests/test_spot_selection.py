"""The choice of each pass's setting on held-out people counts exactly what the MEGC table counts.

:func:`~mepipe.train.spotters.selection.choose_settings` splits the truth
once per call; here, on random curves and truths over videos of two
datasets, its choices equal those made from a full
:func:`~mepipe.train.spotting_eval.spotting_table` per setting.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from video_stores import write_video_store

from mepipe.train.spotters.base import Pass
from mepipe.train.spotters.intervals import spot_by_duration
from mepipe.train.spotters.megc2020 import spot_pass
from mepipe.train.spotters.selection import Choice, choose_settings, pass_rows
from mepipe.train.spotters.videos import VideoTable
from mepipe.train.spotting_eval import ALL, spotting_table

CURVE = "c"
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    return VideoTable.open([str(write_video_store(root / "a.zarr", n_subjects=2, dataset="demo-lv")),
                            str(write_video_store(root / "b.zarr", n_subjects=2, seed=1, dataset="other-lv"))])


def _curve(rng: np.random.Generator, n: int) -> np.ndarray:
    """A smooth random curve in [0, 1] with runs of many lengths, NaN at the first frame and over a gap."""
    width = int(rng.integers(8, 60))
    curve = np.convolve(rng.random(n + width), np.ones(width) / width, mode="valid")[:n]
    curve = (curve - curve.min()) / (curve.max() - curve.min())
    curve[0] = np.nan
    gap = int(rng.integers(1, n - 20))
    curve[gap:gap + int(rng.integers(1, 15))] = np.nan
    return curve


def _truth(rng: np.random.Generator, dataset: str, video: str, curve: np.ndarray, numbers: np.ndarray) -> list[dict]:
    """Intervals near the curve's runs above a random threshold (so some are found), random ones, and a touching
    and an overlapping pair, each micro or macro at random."""
    def row(first: int, last: int) -> dict:
        first, last = sorted((int(np.clip(first, 0, len(numbers) - 1)), int(np.clip(last, 0, len(numbers) - 1))))
        return {"dataset": dataset, "video": video, "name": f"i{len(rows)}", "onset": int(numbers[first]),
                "apex": None, "offset": int(numbers[last]), "kind": str(rng.choice(["micro", "macro"]))}

    rows: list[dict] = []
    _, near = spot_by_duration(curve, float(rng.uniform(0.3, 0.7)), 200.0)
    for s in near:
        if rng.random() < 0.7:
            rows.append(row(s.first + int(rng.integers(-8, 9)), s.last + int(rng.integers(-8, 9))))
    for _ in range(int(rng.integers(1, 4))):
        first = int(rng.integers(0, len(numbers) - 150))
        rows.append(row(first, first + int(rng.integers(0, 140))))
    a, b = int(rng.integers(0, len(numbers) - 200)), int(rng.integers(20, 80))
    rows += [row(a, a + b), row(a + b + 1, a + 2 * b)]                  # touching
    rows += [row(a + 100, a + 160), row(a + 130, a + 190)]              # overlapping
    return rows


def _old_choice(spot_pass: Pass, curves: dict, videos: VideoTable, truth: pd.DataFrame) -> Choice:
    """The choice made from the whole MEGC table of every setting's intervals, as the scorer computes it."""
    ids = list(curves)
    listed = [(str(videos.value(v, "dataset")), v) for v in ids]
    real = truth[[(d, v) in set(listed) for d, v in zip(truth["dataset"], truth["video"])]]
    grid, best = [], None
    for setting in spot_pass.settings:
        rows = [r for v in ids for r in pass_rows(spot_pass, curves[v][spot_pass.curve], setting, videos, v)[1]]
        table = spotting_table(pd.DataFrame(rows), real, videos=listed)
        counts = next(r.counts for r in table if r.dataset == ALL and r.kind == spot_pass.chosen_by)
        grid.append((float(setting), counts.f1))
        if best is None or counts.f1 > best[1].f1 + 1e-12:
            best = (float(setting), counts)
    return Choice(best[0], best[1], tuple(grid), tuple(ids))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_choose_settings_counts_what_the_megc_table_of_each_setting_counts(videos, seed):
    rng = np.random.default_rng(seed)
    curves, rows = {}, []
    for i, video in enumerate(videos.ids):
        numbers = videos.frame_numbers(video)
        curves[video] = {CURVE: _curve(rng, len(numbers))}
        if i != 1:                                                       # the second video has no truth
            rows += _truth(rng, str(videos.value(video, "dataset")), video, curves[video][CURVE], numbers)
    rows.append({"dataset": "demo-lv", "video": "elsewhere", "name": "x", "onset": 1, "apex": None, "offset": 9,
                 "kind": "micro"})                                       # a video not chosen on: ignored
    truth = pd.DataFrame(rows)
    passes = [Pass("all", "overall", THRESHOLDS, spot_by_duration, curve=CURVE),
              Pass("micro by length", "micro", THRESHOLDS, spot_by_duration, curve=CURVE),
              Pass("macro by length", "macro", THRESHOLDS, spot_by_duration, curve=CURVE),
              Pass("micro peaks", "micro", (0.1, 0.3, 0.5, 0.7, 0.9),
                   lambda curve, p, fps: spot_pass(curve, p, "micro", fps), curve=CURVE)]
    chosen = choose_settings(passes, curves, videos, truth)
    assert chosen == {p.name: _old_choice(p, curves, videos, truth) for p in passes}
    found = [c.counts for c in chosen.values()]
    assert any(c.tp > 0 for c in found) and any(c.fp > 0 for c in found) and any(c.fn > 0 for c in found)
