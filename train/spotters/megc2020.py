"""Spotter ``baseline``: the MEGC 2020 spotting baseline (He et al. 2020) on the store's facial-region motion curves.

Training-free. For each video, and for each kind in its own pass (micro, then
macro, as the baseline runs ``cmd.m`` once per ``cls``):

1. **Per-frame feature** ``F(t)``: the region curves (``roi_magnitude``,
   (frame, region): mean TV-L1 flow magnitude from frame t to t + k_flow in
   each facial region, the nose's motion subtracted; k_flow is the store's
   ``roi_motion`` k, by default 0.185 s, SOFTNet's half micro-expression)
   pooled over regions as the baseline pools its 6x6
   blocks, the mean of the top third (``Rset = sort(Rset, 'descend');
   mean(Rset(1:round(n/3)))``: 2 of the 7 regions), and placed at the middle
   frame of the span it measures, t + k_flow // 2 (:func:`pooled_feature`).
2. **Feature difference** (``cmd.m``): ``C(i) = F(i) - (F(i - m) + F(i + m)) / 2``
   with ``m = k - 1``, k the pass's interval (SAMM: 80 micro, 260 macro
   frames at 200 fps; CAS(ME)²: 12 and 39 at 30 fps; both 0.4 s and 1.3 s),
   halved while the video is shorter than 6 k (``auto_k``)
   (:func:`feature_difference`).
3. **Threshold** per video ``T = C_mean + p (C_max - C_mean)``; each run of
   frames with ``C > T`` is one interval (``MDMDmat_to_txt.m``). The
   published figures use p = 0.01 (``gen_MEGC2020_log_file.py``: folder
   ``p1``; ``cmd.m``: ``0.01 * p``).
4. **Kind by length** (``evaluation_all_p.py``, ``delete_short`` and
   ``delete_long``): the micro pass keeps intervals of 47..105 frames (SAMM)
   or 7..16 (CAS(ME)²), the macro pass those of 106 / 17 frames and more:
   0.235..0.525 s and longer, which gives both corpora's numbers at their
   frame rates (:func:`length_bounds`).

No smoothing: the baseline has none beyond the feature difference. Its loop
over ``C`` also stops 2k frames of ``F`` short of the end (``zz`` runs to
``l - k - m``); here ``C`` covers every frame whose three terms exist.

Deviations (declared in :data:`DEVIATIONS`): the baseline's per-frame
feature is MDMD (main directional maximal difference of RLOF flow between
frames i - k, i and i + k on a 6x6 grid of the whole face); here it is the
store's region curves, flow from t to t + k_flow only, in the MEGC
baselines' landmark regions. Both passes read the same curves, flow over the
store's one k_flow. Under LOSO ``p`` may be chosen on each fold's training
people (``p=chosen``): the spotter trains nothing, so every training-side
person is held out of training; the default is the paper's 0.01.

References
----------
.. [1] Y. He, S.-J. Wang, J. Li, M. H. Yap, "Spotting macro- and
   micro-expression intervals in long video sequences", IEEE FG 2020,
   pp. 238-244. https://doi.org/10.1109/FG47880.2020.00036; code:
   https://github.com/HeyingGithub/Baseline-project-for-MEGC2020_spotting
   (``MDMD_codes/MDMD.m``, ``MDMD_codes/cmd.m``, ``MDMD_results/MDMDmat_to_txt.m``,
   ``MDMD_results/evaluation_all_p.py``, ``MDMD_results/gen_MEGC2020_log_file.py``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mepipe.featurestore.features import ROI_MAGNITUDE

from ..recipe import Deviation
from ..spotting_eval import KINDS
from .base import FitContext, Fitted, Pass, Spotter, register_spotter
from .intervals import Spotted, relative_threshold, spot_runs
from .selection import choose_settings

if TYPE_CHECKING:
    from .videos import VideoTable

__all__ = ["BASELINE", "BaselineParams", "K_SECONDS", "MICRO_SECONDS", "PAPER_P", "feature_difference",
           "length_bounds", "pass_curve", "pass_k", "pooled_feature", "spot_pass", "top_share_mean"]

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

MICRO_SECONDS = (0.235, 0.525)
"""Shortest and longest micro-expression interval the baseline keeps, in seconds (``evaluation_all_p.py``: 7..16
frames at 30 fps, 47..105 at 200 fps); macro intervals are longer than the longest micro one."""

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


def length_bounds(kind: str, fps: float) -> tuple[int, int | None]:
    """Shortest and longest interval (frames, inclusive; None = no limit) the pass of ``kind`` keeps."""
    shortest, longest = (_frames(s, fps) for s in MICRO_SECONDS)
    return (shortest, longest) if kind == "micro" else (longest + 1, None)


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
    """``F``: regions pooled by :func:`top_share_mean`, the value of the flow t -> t + flow_k placed at frame
    t + flow_k // 2 (NaN where no flow is centred)."""
    if flow_k < 1:
        raise ValueError(f"flow_k must be >= 1, got {flow_k}")
    pooled = top_share_mean(regions, share)
    shift = flow_k // 2
    out = np.full_like(pooled, np.nan)
    if shift < pooled.size:
        out[shift:] = pooled[:pooled.size - shift]
    return out


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


def pass_curve(regions: np.ndarray, kind: str, fps: float, flow_k: int, share: float = TOP_SHARE) -> np.ndarray:
    """The pass's curve ``C`` of one video from its region curves (frame, region)."""
    k = pass_k(kind, fps, len(regions))
    return feature_difference(pooled_feature(regions, flow_k, share), max(1, k - 1))


def spot_pass(curve: Sequence[float], p: float, kind: str, fps: float) -> tuple[float | None, list[Spotted]]:
    """The pass's threshold on one video's curve and the intervals it keeps (runs above it, within the pass's
    length bounds)."""
    threshold = relative_threshold(curve, p)
    shortest, longest = length_bounds(kind, fps)
    kept = [s for s in spot_runs(curve, threshold, kind)
            if s.n_frames >= shortest and (longest is None or s.n_frames <= longest)]
    return threshold, kept


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


def _kind_pass(kind: str, settings: tuple[float, ...]) -> Pass:
    def spot(curve: np.ndarray, p: float, fps: float) -> tuple[float | None, list[Spotted]]:
        return spot_pass(curve, p, kind, fps)

    return Pass(kind, kind, settings, spot)


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
        fps = float(videos.value(video, "fps"))
        flow_k = flow_span(videos, video)
        return {kind: pass_curve(regions, kind, fps, flow_k, self.params.share) for kind in KINDS}

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
                  "MDMD: main-direction RLOF flow magnitude between frames i-k, i and i+k on a 6x6 grid of blocks, "
                  "the top third of blocks pooled",
                  "the store's TV-L1 magnitude from frame t to t+k_flow in 7 landmark regions (nose motion "
                  "subtracted), the top third of regions pooled, placed at the span's middle frame",
                  "the store's spotting features are the MEGC baselines' region curves; MDMD's blocks and RLOF are "
                  "not stored"),
        Deviation("one flow span for both passes", "k = 0.4 s for micro, 1.3 s for macro, for the flow and the "
                  "feature difference",
                  "both passes read the curves of the store's one k_flow (roi_motion's k, 0.185 s by default); "
                  "each pass's k sets its feature difference (m = k - 1) and its interval lengths",
                  "the store holds the region curves at one k"),
        Deviation("p under LOSO", "p = 0.01 for the published figures (the code tries 0.01..0.99 on the test set)",
                  "p = 0.01 by default; p=chosen picks each pass's p on the fold's training people only",
                  "never choose on test people"),
    ),
))
"""The ``baseline`` spotter."""
