"""Stage: TV-L1 flow from the onset crop to the apex crop, the input of STRCN-G (Xia et al. 2019), 300×245 (W×H).

The onset and apex are Kim's state frames 0 and 2 (the sheet's where it has
them, else the apex stage's estimates); see :mod:`.flow` for the solver.

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, "Spatiotemporal recurrent
   convolutional networks for recognizing spontaneous micro-expressions",
   IEEE Trans. Multimedia 22(3), 2020. https://doi.org/10.1109/TMM.2019.2931351
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features

from . import flow_tasks
from .cost import Cost
from .flow import VERSION, FlowParams, flows_of_clips, onset_apex_crops
from .registry import register_stage


@dataclass(frozen=True)
class OnsetApexFlowParams(FlowParams):
    """Onset→apex flow for STRCN-G (Xia et al. 2019): 300×245 (W×H)."""

    size: tuple[int, int] = (300, 245)


def flow_onset_apex(crops: np.ndarray, onset: int, apex: int, params: FlowParams | None = None) -> np.ndarray:
    """The (2, H, W) float32 flow (u, v) from ``crops[onset]`` to ``crops[apex]`` at ``params.size``.

    ``crops`` are aligned (T, S, S) or (T, S, S, C) uint8 crops and ``onset``
    and ``apex`` positions in them (0-based, not frame numbers), ``0 <= onset
    < apex < T``. ``params`` defaults to :class:`OnsetApexFlowParams` on the
    OpenCV backend; the store casts the result to float16.
    """
    params = params or OnsetApexFlowParams(backend="opencv")
    grey = onset_apex_crops(crops, onset, apex, params)
    return flows_of_clips([grey], [[(0, 1)]], params)[0][0]


def _pairs(ctx, inputs, params):
    onset, peak = flow_tasks.onset_apex(inputs)
    grey = onset_apex_crops(inputs[features.CROPS.name], onset, peak, params)
    return grey, [(0, 1)], {"onset_index": onset, "apex_index": peak}


_FLOWS = flow_tasks.PairFlows(features.FLOW_ONSET_APEX, _pairs, one_field=True)

register_stage(
    name="flow_onset_apex", version=VERSION, params=OnsetApexFlowParams, kernel=_FLOWS, kernel_many=_FLOWS.many,
    group="flow", reads=("align", "apex"), inputs=(features.CROPS, features.STATE_INDEX),
    writes=(features.FLOW_ONSET_APEX,), placement=flow_tasks.GpuPlacement(256), device=flow_tasks.BACKEND,
    figure=flow_tasks.flow_figure(features.FLOW_ONSET_APEX), cost=Cost("pair", lambda ctx, params, read: 1))
