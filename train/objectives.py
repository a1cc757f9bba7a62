"""Training objectives recipes use: a step's loss from a batch, and how a model's logits are taken.

An objective maker is called with a fold's training inputs
(:class:`~mepipe.train.fold.FoldInputs`: the run's options, the stores)
and returns the step function the training loop calls,
``(model, batch on the device, generator) -> (loss, logits, y)``; the
batch is the stage's typed :class:`~mepipe.train.inputs.batches.Item`, the
logits and labels are what the epoch's training accuracy is counted on.
Objectives with several terms or targets (Kim's E1..E5, Nag's intensity)
are defined in their network's module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .augment import Augmenter
from .inputs.batches import Item
from .inputs.sequences import SequenceItem
from .loop import Objective

if TYPE_CHECKING:
    from .fold import FoldInputs

__all__ = ["Classify", "Forward", "frame_logits", "sequence_logits", "whole_model"]

Forward = Callable[[nn.Module, Item], torch.Tensor]
"""``(model, batch on the device) -> logits``: which head of a model a stage trains or predicts with."""


def whole_model(model: nn.Module, batch: Item) -> torch.Tensor:
    """``model(x)``: a one-stage network's logits."""
    return model(batch.x)


def frame_logits(model: nn.Module, batch: Item) -> torch.Tensor:
    """``model.frame_logits(x)``: the per-frame CNN's own classifier of a two-stage network."""
    return model.frame_logits(batch.x)


def sequence_logits(model: nn.Module, batch: SequenceItem) -> torch.Tensor:
    """``model.temporal(x, length)``: the recurrent head over encoded sequences of a two-stage network."""
    return model.temporal(batch.x, batch.length)


@dataclass(frozen=True)
class Classify:
    """``loss(forward(model, augment(x)), y)``: single-label classification of each item.

    Attributes
    ----------
    loss : callable
        ``(logits, y) -> loss``; computed in float32 (cross-entropy by default).
    forward : Forward
        Which logits are trained.
    augment : Augmenter, optional
        Batch augmentation ``(x, generator) -> x``, applied when the run augments.
    """

    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    forward: Forward = whole_model
    augment: Augmenter | None = None

    def __call__(self, fold: FoldInputs) -> Objective:
        augment = self.augment if fold.options.augment else None

        def step(model: nn.Module, batch: Item, generator: torch.Generator):
            if augment is not None:
                batch = batch.with_x(augment(batch.x, generator))
            logits = self.forward(model, batch)
            return self.loss(logits.float(), batch.y), logits, batch.y

        return step
