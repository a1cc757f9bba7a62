"""Stages that need every clip at once: the STRCN-A mask and the masked appearance matrices.

The mask keeps the top ``keep_fraction`` of the summed heat maps of the
clips it is built from (Xia et al. 2019); the store's copy is built from all
clips that have a heat map, as the paper does, and records their list.
Training builds leak-free masks per fold from the stored heat maps instead
(:func:`mepipe.pipeline.stages.appearance.appearance_matrices`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.writer import StoreWriter

from .stages import appearance

VERSION = "1"


def build_appearance(writer: StoreWriter, samples: list[str], keys: Mapping[tuple[str, str], str],
                     params: appearance.AppearanceParams) -> str | None:
    """Write the dataset mask and every clip's ``appearance`` matrix; returns the cache key used."""
    ids = [s for s in samples if writer.stored_key(s, "heatmap") == keys.get((s, "appearance"))]
    if not ids:
        return None
    key = stage_key("appearance_mask", VERSION, params, {s: keys[(s, "appearance")] for s in ids})
    fresh = writer.dataset_attrs("appearance_mask").get("cache_key") == key and all(
        writer.stored_key(s, "appearance") == key for s in ids)
    if fresh:
        return key
    heatmaps = np.stack([writer.read_feature(s, "heatmap") for s in ids])
    mask = appearance.build_mask(heatmaps, params.keep_fraction)
    for s in ids:
        clip = writer.read_feature(s, "appearance_frames").astype(np.float32)
        writer.write_feature(s, "appearance", appearance.appearance_matrix(clip, mask, params), key)
    writer.write_dataset_array("appearance_mask", mask, key,
                               {"clips": ids, "keep_fraction": params.keep_fraction, "n_pixels": int(mask.sum())})
    return key
