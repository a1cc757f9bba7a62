"""How a stage's work grows with its clip: the ``cost=`` each stage declares for the build's estimate.

A stage's CPU time on a clip is, to a good approximation, a cost per unit
times a count of units that depends only on the clip's length and the
parameters: per frame (landmarks, align), per frame and α (magnify), per
flow pair (the flow stages). The unit cost is not a constant of the code: it
follows the machine, the frame size and format, and, for TV-L1, the motion
in the pixels (0.1 to 35 s per pair). So :mod:`mepipe.pipeline.estimate`
measures it on a clip of the dataset itself (the probe) by running the stage
for real, and scales it to every clip with the stage's :attr:`Cost.units`.

Stages whose work on one clip is too costly to run whole for an estimate
(flows: a clip's worth of TV-L1) declare :attr:`Cost.sample`: a few smaller
runs of their kernel on the probe clip, each covering a known number of
units, e.g. three first->each pairs spread over the clip.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..context import ClipContext


@dataclass(frozen=True)
class Probe:
    """One run of a stage's kernel for the estimate: its clip, inputs and parameters, and the units it covers."""

    ctx: ClipContext
    inputs: dict[str, Any]
    params: Any
    read: Any
    units: float


@dataclass(frozen=True)
class Cost:
    """How a stage's CPU seconds on a clip scale: ``unit cost x units(ctx, params, read)``.

    Attributes
    ----------
    unit : str
        What one unit is, for the estimate's printout ("frame", "pair", "frame-alpha"); an "s" makes its plural.
    units : callable (ctx, params, read) -> float
        How many units a clip holds under the stage's parameters and those it reads.
    sample : callable (ctx, inputs, params, read) -> list of Probe, optional
        Smaller runs of the kernel on the probe clip standing for its cost
        (their units summed); None: the kernel runs on the whole probe clip,
        as a build task runs it (with its store reads and writes).
    setup : callable () -> None, optional
        Work each worker process does once, before its first task of this
        stage (dlib's models: about 1 CPU s); the estimate times it apart
        and counts it once per worker.
    """

    unit: str
    units: Callable[[ClipContext, Any, Any], float]
    sample: Callable[[ClipContext, dict[str, Any], Any, Any], list[Probe]] | None = None
    setup: Callable[[], Any] | None = None


def n_frames(ctx: ClipContext) -> int:
    """Frames of a clip."""
    return len(ctx.frame_numbers)


def per_frame(setup: Callable[[], Any] | None = None) -> Cost:
    """The cost of a stage doing the same work on every frame of its clip."""
    return Cost("frame", lambda ctx, params, read: n_frames(ctx), setup=setup)


SAMPLED_PAIRS = 3
"""Flow pairs a flow stage's estimate solves on the probe clip (TV-L1's cost follows the motion, so several)."""


def spread(count: int, n: int = SAMPLED_PAIRS) -> list[int]:
    """``n`` indices into ``range(count)`` at the middles of ``n`` equal parts (all of them when fewer).

    The middles of equal parts are a midpoint rule over the clip: pairs near
    its start (little motion), its apex and its end each stand for their third.
    """
    if count <= n:
        return list(range(count))
    return sorted({min(count - 1, int((k + 0.5) * count / n)) for k in range(n)})


def sampled_pairs(pair_crops: Callable[[int, int], Sequence[int]], crops_feature: str) -> Callable[..., list[Probe]]:
    """A ``sample`` for a flow stage over consecutive or first->each pairs: :data:`SAMPLED_PAIRS` runs of its
    kernel, each on the crops ``pair_crops(k, T)`` (pair k of a T-frame clip), one pair each."""

    def sample(ctx: ClipContext, inputs: dict[str, Any], params: Any, read: Any) -> list[Probe]:
        crops = inputs[crops_feature]
        probes = []
        for k in spread(len(crops) - 1):
            chosen = list(pair_crops(k, len(crops)))
            numbers = tuple(np.asarray(ctx.frame_numbers)[chosen].tolist())
            probes.append(Probe(replace(ctx, frame_numbers=numbers), {**inputs, crops_feature: crops[chosen]},
                                params, read, len(chosen) - 1))
        return probes

    return sample
