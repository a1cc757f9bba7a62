"""Stage: TV-L1 flow between consecutive crops, the input of Nag et al. 2019's temporal network, 64×64.

Field t is the flow from crop t to crop t + 1; see :mod:`.flow` for the solver. On a long video each window
computes the fields of its frames, reading the first frame of the next window too.

References
----------
.. [1] S. Nag, A. K. Bhunia, A. Konwer, P. P. Roy, "Facial micro-expression
   spotting and recognition using time contrasted feature with visual
   memory", ICASSP 2019, pp. 2022-2026. https://doi.org/10.48550/arXiv.1902.03514
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features

from . import flow_tasks
from .cost import Cost, sampled_pairs
from .flow import VERSION, FlowParams, clip_flows, consecutive_pairs, prepare_crops
from .registry import register_stage
from .windows import Windowed


@dataclass(frozen=True)
class ConsecutiveFlowParams(FlowParams):
    """Consecutive-frame flow for Nag et al. 2019's temporal network: 64×64."""

    size: tuple[int, int] = (64, 64)


def flow_consecutive(crops: np.ndarray, params: FlowParams | None = None) -> np.ndarray:
    """The (T - 1, 2, H, W) float32 flows between neighbouring crops of T >= 2 aligned uint8 crops.

    ``params`` defaults to :class:`ConsecutiveFlowParams` on the OpenCV backend.
    """
    return clip_flows(crops, params or ConsecutiveFlowParams(backend="opencv"), consecutive_pairs)


def _pairs(ctx, inputs, params):
    """Pairs of frames that are neighbours in time; None (a NaN field) for pairs that straddle a gap.

    A pair across a gap in the frame numbers is frames two or more intervals
    apart; computing its flow would pass it off as one interval's motion, so
    it stays NaN (a reader that ignores it fails loudly instead of learning
    from it).
    """
    grey = prepare_crops(inputs[features.CROPS.name], params, min_frames=2)
    gaps = [int(b) for b in np.flatnonzero(np.diff(np.asarray(ctx.frame_numbers)) != 1)]
    pairs = [None if i in gaps else p for i, p in enumerate(consecutive_pairs(len(grey)))]
    return grey, pairs, ({"gap_pairs": gaps} if gaps else {})


def _solved_pairs(ctx, params, read) -> int:
    """Pairs solved: neighbours in time (none across a gap in the frame numbers)."""
    return int((np.diff(np.asarray(ctx.frame_numbers)) == 1).sum())


_FLOWS = flow_tasks.PairFlows(features.FLOW_CONSECUTIVE, _pairs)

register_stage(
    name="flow_consecutive", version=VERSION, params=ConsecutiveFlowParams, kernel=_FLOWS, kernel_many=_FLOWS.many,
    group="flow", reads=("align",), inputs=(features.CROPS,), writes=(features.FLOW_CONSECUTIVE,),
    figure=flow_tasks.flow_figure(features.FLOW_CONSECUTIVE), device=flow_tasks.BACKEND,
    placement=flow_tasks.GpuPlacement(32), window=Windowed(after=1, shorter_by=1),
    cost=Cost("pair", _solved_pairs, sample=sampled_pairs(lambda k, t: (k, k + 1), features.CROPS.name)))
