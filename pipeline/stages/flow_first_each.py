"""Stage: TV-L1 flow from the first crop to every later one, the input of SHCNN (Miao et al. 2019), 112×112.

Field t is the flow from crop 0 to crop t + 1; see :mod:`.flow` for the solver.

References
----------
.. [1] S. Miao, H. Xu, Z. Han, Y. Zhu, "Recognizing facial expressions using
   a shallow convolutional neural network", IEEE Access 7, 2019.
   https://doi.org/10.1109/ACCESS.2019.2921220
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features

from . import flow_tasks
from .cost import Cost, n_frames, sampled_pairs
from .flow import VERSION, FlowParams, clip_flows, first_each_pairs, prepare_crops
from .registry import register_stage


@dataclass(frozen=True)
class FirstEachFlowParams(FlowParams):
    """First→each-frame flow for SHCNN (Miao et al. 2019): 112×112, computed on the crops.

    Miao §III-C: the TV-L1 flow between the first frame and every later one
    "is firstly resized into 112×112 and then transformed into an HSI image",
    so the flow is computed on the face frames and the field resized
    (``compute_at="crop"``); ``compute_at="size"`` computes it on crops
    resized to 112 px (mepipe before issue 14), about 5 times cheaper for
    256-pixel crops. The paper says the intensity of the colour coding
    represents the magnitude but not how the magnitude is scaled; the
    reading-time coding scales each field by its own largest magnitude unless
    given a fixed one (a reading of the paper, not its statement).
    """

    size: tuple[int, int] = (112, 112)
    compute_at: str = "crop"


def flow_first_each(crops: np.ndarray, params: FlowParams | None = None) -> np.ndarray:
    """The (T - 1, 2, H, W) float32 flows from the first of T >= 2 aligned uint8 crops to each later one.

    ``params`` defaults to :class:`FirstEachFlowParams` on the OpenCV backend.
    """
    return clip_flows(crops, params or FirstEachFlowParams(backend="opencv"), first_each_pairs)


def _pairs(ctx, inputs, params):
    grey = prepare_crops(inputs[features.CROPS.name], params, min_frames=2)
    return grey, first_each_pairs(len(grey)), {}


_FLOWS = flow_tasks.PairFlows(features.FLOW_FIRST_EACH, _pairs)

register_stage(
    name="flow_first_each", version=VERSION, params=FirstEachFlowParams, kernel=_FLOWS, kernel_many=_FLOWS.many,
    group="flow", reads=("align",), inputs=(features.CROPS,), writes=(features.FLOW_FIRST_EACH,),
    placement=flow_tasks.GpuPlacement(32), device=flow_tasks.BACKEND,
    figure=flow_tasks.flow_figure(features.FLOW_FIRST_EACH),
    cost=Cost("pair", lambda ctx, params, read: n_frames(ctx) - 1,
              sample=sampled_pairs(lambda k, t: (0, k + 1), features.CROPS.name)))
