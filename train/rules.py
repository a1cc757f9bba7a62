"""Clip-prediction rules: one class per test clip from a stage's test items.

A rule is called by the fold runner after a stage with the trained model,
the stage's test loader and dataset, and returns :class:`ClipPredictions`:
the class of every test clip (in the fold's order) plus anything per clip
or per fold the rule measures (Nag's intensity curves and spotting AUC are
defined with that network).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .loop import ItemLogits, predict
from .objectives import Forward, whole_model

__all__ = ["ClipPredictions", "FrameVote", "ItemAt", "LogitRule", "MeanLogits", "vote"]


def vote(frame_logits: torch.Tensor | np.ndarray, apex_index: int) -> int:
    """Clip class as the majority of its frames' predicted classes (Miao §III-E).

    Each frame's class is the argmax of its logits (or scores). The class
    predicted for most frames wins; when several classes share the top count,
    the clip takes the apex frame's class, as the paper states ("we simply use
    the class of the apex frame"), even if that class is not one of the tied.

    Parameters
    ----------
    frame_logits : array-like, shape (T, n)
        Logits or softmax scores of the clip's T flow images.
    apex_index : int
        Row of ``frame_logits`` that belongs to the apex frame, 0 <= apex_index < T
        (for flow fields: :func:`mepipe.featurestore.views.apex_field`).

    Returns
    -------
    int
        The clip's class index.
    """
    scores = frame_logits.detach().cpu().numpy() if isinstance(frame_logits, torch.Tensor) else np.asarray(frame_logits)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"frame_logits must have shape (T, n) with T >= 1, got {scores.shape}")
    if not 0 <= apex_index < scores.shape[0]:
        raise ValueError(f"apex_index {apex_index} is outside the clip's {scores.shape[0]} frames")
    predicted = scores.argmax(axis=1)
    counts = np.bincount(predicted, minlength=scores.shape[1])
    winners = np.flatnonzero(counts == counts.max())
    return int(winners[0]) if len(winners) == 1 else int(predicted[apex_index])


@dataclass
class ClipPredictions:
    """Predictions for a fold's test clips.

    Attributes
    ----------
    pred : ndarray of int64, shape (n_clips,)
        Class of each test clip, in the fold's order.
    rows : list of dict
        Extra entries of each clip's prediction row (empty dicts when none).
    fold : dict
        Extra entries of the fold's report.
    """

    pred: np.ndarray
    rows: list[dict[str, Any]] = field(default_factory=list)
    fold: dict[str, Any] = field(default_factory=dict)


def _by_clip(predicted: ItemLogits, n_clips: int) -> list[np.ndarray]:
    """Rows of the predicted items of each clip, in item order."""
    return [np.flatnonzero(predicted.clip == c) for c in range(n_clips)]


def _check_covered(rows: list[np.ndarray]) -> None:
    empty = [c for c, r in enumerate(rows) if not r.size]
    if empty:
        raise ValueError(f"test clips {empty} have no items to predict from")


class LogitRule:
    """A rule that predicts every test item's logits, then decides each clip's class from them."""

    forward: Forward
    measured_on: str

    def __call__(self, model: nn.Module, loader: DataLoader, dataset: Dataset, n_clips: int,
                 device: torch.device) -> ClipPredictions:
        predicted = predict(model, loader, device, forward=self.forward)
        rows = _by_clip(predicted, n_clips)
        _check_covered(rows)
        return ClipPredictions(self.decide(predicted, rows, dataset))

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset) -> np.ndarray:
        """Class of each clip from the items' ``logits`` and ``frame`` (``rows[c]``: clip c's items)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MeanLogits(LogitRule):
    """A clip's class is the argmax of its items' mean logits (one item per clip: its argmax).

    Attributes
    ----------
    forward : Forward
        Which logits of the model.
    measured_on : str
        What the figures of this rule measure, for reports.
    """

    forward: Forward = whole_model
    measured_on: str = "argmax of the clip's logits"

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset) -> np.ndarray:
        return np.array([int(predicted.logits[r].mean(axis=0).argmax()) for r in rows], dtype=np.int64)


@dataclass(frozen=True)
class ItemAt(LogitRule):
    """A clip's class is that of one of its items, the one whose ``frame`` is ``frame``.

    Kim's Table 6 measures the CNN by Fc on the apex state frame; a clip
    without that item falls back to its middle item.
    """

    frame: int
    forward: Forward = whole_model
    measured_on: str = "the clip's item at one frame"

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset) -> np.ndarray:
        out = np.empty(len(rows), dtype=np.int64)
        for c, r in enumerate(rows):
            hit = r[predicted.frame[r] == self.frame]
            out[c] = int(predicted.logits[hit[0] if hit.size else r[len(r) // 2]].argmax())
        return out


@dataclass(frozen=True)
class FrameVote(LogitRule):
    """A clip's class is the vote of its frames, the apex frame breaking ties (Miao §III-E).

    The dataset gives each clip's apex item in ``apex_fields`` (see
    :class:`~mepipe.train.inputs.flow_frames.FlowFrameDataset`).
    """

    forward: Forward = whole_model
    measured_on: str = "vote of the clip's frames (apex frame breaks ties)"

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset) -> np.ndarray:
        out = np.empty(len(rows), dtype=np.int64)
        for c, r in enumerate(rows):
            r = r[np.argsort(predicted.frame[r])]
            apex = int(np.searchsorted(predicted.frame[r], dataset.apex_fields[c]))
            out[c] = vote(predicted.logits[r], min(apex, len(r) - 1))
        return out
