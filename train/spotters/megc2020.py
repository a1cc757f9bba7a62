"""Spotter ``baseline``: the MEGC 2020 spotting baseline (He et al. 2020) on the store's facial-region motion curves.

Training-free. The baseline (``MDMD_codes/cmd.m``, run once per kind) gives
each frame i a feature from frames i - k, i and i + k, contrasts it with its
neighbours, thresholds it relative to the video, and spots intervals. Here,
from the store's region curves ``M_r(t)`` (``roi_magnitude``: mean TV-L1
flow magnitude from frame t to t + k_f in facial region r, the nose's motion
subtracted; k_f is the store's ``roi_motion`` k, by default 0.185 s,
SOFTNet's half micro-expression), per video:

1. **Feature** ``F(i)`` (:func:`pooled_feature`): MDMD's
   ``rho(i-k -> i) - rho(i-k -> i+k)`` is large when the face at frame i has
   moved away from frame i - k and is back by i + k. From k-span flows only,
   that is the smaller of the motion into frame i and out of it,
   ``min(M_r(i - k_f), M_r(i))``, per region; regions are pooled as the
   baseline pools its 6x6 blocks, the mean of the top third
   (``Rset = sort(Rset, 'descend'); mean(Rset(1:round(n/3)))``: 2 of 7).
2. **Feature difference** (``cmd.m``):
   ``C(i) = F(i) - (F(i - m) + F(i + m)) / 2``, ``m = k_f - 1`` (the
   baseline's ``m = k - 1`` of its flow span k) (:func:`feature_difference`).
3. **Threshold** per video ``T = C_mean + p (C_max - C_mean)``; the
   published figures use p = 0.01 (``gen_MEGC2020_log_file.py``: folder
   ``p1``; ``cmd.m``: ``0.01 * p``).
4. **Intervals, one pass per kind** (:func:`spot_pass`): each peak of C
   above T (peaks at least the pass's k apart) is the middle of an interval
   of the pass's k frames, k = 0.4 s for micro and 1.3 s for macro
   (``cmd.m``: 12 and 39 frames at 30 fps, 80 and 260 at 200 fps, halved
   while the video is shorter than 6 k, ``auto_k``) (:func:`pass_k`).

The baseline's code turns each run of frames above T into an interval and
keeps those of a kind's lengths (``MDMDmat_to_txt.m``,
``evaluation_all_p.py``: 47..105 frames micro at 200 fps); on the store's
curves such runs last a few frames, so intervals are grown from peaks
instead (the issue's "intervals from peaks", SOFTNet's way). This and the
feature are declared in :data:`BASELINE`'s deviations. Under LOSO ``p``
may be chosen on each fold's training people (``p=chosen``): the spotter
trains nothing, so every training-side person is held out of training.

References
----------
.. [1] He, Wang, Li, Yap, IEEE FG 2020, https://doi.org/10.1109/FG47880.2020.00036 (full entry:
   :mod:`mepipe.train.spotting_eval`); its code,
   https://github.com/HeyingGithub/Baseline-project-for-MEGC2020_spotting: ``MDMD_codes/MDMD.m`` (the
   feature), ``MDMD_codes/cmd.m`` (k, feature difference, threshold), ``MDMD_results/MDMDmat_to_txt.m``
   (runs to intervals), ``MDMD_results/evaluation_all_p.py`` (lengths per kind),
   ``MDMD_results/gen_MEGC2020_log_file.py`` (p of the published figures).
.. [2] G.-B. Liong, J. See, L.-K. Wong, "Shallow optical flow three-stream CNN for macro- and
   micro-expression spotting from long videos", IEEE ICIP 2021 (SOFTNet); code
   https://github.com/genbing99/SoftNet-SpotME, ``SOFTNet_Spotting.ipynb``: peaks by
   ``find_peaks(score, height=threshold, distance=k)``, each grown to ``[peak - k, peak + k]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.signal import find_peaks

from mepipe.featurestore.features import ROI_MAGNITUDE

from ..recipe import Deviation
from ..spotting_eval import KINDS
from .base import FitContext, Fitted, Pass, Spotter, register_spotter
from .intervals import Spotted, relative_threshold
from .selection import choose_settings

if TYPE_CHECKING:
    from .videos import VideoTable

__all__ = ["BASELINE", "BaselineParams", "K_SECONDS", "PAPER_P", "feature_difference", "motion_curve", "pass_k",
           "pooled_feature", "spot_pass", "top_share_mean"]

MEGC2020_DOI = "10.1109/FG47880.2020.00036"
"""He, Wang, Li, Yap, FG 2020: the MEGC 2020 spotting baseline."""

ROI_FEATURE = ROI_MAGNITUDE.name
"""The region curves the baseline reads."""


def flow_span(videos: VideoTable, video: str) -> int:
    """k_flow of a video: frames between the two frames of its region curves' flow (the stage's resolved ``k``)."""
    return int(videos.attrs_of(ROI_FEATURE, video)["events"]["k"])

PAPER_P = 0.01
"""p of the published MEGC 2020 baseline figures (``gen_MEGC2020_log_file.py``, ``p = 1``, times ``cmd.m``'s 0.01)."""

K_SECONDS = {"micro": 0.4, "macro": 1.3}
"""The baseline's interval k per pass, in seconds (``cmd.m``: 12 and 39 frames at 30 fps, 80 and 260 at 200 fps)."""

TOP_SHARE = 1 / 3
"""Share of the regions (the baseline: of its blocks) whose mean is a frame's feature."""


def _frames(seconds: float, fps: float) -> int:
    """Seconds to whole frames, rounding halves up (MATLAB's ``round`` for positive values)."""
    return int(math.floor(seconds * fps + 0.5 + 1e-9))


def pass_k(kind: str, fps: float, n_frames: int) -> int:
    """The pass's k in frames: :data:`K_SECONDS` at ``fps``, halved (rounded) while ``n_frames < 6 k``
    (``cmd.m``'s ``auto_k``: ``l = n - 2k``, halve while ``l - 4k < 0``), at least 1."""
    k = max(1, _frames(K_SECONDS[kind], fps))
    while k > 1 and n_frames - 6 * k < 0:
        k = max(1, int(math.floor(k / 2 + 0.5)))
    return k


def top_share_mean(values: np.ndarray, share: float = TOP_SHARE) -> np.ndarray:
    """Per row, the mean of its ``round(share * n)`` largest finite values (at least one); NaN for a row without any.

    Parameters
    ----------
    values : ndarray, shape (T, R)
    share : float
        In (0, 1].

    Returns
    -------
    ndarray, float64, shape (T,)
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (frame, region), got shape {values.shape}")
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    keep = np.maximum(1, np.floor(share * count + 0.5)).astype(np.int64)
    ordered = -np.sort(np.where(finite, -values, np.inf), axis=1)  # descending, NaN last (as -inf)
    ranks = np.arange(values.shape[1])[None, :]
    chosen = np.where(ranks < keep[:, None], ordered, 0.0)
    out = chosen.sum(axis=1) / keep
    return np.where(count > 0, out, np.nan)


def pooled_feature(regions: np.ndarray, flow_k: int, share: float = TOP_SHARE) -> np.ndarray:
    """``F(i)``: per region the smaller of the motion into frame i (flow i - k -> i) and out of it (i -> i + k),
    pooled by :func:`top_share_mean`; NaN for the first ``flow_k`` frames and where a flow is missing.

    Parameters
    ----------
    regions : ndarray, shape (T, R)
        ``M_r(t)``: the motion of the flow t -> t + flow_k in each region.
    flow_k : int
    share : float
    """
    if flow_k < 1:
        raise ValueError(f"flow_k must be >= 1, got {flow_k}")
    m = np.asarray(regions, dtype=np.float64)
    both = np.full_like(m, np.nan)
    if flow_k < len(m):
        both[flow_k:] = np.minimum(m[:-flow_k], m[flow_k:])  # NaN stays NaN
    return top_share_mean(both, share)


def feature_difference(feature: np.ndarray, m: int) -> np.ndarray:
    """``C(i) = F(i) - (F(i - m) + F(i + m)) / 2``; NaN where a term is NaN or outside the video.

    Parameters
    ----------
    feature : ndarray, shape (T,)
    m : int
        >= 1 (the baseline's ``k - 1``, at least 1).
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    f = np.asarray(feature, dtype=np.float64)
    out = np.full_like(f, np.nan)
    if f.size > 2 * m:
        out[m:f.size - m] = f[m:f.size - m] - (f[:f.size - 2 * m] + f[2 * m:]) / 2
    return out


def motion_curve(regions: np.ndarray, flow_k: int, share: float = TOP_SHARE) -> np.ndarray:
    """``C`` of one video from its region curves (frame, region): the feature and its difference, ``m = k_f - 1``."""
    return feature_difference(pooled_feature(regions, flow_k, share), max(1, flow_k - 1))


def spot_pass(curve: Sequence[float], p: float, kind: str, fps: float) -> tuple[float | None, list[Spotted]]:
    """One pass over one video's curve: its threshold, and an interval of the pass's k frames around each peak
    above it (peaks at least k apart; intervals clipped to the video)."""
    values = np.asarray(curve, dtype=np.float64)
    threshold = relative_threshold(values, p)
    if threshold is None:
        return None, []
    k = pass_k(kind, fps, len(values))
    above = np.where(np.isfinite(values) & (values > threshold), values, -np.inf)
    peaks, _ = find_peaks(above, height=threshold, distance=max(1, k))
    half = k // 2
    return threshold, [Spotted(max(0, int(q) - half), min(len(values) - 1, int(q) + half), int(q),
                               float(values[q]), kind) for q in peaks]


# --- the spotter ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineParams:
    """Parameters of the ``baseline`` spotter.

    Attributes
    ----------
    p : float or None
        ``p`` of both passes' threshold; None (``chosen``) chooses each
        pass's ``p`` among :attr:`p_grid` on the fold's training people (by
        that pass's kind's F1).
    p_grid : tuple of float
        The ``p`` chosen among (``cmd.m`` tries 0.01 .. 0.99).
    share : float
        Share of the regions pooled into a frame's feature.
    val_people : int
        Always 0: the spotter trains nothing, so it chooses on every person of the fold's training side.
    """

    p: float | None = PAPER_P
    p_grid: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(1, 100))
    share: float = TOP_SHARE
    val_people: int = 0

    def __post_init__(self) -> None:
        if self.p is not None and not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1] or chosen, got {self.p!r}")
        if not self.p_grid or not all(0 <= p <= 1 for p in self.p_grid) or not 0 < self.share <= 1:
            raise ValueError(f"p_grid values must lie in [0, 1] and share in (0, 1], got {self!r}")
        if self.val_people != 0:
            raise ValueError("the baseline trains nothing and chooses on the whole training side: val_people is 0")


CURVE = "motion"
"""Name of the baseline's one curve ``C``, which both passes read."""


def _kind_pass(kind: str, settings: tuple[float, ...]) -> Pass:
    def spot(curve: np.ndarray, p: float, fps: float) -> tuple[float | None, list[Spotted]]:
        return spot_pass(curve, p, kind, fps)

    return Pass(kind, kind, settings, spot, curve=CURVE)


class BaselineFitted(Fitted):
    """The baseline with each pass's ``p``: curves from the store's region curves, nothing trained."""

    def __init__(self, params: BaselineParams, settings: dict[str, float], record: dict[str, Any] | None = None):
        self.params = params
        grid = (params.p,) if params.p is not None else params.p_grid
        self.passes = tuple(_kind_pass(kind, grid) for kind in KINDS)
        self.settings = dict(settings)
        self.record = record or {}

    def curves(self, videos: VideoTable, video: str) -> dict[str, np.ndarray]:
        regions = videos.read(ROI_FEATURE, video)
        return {CURVE: motion_curve(regions, flow_span(videos, video), self.params.share)}

    def describe(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), **self.record}


def fit(ctx: FitContext) -> BaselineFitted:
    """Nothing to train: the paper's ``p``, or each pass's ``p`` chosen on every video of the training side."""
    params: BaselineParams = ctx.params
    fitted = BaselineFitted(params, {kind: params.p for kind in KINDS} if params.p is not None else {})
    if params.p is None:
        ids = tuple(ctx.fit) + tuple(ctx.validation)
        choices = choose_settings(fitted.passes, {v: fitted.curves(ctx.videos, v) for v in ids}, ctx.videos,
                                  ctx.truth)
        fitted.settings = {kind: choice.setting for kind, choice in choices.items()}
        fitted.record = {"choice": {kind: choice.describe() for kind, choice in choices.items()}}
    return fitted


def restore(params: BaselineParams, described: dict[str, Any], folder: Path, device: torch.device) -> BaselineFitted:
    """The fitted baseline again from its record (its settings; it saved no file)."""
    return BaselineFitted(params, described["settings"], {k: v for k, v in described.items() if k != "settings"})


BASELINE = register_spotter(Spotter(
    name="baseline",
    title="MEGC 2020 spotting baseline (He et al. 2020) on facial-region motion curves",
    doi=MEGC2020_DOI,
    reads=(ROI_FEATURE,),
    params=BaselineParams(),
    fit=fit,
    restore=restore,
    deviations=(
        Deviation("per-frame feature",
                  "MDMD: rho(i-k -> i) - rho(i-k -> i+k) of the main-direction RLOF flow magnitude on a 6x6 grid of "
                  "blocks, the top third of blocks pooled",
                  "min(M(i - k_f), M(i)) of the store's TV-L1 magnitude from frame t to t + k_f in 7 landmark "
                  "regions (nose motion subtracted), the top third of regions pooled",
                  "the store keeps region curves of one flow span, the MEGC baselines' regions; a flow over 2k "
                  "(MDMD's second term) is not stored, and the smaller of the motions into and out of frame i is "
                  "large under the same condition: moved away from frame i - k and back by i + k"),
        Deviation("flow span", "k = 0.4 s (micro) and 1.3 s (macro) for the flow and the feature difference",
                  "both passes read one curve: the store's k_f (roi_motion's k, 0.185 s by default) sets the flow "
                  "and m = k_f - 1; each pass's k sets its interval length and peak spacing",
                  "the store holds the region curves at one k"),
        Deviation("intervals", "each run of frames with C > T is an interval, kept if its length is a kind's "
                  "(47..105 frames micro, 106 or more macro at 200 fps)",
                  "each peak of C above T (peaks at least the pass's k apart) is the middle of an interval of the "
                  "pass's k frames (0.4 s micro, 1.3 s macro)",
                  "on the store's curves runs above T last a few frames, so the length filter keeps none "
                  "(measured on demo-lv: 0 intervals at every p); a peak grown to the kind's length is the "
                  "issue's 'intervals from peaks' and SOFTNet's rule"),
        Deviation("p under LOSO", "p = 0.01 for the published figures (the code tries 0.01..0.99 on the test set)",
                  "p = 0.01 by default; p=chosen picks each pass's p on the fold's training people only",
                  "never choose on test people"),
    ),
))
"""The ``baseline`` spotter."""
