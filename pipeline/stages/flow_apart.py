"""Stage: TV-L1 flow from each frame of a long video to the frame k later, the whole field, 64×64.

Field t is the flow from the aligned crop of frame t to that of frame t + k
(k as the spotting baselines set it, :class:`FlowApartParams`), on crops
resized to ``size``: the field :mod:`.roi_motion` sums up per region, kept
whole. It is the nag2019 spotter's motion input on long videos (``--param
flow=apart``): at 200 fps a micro-expression moves the face between
consecutive frames by less than TV-L1's noise, while over k frames it moves
it visibly (``benchmarks/nag_demo_lv_heldout.py``). Frames with no frame
t + k, and pairs whose frame numbers are not k apart (a gap), are NaN.

References
----------
.. [1] G.-B. Liong, J. See, L.-K. Wong, "Shallow optical flow three-stream CNN
   for macro- and micro-expression spotting from long videos", ICIP 2021
   (SOFTNet: flow from t to t + k, k half the mean expression length).
   https://doi.org/10.48550/arXiv.2106.06489
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features

from . import flow_tasks
from .flow import FlowParams, flows_of_clips, prepare_crops
from .registry import register_stage
from .windows import Windowed

VERSION = "1"


@dataclass(frozen=True)
class FlowApartParams(FlowParams):
    """Flow from frame t to frame t + k.

    Attributes
    ----------
    size : tuple of int
        (W, H) of the field (Nag's inputs: 64x64).
    k : int
        Frames from t to t + k; 0 = ``round(k_seconds * fps)`` of each video
        (:func:`~mepipe.featurestore.features.frames_apart`).
    k_seconds : float
        k in seconds when ``k`` is 0; 0.185 s is SOFTNet's micro-expression k
        on both SAMM Long Videos (37 frames) and CAS(ME)² (6 frames), see
        :mod:`.roi_motion`.
    """

    size: tuple[int, int] = (64, 64)
    k: int = 0
    k_seconds: float = 0.185

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.k, int) and self.k >= 0):
            raise ValueError(f"{type(self).__name__}.k must be an int >= 0 (0: from k_seconds), got {self.k!r}")
        if not self.k_seconds > 0:
            raise ValueError(f"{type(self).__name__}.k_seconds must be > 0, got {self.k_seconds!r}")

    def frames_apart(self, fps: float) -> int:
        """k in frames at ``fps``."""
        return features.frames_apart(self.k, self.k_seconds, fps)


def apart_pairs(frame_numbers, rows: int, k: int) -> list[tuple[int, int] | None]:
    """(t, t + k) for the first ``rows`` positions of ``frame_numbers``; None where there is no position t + k or
    its frame number is not k after t's (a gap: the flow would span more than k frames)."""
    numbers = np.asarray(frame_numbers)
    return [(t, t + k) if t + k < len(numbers) and numbers[t + k] - numbers[t] == k else None for t in range(rows)]


def flow_apart(crops: np.ndarray, k: int, params: FlowApartParams | None = None,
               frame_numbers=None) -> np.ndarray:
    """The (T, 2, H, W) float32 flows from each of T aligned uint8 crops to the one k frames later; NaN where
    :func:`apart_pairs` has no pair. ``frame_numbers`` default to 0 .. T - 1; ``params`` to
    :class:`FlowApartParams` on the OpenCV backend."""
    params = params or FlowApartParams(backend="opencv")
    grey = prepare_crops(crops, params)
    pairs = apart_pairs(range(len(grey)) if frame_numbers is None else frame_numbers, len(grey), k)
    fields = flows_of_clips([grey], [[q for q in pairs if q is not None]], params)[0]
    return flow_tasks.with_gaps(fields, pairs, params.size)


def _pairs(ctx, inputs, params):
    grey = prepare_crops(inputs[features.CROPS.name], params)
    k = params.frames_apart(ctx.fps)
    return grey, apart_pairs(ctx.frame_numbers[:len(grey)], len(ctx.window), k), {"k": k}


_FLOWS = flow_tasks.PairFlows(features.FLOW_APART, _pairs)

register_stage(
    name="flow_apart", version=VERSION, params=FlowApartParams, kernel=None, group="spotting", reads=("align",),
    reads_truth=True, inputs=(features.CROPS,), writes=(features.FLOW_APART,),
    device=flow_tasks.BACKEND, placement=flow_tasks.GpuPlacement(32),
    window=Windowed(kernel=_FLOWS, after=lambda params, fps: params.frames_apart(fps)))
