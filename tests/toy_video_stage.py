"""A long-video stage of one file: the mean absolute change of the aligned crop from frame t to t + step.

It runs on long videos only (``kernel=None``, a ``window``): each window reads
the crops of its frames and of the ``step`` frames after them, which the
build provides by waiting for the next windows' align tasks. Importing it
registers the stage and its feature.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.features import FeatureDef
from mepipe.pipeline.stages import StageOutput, Windowed, register_stage


@dataclass(frozen=True)
class ToyMotionParams:
    """Parameters of the toy long-video stage.

    Attributes
    ----------
    step : int
        Frames from t to t + step, >= 1.
    """

    step: int = 5


TOY_MOTION = FeatureDef(
    "toy_motion", "toy_motion", ("frame", "channel"), "float32", "1", "mean absolute crop change",
    "mean |crop(t + step) - crop(t)| over the aligned crop; NaN for the last step frames (declared: nan_fills)",
    {"channel": 1}, nan_fills=("channel",))


def toy_motion(crops: np.ndarray, rows: int, step: int) -> np.ndarray:
    """Per frame of the first ``rows``, the mean absolute change to the crop ``step`` frames later (NaN: none),
    as a (rows, 1) array."""
    out = np.full(rows, np.nan, np.float32)
    later = crops[step:step + rows].astype(np.float32)
    out[:len(later)] = np.abs(later - crops[:len(later)].astype(np.float32)).mean(axis=tuple(range(1, crops.ndim)))
    return out[:, None]


def _kernel(ctx, inputs, params, read):
    return StageOutput({TOY_MOTION.name: toy_motion(inputs[features.CROPS.name], len(ctx.window), params.step)})


register_stage(name="toy_motion", version="1", params=ToyMotionParams, kernel=None, reads=("align",),
               inputs=(features.CROPS,), writes=(TOY_MOTION,),
               window=Windowed(kernel=_kernel, after=lambda params, fps: params.step))
