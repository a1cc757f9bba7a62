"""What the flow stages share: the onset/apex pair, kernels that solve the pairs of several clips in one call,
the backend as the flow stages' device choice, and their GPU placement.

Each flow stage module declares its own pairs (:class:`PairFlows`) and, for
the batched ones, how many clips a GPU task takes (:class:`GpuPlacement`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.features import FeatureDef, State

from .. import figures
from ..errors import ClipError
from . import flow
from .registry import Device, Figure, Placement, StageOutput


def onset_apex(inputs: dict[str, np.ndarray]) -> tuple[int, int]:
    """Onset and apex positions for an onset->apex flow: Kim's onset and apex state frames.

    An apex at or before the onset (a sheet's erratum) falls back to the
    clip's first frame as the onset.
    """
    idx = inputs[features.STATE_INDEX.name]
    onset, peak = int(idx[State.ONSET]), int(idx[State.APEX])
    if peak <= onset:
        onset = 0
    if peak <= onset:
        raise ClipError(f"apex at the first frame (index {peak}); no onset->apex motion to measure")
    return onset, peak


@dataclass(frozen=True)
class PairFlows:
    """The kernels of a flow stage that solves chosen crop pairs: every pair of every clip in one solver call.

    ``pairs_of(ctx, inputs, params)`` gives a clip's prepared crops, its
    (from, to) pairs (None: no flow, a NaN field) and events. The events
    also record the backend, device and library that made the flow. Called
    as a stage's ``kernel`` it runs one clip; :meth:`many` is its
    ``kernel_many``.
    """

    feature: FeatureDef
    pairs_of: Callable[..., tuple[np.ndarray, list, dict[str, Any]]]
    one_field: bool = False

    def many(self, ctxs, inputs, params, read) -> list[StageOutput | Exception]:
        prepared: list = []
        for ctx, clip_inputs in zip(ctxs, inputs):
            try:
                prepared.append(self.pairs_of(ctx, clip_inputs, params))
            except Exception as e:  # this clip fails alone
                prepared.append(e)
        ready = [p for p in prepared if not isinstance(p, Exception)]
        fields = iter(flow.flows_of_clips([g for g, _, _ in ready],
                                          [[q for q in pairs if q is not None] for _, pairs, _ in ready], params))
        made_by = flow.backend_record(params.backend)
        outputs: list[StageOutput | Exception] = []
        for p in prepared:
            if isinstance(p, Exception):
                outputs.append(p)
                continue
            fields_of_clip = with_gaps(next(fields), p[1], params.size)
            outputs.append(StageOutput({self.feature.name: fields_of_clip[0] if self.one_field else fields_of_clip},
                                       {**p[2], **made_by}))
        return outputs

    def __call__(self, ctx, inputs, params, read) -> StageOutput:
        out = self.many([ctx], [inputs], params, read)[0]
        if isinstance(out, Exception):
            raise out
        return out


def with_gaps(fields: np.ndarray, pairs: list, size: tuple[int, int]) -> np.ndarray:
    """Fields for every pair, NaN where the pair is None."""
    if all(q is not None for q in pairs):
        return fields
    out = np.full((len(pairs), 2, size[1], size[0]), np.nan, dtype=np.float32)
    out[[i for i, q in enumerate(pairs) if q is not None]] = fields
    return out


def _resolve(params: flow.FlowParams, cuda: bool) -> flow.FlowParams:
    backend = flow.resolve_backend(params.backend, cuda)
    return params if backend == params.backend else replace(params, backend=backend)


def _may_use_cuda(params: flow.FlowParams) -> bool:
    return params.backend != "opencv"


BACKEND = Device(resolve=_resolve, may_use_cuda=_may_use_cuda)
"""The flow stages' device choice: ``backend``, with ``"auto"`` resolved by :func:`.flow.resolve_backend`."""


def flow_figure(feature: FeatureDef) -> Figure:
    """A flow stage's picture for ``mepipe show --feature NAME``: its field drawn by :func:`.figures.flow_figure`."""
    return Figure(feature.name, partial(figures.flow_figure, feature=feature))


@dataclass(frozen=True)
class GpuPlacement:
    """A batched flow stage's placement: ``clips_per_task`` clips per task on a GPU worker when torch runs on CUDA.

    The number is the stage's own: about 250-2500 pairs per solver call (one
    H200 holds ~90,000 pairs of 112 x 112).
    """

    clips_per_task: int

    def __call__(self, params: flow.FlowParams, cuda: bool) -> Placement:
        if params.backend == "torch" and cuda:
            return Placement({"GPU": 1}, self.clips_per_task)
        return Placement()
