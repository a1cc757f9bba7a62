"""Stage: onset→apex flows of the magnified clip for every α and frame subset, STRCN-G's input.

Xia et al. (2019, https://doi.org/10.1109/TMM.2019.2931351) magnify the
aligned clip, then compute STRCN-G's flow between its onset and apex frames
resized to 300x245; frame subsets (their augmentation) change the pair when
they drop either frame (:mod:`.subsets`). Magnification runs at the crops'
resolution, with the magnify stage's parameters and alpha list, which this
stage therefore reads.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mepipe.featurestore import features

from . import flow_tasks, subsets
from .cost import Cost, Probe, n_frames, spread
from .flow import VERSION
from .flow_onset_apex import OnsetApexFlowParams, flow_onset_apex
from .magnify import magnify_frames, squeezed
from .registry import ReadParams, StageOutput, register_stage


@dataclass(frozen=True)
class MagnifiedOnsetApexFlowParams(OnsetApexFlowParams):
    """Onset→apex flows of the magnified clip for STRCN-G (Xia et al. 2019): 300×245.

    One field per α of ``magnify.alphas`` (the clip magnified at the crops'
    resolution with the magnify stage's parameters) and per distinct
    (onset, apex) pair of the clip's frame subsets (:mod:`.subsets`).

    Deviations from Xia, kept because the paper cannot be followed here:

    - **Flow method.** Xia use Sun, Roth and Black's method (CVPR 2010,
      "Secrets of optical flow", Lorentzian penalty); no implementation of
      it is available to mepipe, so this is TV-L1 like every other flow
      variant (SPEC §2.5).
    - **Onset and apex.** Xia's onset is the first frame of the sequence and
      their apex the std-diff maximum (eq. 5); here they are Kim's state
      frames 0 and 2 (the sheet's onset and apex where it has them, else the
      estimates, which are eq. 5 on the magnified clip), as for
      ``flow_onset_apex``, because clip folders (SAMM, the demo) may hold
      frames before the onset.

    Attributes
    ----------
    subset_levels : tuple of float
        Fraction of frames each subset keeps, one seeded random subset per
        level (Xia: 1.0, 0.9, 0.8, 0.7, 0.6). ``(1.0,)`` stores only the
        clip's own onset→apex pair.
    subset_seed : int
        Seed of the draws, with the sample id.
    """

    subset_levels: tuple[float, ...] = subsets.XIA_LEVELS
    subset_seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        levels = tuple(float(v) for v in self.subset_levels)
        if not levels or any(not 0 < v <= 1 for v in levels):
            raise ValueError(f"{type(self).__name__}.subset_levels must be fractions in (0, 1], "
                             f"got {self.subset_levels!r}")
        object.__setattr__(self, "subset_levels", levels)


def _kernel(ctx, inputs, params, read):
    magnification = read["magnify"]
    onset, peak = flow_tasks.onset_apex(inputs)
    crops = inputs[features.CROPS.name]
    keep = subsets.draw_subsets(len(crops), params.subset_levels, subsets.subset_seed(ctx.sample, params.subset_seed))
    pairs, pair_of = subsets.subset_pairs(keep, onset, peak, inputs[features.STDDIFF.name])
    frames_used = sorted(set(pairs.ravel().tolist()))
    position = {f: k for k, f in enumerate(frames_used)}
    magnified = magnify_frames(squeezed(crops), magnification.alphas, frames_used, magnification)
    width, height = params.size
    fields = np.empty((len(magnification.alphas), len(pairs), 2, height, width), dtype=np.float32)
    for a, clip in enumerate(magnified):
        for k, (start, end) in enumerate(pairs):
            fields[a, k] = flow_onset_apex(clip[[position[start], position[end]]], 0, 1, params)
    return StageOutput({features.FLOW_ONSET_APEX_MAGNIFIED.name: fields, features.ONSET_APEX_PAIRS.name: pairs,
                        features.SUBSET_FRAMES.name: keep, features.SUBSET_PAIR.name: pair_of},
                       {"onset_index": onset, "apex_index": peak, "n_pairs": len(pairs)})


def _flows(ctx, params, read) -> int:
    """TV-L1 pairs solved: one per α and distinct subset pair.

    The subsets are the stage's own seeded draws; their pairs are counted
    around the sheet's onset and apex (the estimates are not known before
    the apex stage runs: then around the clip's first and middle frames).
    """
    n = n_frames(ctx)
    onset, peak = ctx.truth[0], ctx.truth[1]
    if onset is None or peak is None or not 0 <= onset < peak < n:
        onset, peak = 0, max(1, n // 2)
    keep = subsets.draw_subsets(n, params.subset_levels, subsets.subset_seed(ctx.sample, params.subset_seed))
    pairs, _ = subsets.subset_pairs(keep, onset, peak, np.zeros(n))
    return len(read["magnify"].alphas) * len(pairs)


def _sample(ctx, inputs, params, read) -> list[Probe]:
    """The clip's own onset->apex pair at three alphas spread over the list and the test alpha: magnification
    strengthens the motion TV-L1 follows, so its cost grows with α."""
    magnification = read["magnify"]
    alphas = sorted(magnification.alphas)
    chosen = tuple(sorted({alphas[k] for k in spread(len(alphas))} | {magnification.test_alpha}))
    own = replace(params, subset_levels=(1.0,))
    read = ReadParams("flow_onset_apex_magnified", {**read, "magnify": replace(magnification, alphas=chosen)})
    return [Probe(ctx, inputs, own, read, len(chosen))]


register_stage(
    name="flow_onset_apex_magnified", version=VERSION, params=MagnifiedOnsetApexFlowParams, kernel=_kernel,
    group="flow", reads=("align", "magnify", "apex"), inputs=(features.CROPS, features.STATE_INDEX, features.STDDIFF),
    writes=(features.FLOW_ONSET_APEX_MAGNIFIED, features.ONSET_APEX_PAIRS, features.SUBSET_FRAMES,
            features.SUBSET_PAIR),
    device=flow_tasks.BACKEND,
    figure=flow_tasks.flow_figure(features.FLOW_ONSET_APEX_MAGNIFIED),
    cost=Cost("alpha-pair", _flows, sample=_sample))
