"""Appearance stage for STRCN-A (Xia et al. 2019, §III-C1): heat maps and time-normalised clips.

Each magnified clip gets a difference heat map ``E_i(x, y) = sum_t
|I_i(t) - I_i(0)|`` (Xia eq. 4, kept per clip) and is resampled to a fixed
number of frames. The mask over the summed heat maps and the masked
matrices are read-time views (:mod:`mepipe.featurestore.views`): the
dataset-level stage builds the paper's mask over all clips from them, and
training builds a leak-free mask from each fold's training clips.

Kernels are pure: arrays in, arrays out. Clips arrive already aligned,
magnified and resized (``magnify.small_size``).

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng and G. Zhao, "Spatiotemporal Recurrent
   Convolutional Networks for Recognizing Spontaneous Micro-Expressions,"
   IEEE Transactions on Multimedia, vol. 22, no. 3, pp. 626-640, 2020.
   doi:10.1109/TMM.2019.2931351
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.views import time_normalise

from .cost import per_frame
from .registry import StageOutput, register_stage


@dataclass(frozen=True)
class AppearanceParams:
    """Parameters of the STRCN-A appearance stage (paper defaults, Xia §IV-B).

    Parameters
    ----------
    n_time : int
        Frames per clip after time normalisation, >= 2 (Xia: T = 30).
    """

    n_time: int = 30

    def __post_init__(self) -> None:
        if self.n_time < 2:
            raise ValueError(f"n_time must be >= 2, got {self.n_time!r}")


def heatmap(clip: np.ndarray) -> np.ndarray:
    """Difference heat map of one clip, ``E(x, y) = sum_t |I(t) - I(0)|`` (Xia eq. 4).

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C)
        Magnified frames, uint8 or float. Colour channels are summed too.

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    frames = np.asarray(clip)
    if frames.ndim not in (3, 4) or frames.shape[0] == 0:
        raise ValueError(f"clip must have shape (T, H, W) or (T, H, W, C) with T >= 1, got {frames.shape}")
    frames = frames.astype(np.float64)  # uint8 differences would wrap around
    diff = np.abs(frames - frames[:1]).sum(axis=0)
    if diff.ndim == 3:
        diff = diff.sum(axis=-1)
    return diff.astype(np.float32)


def _kernel(ctx, inputs, params, read):
    magnify = read["magnify"]
    clip = inputs[features.MAGNIFIED_SMALL.name][:, magnify.test_index].astype(np.float32)
    return StageOutput({features.HEATMAP.name: heatmap(clip.mean(axis=-1)),
                        features.APPEARANCE_FRAMES.name: time_normalise(clip, params.n_time)})


VERSION = "1"
"""Bump when the output changes for the same input and parameters."""

register_stage(
    name="appearance", version=VERSION, params=AppearanceParams, kernel=_kernel, group="appearance",
    reads=("magnify",), inputs=(features.MAGNIFIED_SMALL,), writes=(features.HEATMAP, features.APPEARANCE_FRAMES),
    cost=per_frame())
