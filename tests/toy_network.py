"""A toy eighth network, complete in this one file: module, factory, its own input form and recipe.

It classifies a clip from its stored ``intensity`` curve, resampled to a
fixed length, with one 1-D convolution. Nothing else in mepipe knows it:
importing this module registers it, and ``mepipe train --model toy-curve``
(or ``run_training``) trains it like the seven published networks. Its
input form (a dataset and its item maker) is written here, beside it, as a
paper's own form would be; a form several networks share would be one
module of ``mepipe.train.inputs``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.features import INTENSITY
from mepipe.train.inputs.base import ClipReader, Shuffled, StoreDataset, fold_sides
from mepipe.train.models import register_model
from mepipe.train.objectives import Classify
from mepipe.train.recipe import Optimiser, Recipe, TrainingStage
from mepipe.train.rules import MeanLogits

LENGTH = 16
"""Samples per resampled intensity curve."""


class CurveDataset(StoreDataset):
    """One item per clip: its intensity curve linearly resampled to ``length`` samples, as (1, length)."""

    def __init__(self, clips, samples: Sequence[str], labels: Sequence[int], *, length: int, **io):
        super().__init__(clips, samples, labels)
        self.length = length
        self.reader = ClipReader(self.clips, INTENSITY.name, self.samples, **io)

    def raw(self, i: int) -> np.ndarray:
        curve = self.reader[self.samples[i]].astype(np.float32)
        grid = np.linspace(0, len(curve) - 1, self.length)
        return np.interp(grid, np.arange(len(curve)), curve)[None].astype(np.float32)


@dataclass(frozen=True)
class IntensityCurves(Shuffled):
    """Item maker: resampled intensity curves, standardised on the fold's training clips."""

    length: int = LENGTH
    reads: tuple[str, ...] = (INTENSITY.name,)

    def datasets(self, fold, model: nn.Module) -> tuple[Dataset, Dataset]:
        # Standardised on the training side once (fold.statistics); the test pass reuses it.
        return fold_sides(fold, partial(CurveDataset, fold.clips, length=self.length, **fold.io), center=True)


class CurveNet(nn.Module):
    """Conv1d (1 -> width, kernel 3), ReLU, mean over time, linear classifier."""

    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.conv = nn.Conv1d(1, width, 3, padding=1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.relu(self.conv(x)).mean(dim=-1))


RECIPE = Recipe(
    name="toy-curve",
    doi="10.0000/toy",
    stages=(TrainingStage(name="network", items=IntensityCurves(), objective=Classify(),
                          optimiser=Optimiser("adam", lr=1e-2, batch_size=4), epochs=3, predict=MeanLogits()),),
    min_input_shape=(1, LENGTH),
)


@register_model("toy-curve", recipe=RECIPE)
def toy_curve(num_classes: int = 3, width: int = 4) -> CurveNet:
    """The toy network (see the module docstring)."""
    return CurveNet(num_classes, width)
