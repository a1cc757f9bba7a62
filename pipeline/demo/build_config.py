"""The demo corpora's build settings: paper defaults where they are cheap, fewer flow pairs where they are not.

With every paper default (issue 14) the 36-clip demo solves about 1,700
TV-L1 pairs, 900 of them onset->apex pairs at 245x300 on the clips magnified
with each of Xia's ten alphas and frame subsets, and 828 first->each pairs
on the 256-pixel crops (Miao): about 20 CPU minutes, 10 minutes on two
cores. The demo exists to show the tool in about a minute, so its builds
use three alphas (5, Xia's test alpha 8, 11), only each clip's own
onset->apex pair (no frame-subset pairs), the first->each flow on crops
resized to 112 pixels first, and a cheaper TV-L1 (3 pyramid levels instead
of 5, 2 warps instead of 5, stopping at epsilon 0.05 instead of 0.01; 10-20
times faster per pair on the demo's crops, and the setting the test suite
trains the demo with). These are ordinary parameters: they are
recorded in the store's build record and enter the cache keys, a
``--config`` value overrides each of them, and ``mepipe build`` on a real
dataset uses none of them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .long_params import LONG_PRESETS, LongDemoParams
from .params import PRESETS

DEMO_TVL1: dict[str, Any] = {"nscales": 3, "warps": 2, "epsilon": 0.05}
"""The demo's TV-L1 solver settings (OpenCV's defaults otherwise)."""

BUILD_CONFIG: dict[str, dict[str, Any]] = {
    "magnify": {"alphas": [5.0, 8.0, 11.0]},
    "flow_onset_apex": {"tvl1": DEMO_TVL1},
    "flow_onset_apex_magnified": {"subset_levels": [1.0], "tvl1": DEMO_TVL1},
    "flow_first_each": {"compute_at": "size", "tvl1": DEMO_TVL1},
    "flow_consecutive": {"tvl1": DEMO_TVL1},
}
"""Stage parameters of every short-clip demo build (``{stage: {parameter: value}}``, as ``--config`` takes them)."""

def micro_k(params: LongDemoParams) -> int:
    """SOFTNet's k for a long-video demo: int((N + 1) / 2), N its micro-expressions' mean onset-to-offset frames.

    N is the generator's expected length (the means of ``micro_rise`` and
    ``micro_fall``), as SOFTNet takes the corpus's mean from its sheet
    (:mod:`mepipe.pipeline.stages.roi_motion`).
    """
    n = sum(params.micro_rise) / 2 + sum(params.micro_fall) / 2
    return int((n + 1) / 2)


LONG_VIDEO_BUILD_CONFIG: dict[str, dict[str, Any]] = {
    "align": {"size": 64},
    "flow_consecutive": {"tvl1": DEMO_TVL1},
    "flow_apart": {"tvl1": DEMO_TVL1, "k": micro_k(LONG_PRESETS["demo-lv"])},
    "roi_motion": {"size": [64, 64], "tvl1": DEMO_TVL1, "k": micro_k(LONG_PRESETS["demo-lv"])},
}
"""Stage parameters of the long-video demo's build (``demo-lv``): crops of 64 px (the demo's faces are small and
Nag's inputs are 64 px anyway), the demo's TV-L1 for every flow (about 10 ms a pair at 64 px on one core, so the
~5,600 frames' flows t -> t + k fit the 3-minute build), and k of both flows t -> t + k from the demo's mean micro-expression length by
SOFTNet's rule (33 frames; the ``mean_micro_frames`` its truth file records is about 68)."""

DEMO_BUILD_CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    **{name: BUILD_CONFIG for name in PRESETS},
    **{name: LONG_VIDEO_BUILD_CONFIG for name in LONG_PRESETS},
}
"""The build settings of each demo corpus by dataset name."""


def build_config(dataset: str, config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``config`` over the demo's settings when ``dataset`` is a demo corpus; ``config`` alone otherwise."""
    if dataset not in DEMO_BUILD_CONFIGS:
        return {stage: dict(values) for stage, values in config.items()}
    merged = {stage: dict(values) for stage, values in DEMO_BUILD_CONFIGS[dataset].items()}
    for stage, values in config.items():
        merged[stage] = {**merged.get(stage, {}), **values}
    return merged
