"""Dataset stage: the STRCN-A mask over every clip's heat map, and the masked appearance matrices.

The mask keeps the top ``keep_fraction`` of the summed heat maps of the
clips it is built from (Xia et al. 2019); the store's copy is built from all
clips that have a heat map, as the paper does, and records their list.
Training builds leak-free masks per fold from the stored heat maps with the
same view (:func:`mepipe.featurestore.views.build_mask`). Reference: Xia et
al. 2019, https://doi.org/10.1109/TMM.2019.2931351 (§III-C1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.views import appearance_matrix, build_mask

from .. import figures
from .registry import DatasetOutput, Figure, register_stage


@dataclass(frozen=True)
class AppearanceMaskParams:
    """Parameters of the STRCN-A mask (Xia §III-C1, §IV-B).

    Attributes
    ----------
    keep_fraction : float
        Fraction p of heat-map pixels the mask keeps, in (0, 1] (Xia: 30%).
        Training builds its per-fold masks with the value recorded here.
    """

    keep_fraction: float = 0.30

    def __post_init__(self) -> None:
        if not 0 < self.keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction!r}")


def _kernel(clips, params, read) -> DatasetOutput:
    mask = build_mask(np.stack([clips.read(s, features.HEATMAP) for s in clips.samples]), params.keep_fraction)

    def matrices():
        for s in clips.samples:
            clip = clips.read(s, features.APPEARANCE_FRAMES).astype(np.float32)
            yield s, {features.APPEARANCE.name: appearance_matrix(clip, mask, len(clip))}

    return DatasetOutput(matrices(), {features.APPEARANCE_MASK.name: mask},
                         {"clips": list(clips.samples), "keep_fraction": params.keep_fraction,
                          "n_pixels": int(mask.sum())})


VERSION = "1"
"""Bump when the output changes for the same input and parameters."""

register_stage(
    name="appearance_mask", version=VERSION, params=AppearanceMaskParams, kernel=_kernel, scope="dataset",
    group="appearance", reads=("appearance",), inputs=(features.HEATMAP, features.APPEARANCE_FRAMES),
    writes=(features.APPEARANCE, features.APPEARANCE_MASK), figure=Figure("mask", figures.mask_figure))
