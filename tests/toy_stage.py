"""A toy stage, complete in this one file: kernel, parameters, version, its own feature, group and figure.

It smooths each clip's stored ``intensity`` curve with a moving average of
``window`` frames. Nothing else in mepipe knows it: importing this module
registers the stage and its feature, after which ``mepipe build --features
toy`` builds it, ``mepipe show --feature toy_smoothed`` draws it and the
store reads it back like a built-in feature.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.features import FeatureDef
from mepipe.pipeline.stages import Figure, StageOutput, register_stage


@dataclass(frozen=True)
class ToyParams:
    """Parameters of the toy stage.

    Attributes
    ----------
    window : int
        Frames averaged, odd, >= 1.
    """

    window: int = 3

    def __post_init__(self) -> None:
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"ToyParams.window must be odd and >= 1, got {self.window!r}")


TOY_SMOOTHED = FeatureDef(
    "toy_smoothed", "toy", ("frame",), "float32", "1", "smoothed expression intensity",
    "the apex stage's intensity averaged over toy.window frames centred on each frame (edges: the frames there are)")


def smooth(curve: np.ndarray, window: int) -> np.ndarray:
    """Moving average of ``window`` samples centred on each one; near the ends, of the samples there are."""
    ones = np.ones(window)
    return (np.convolve(curve, ones, "same") / np.convolve(np.ones_like(curve), ones, "same")).astype(np.float32)


def _kernel(ctx, inputs, params, read):
    return StageOutput({TOY_SMOOTHED.name: smooth(inputs[features.INTENSITY.name], params.window)})


def _figure(store, sample):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(store.read(TOY_SMOOTHED.name, sample))
    ax.set_title(f"{sample}: intensity over {store.record.stage_params()['toy']['window']} frames")
    return fig


VERSION = "1"

register_stage(
    name="toy", version=VERSION, params=ToyParams, kernel=_kernel, group="toy", reads=("apex",),
    inputs=(features.INTENSITY,), writes=(TOY_SMOOTHED,), figure=Figure(TOY_SMOOTHED.name, _figure))
