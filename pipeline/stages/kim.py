"""Stage: Kim et al.'s inputs (https://doi.org/10.1109/TAFFC.2017.2699999): every aligned frame, and the five
expression-state frames, in RGB at ``kim.size``; the network is :mod:`mepipe.train.models.kim2017`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mepipe.featurestore import features

from .cost import per_frame
from .registry import StageOutput, register_stage
from .windows import Windowed


@dataclass(frozen=True)
class KimParams:
    """Sizes of Kim's inputs: every frame and the five state frames at ``size`` x ``size`` x 3 (Kim: 64).

    Attributes
    ----------
    size : int
        Side in pixels of the square ``frames_rgb`` and ``state_frames`` (Kim: 64).
    """

    size: int = 64

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"KimParams.size must be >= 1, got {self.size!r}")


def rgb_frames(crops: np.ndarray, size: int) -> np.ndarray:
    """Crops (T, S, S[, C]) uint8 resized to (T, size, size, 3) (``cv2.INTER_AREA``), grey replicated to RGB."""
    small = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])
    return np.repeat(small[..., None], 3, axis=-1) if small.ndim == 3 else small


def _kernel(ctx, inputs, params, read):
    small = rgb_frames(inputs[features.CROPS.name], params.size)
    return StageOutput({features.FRAMES_RGB.name: small,
                        features.STATE_FRAMES.name: small[inputs[features.STATE_INDEX.name]]})


def _window_kernel(ctx, inputs, params, read):
    """A window of a long video: its frames only (a video has no expression states); Nag's spatial input."""
    return StageOutput({features.FRAMES_RGB.name: rgb_frames(inputs[features.CROPS.name], params.size)})


VERSION = "1"
"""Bump when the output changes for the same input and parameters."""

register_stage(
    name="kim", version=VERSION, params=KimParams, kernel=_kernel, group="kim", reads=("align", "apex"),
    inputs=(features.CROPS, features.STATE_INDEX), writes=(features.FRAMES_RGB, features.STATE_FRAMES),
    cost=per_frame(), window=Windowed(kernel=_window_kernel, reads=("align",), inputs=(features.CROPS,), writes=(features.FRAMES_RGB,)))
