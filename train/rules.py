"""Clip-prediction rules: one class (or one AU vector) per test clip from a stage's test items.

A rule is called by the fold runner after a stage with the trained model,
the stage's test loader and dataset and the run's targets, and returns
:class:`ClipPredictions`: the class of every test clip (in the fold's order),
or under AU targets the AUs it shows, plus anything per clip or per fold the
rule measures (Nag's intensity curves and spotting AUC are defined with that
network). The rules here take both kinds of target (``label_kinds``); the
targets turn a clip's logits into its decision
(:meth:`~mepipe.train.targets.ClassTargets.decide`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .loop import ItemLogits, predict
from .objectives import Forward, whole_model
from .targets import AU, CLASS, Targets

__all__ = ["ClipPredictions", "FrameVote", "ItemAt", "LogitRule", "MeanLogits", "vote", "vote_each"]


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


def vote_each(frame_decisions: np.ndarray, apex_index: int) -> np.ndarray:
    """Each AU of a clip by the vote of its frames: shown where most frames show it, the apex frame's on a tie.

    Miao's vote (:func:`vote`) per AU, for AU targets.

    Parameters
    ----------
    frame_decisions : array-like of {0, 1}, shape (T, K)
        Each frame's decision on each AU.
    apex_index : int
        Row of the apex frame.

    Returns
    -------
    ndarray of uint8, shape (K,)
    """
    decisions = np.asarray(frame_decisions, dtype=np.int64)
    if decisions.ndim != 2 or not 0 <= apex_index < decisions.shape[0]:
        raise ValueError(f"need (T, K) decisions and an apex row in 0..T-1, got {decisions.shape} and {apex_index}")
    shown = 2 * decisions.sum(axis=0)
    frames = decisions.shape[0]
    return np.where(shown == frames, decisions[apex_index], shown > frames).astype(np.uint8)


@dataclass
class ClipPredictions:
    """Predictions for a fold's test clips.

    Attributes
    ----------
    pred : ndarray of int64, shape (n_clips,), or of uint8, shape (n_clips, K)
        Class of each test clip, in the fold's order (AU targets: the AUs it shows).
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
    """A rule that predicts every test item's logits, then decides each clip's class (or AUs) from them."""

    forward: Forward
    measured_on: str
    label_kinds: ClassVar[tuple[str, ...]] = (CLASS, AU)

    def __call__(self, model: nn.Module, loader: DataLoader, dataset: Dataset, n_clips: int,
                 device: torch.device, targets: Targets) -> ClipPredictions:
        predicted = predict(model, loader, device, forward=self.forward)
        rows = _by_clip(predicted, n_clips)
        _check_covered(rows)
        return ClipPredictions(self.decide(predicted, rows, dataset, targets))

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset,
               targets: Targets) -> np.ndarray:
        """Decision of each clip from the items' ``logits`` and ``frame`` (``rows[c]``: clip c's items)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MeanLogits(LogitRule):
    """A clip's decision is that of its items' mean logits (one item per clip: its logits): argmax, or AUs > 0.

    Attributes
    ----------
    forward : Forward
        Which logits of the model.
    measured_on : str
        What the figures of this rule measure, for reports.
    """

    forward: Forward = whole_model
    measured_on: str = "argmax of the clip's logits"

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset,
               targets: Targets) -> np.ndarray:
        return targets.decide(np.stack([predicted.logits[r].mean(axis=0) for r in rows]))


@dataclass(frozen=True)
class ItemAt(LogitRule):
    """A clip's decision is that of one of its items, the one whose ``frame`` is ``frame``.

    Kim's Table 6 measures the CNN by Fc on the apex state frame; a clip
    without that item falls back to its middle item.
    """

    frame: int
    forward: Forward = whole_model
    measured_on: str = "the clip's item at one frame"

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset,
               targets: Targets) -> np.ndarray:
        chosen = []
        for r in rows:
            hit = r[predicted.frame[r] == self.frame]
            chosen.append(hit[0] if hit.size else r[len(r) // 2])
        return targets.decide(predicted.logits[chosen])


@dataclass(frozen=True)
class FrameVote(LogitRule):
    """A clip's class is the vote of its frames, the apex frame breaking ties (Miao §III-E); under AU targets
    each AU is voted on so (:func:`vote_each`).

    The dataset gives each clip's apex item in ``apex_fields`` (see
    :class:`~mepipe.train.inputs.flow_frames.FlowFrameDataset`).
    """

    forward: Forward = whole_model
    measured_on: str = "vote of the clip's frames (apex frame breaks ties)"

    def decide(self, predicted: ItemLogits, rows: list[np.ndarray], dataset: Dataset,
               targets: Targets) -> np.ndarray:
        out = []
        for c, r in enumerate(rows):
            r = r[np.argsort(predicted.frame[r])]
            apex = min(int(np.searchsorted(predicted.frame[r], dataset.apex_fields[c])), len(r) - 1)
            logits = predicted.logits[r]
            out.append(vote(logits, apex) if targets.kind == CLASS else vote_each(targets.decide(logits), apex))
        return targets.array(out)
