"""Stages that need every clip at once: the STRCN-A mask and the masked appearance matrices.

The mask keeps the top ``keep_fraction`` of the summed heat maps of the
clips it is built from (Xia et al. 2019); the store's copy is built from all
clips that have a heat map, as the paper does, and records their list.
Training builds leak-free masks per fold from the stored heat maps with the
same view (:func:`mepipe.featurestore.views.build_mask`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.views import appearance_matrix, build_mask
from mepipe.featurestore.writer import StoreWriter

NAME = "appearance_mask"
"""The dataset-level stage's name (the ``stage`` of the features it writes)."""

AFTER = "appearance"
"""The per-clip stage it runs after, on that stage's outputs."""

VERSION = "1"


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


def build_appearance(writer: StoreWriter, samples: list[str], keys: Mapping[tuple[str, str], str],
                     params: AppearanceMaskParams) -> str | None:
    """Write the dataset mask and every clip's ``appearance`` matrix; returns the cache key used."""
    ids = [s for s in samples if writer.stored_key(s, "heatmap") == keys.get((s, AFTER))]
    if not ids:
        return None
    key = stage_key(NAME, VERSION, params, {s: keys[(s, AFTER)] for s in ids})
    fresh = writer.dataset_attrs("appearance_mask").get("cache_key") == key and all(
        writer.stored_key(s, "appearance") == key for s in ids)
    if fresh:
        return key
    heatmaps = np.stack([writer.read_feature(s, "heatmap") for s in ids])
    mask = build_mask(heatmaps, params.keep_fraction)
    for s in ids:
        clip = writer.read_feature(s, "appearance_frames").astype(np.float32)
        writer.write_feature(s, "appearance", appearance_matrix(clip, mask, len(clip)), key)
    writer.write_dataset_feature("appearance_mask", mask, key,
                                 {"clips": ids, "keep_fraction": params.keep_fraction, "n_pixels": int(mask.sum())})
    return key
