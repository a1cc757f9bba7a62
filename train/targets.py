"""What a run trains a network to predict: a class per clip, or the action units a clip shows.

``--labels SCHEME`` names a label scheme (:mod:`mepipe.train.labels`): one
class per clip (:class:`ClassTargets`). ``--labels au:SET`` names an AU
vocabulary (:class:`AuTargets`): ``au:meb-cross`` and the other
:data:`~mepipe.train.labels.AU_SETS`, or AU numbers such as ``au:4+12``; a
clip's target is the multi-hot vector of the vocabulary's AUs it shows (its
stored ``au_codes``), AU detection as MEB trains and scores it.

The kind of target decides what a run does differently for the two, so that
every recipe whose stages end in a class head (a plain classification
objective and a logit clip rule, which declare ``label_kinds``) trains either
with no code of its own:

- the network's head: one logit per class, or one per AU;
- the training loss: the recipe's own for classes; for AUs binary
  cross-entropy with logits averaged over AUs and clips (MEB's
  ``MultiLabelBCELoss``, unweighted), whatever the recipe's class loss;
- a clip's decision from its logits: the argmax, or each AU whose logit is
  above 0 (sigmoid above 0.5, MEB's ``torch.where(outputs > 0, 1, 0)``);
- the figures: accuracy, macro F1, UF1, UAR and the confusion; or each AU's
  binary and macro F1 and their means (:func:`~mepipe.train.metrics.au_f1`),
  per dataset too, and the mean over datasets (MEB's "Average" row);
- the validation score that chooses epochs: UF1, or the mean macro F1.

References
----------
.. [1] T. Varanka, Y. Li, W. Peng, G. Zhao, "Data leakage and evaluation
   issues in micro-expression analysis", IEEE Trans. Affective Computing
   15(1), 2024; tvaranka/meb ``meb/core/train_eval.py`` (``Config``:
   ``MultiLabelBCELoss``, ``MultiLabelF1Score``), ``meb/utils/metrics.py``.
   https://doi.org/10.1109/TAFFC.2023.3265063
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import metrics
from .labels import AU_SETS, apply_scheme, au_matrix, get_scheme, list_schemes

__all__ = ["AU", "AU_PREFIX", "CLASS", "AuTargets", "ClassTargets", "Targets", "class_figures", "correct_decisions",
           "known_labels", "parse_targets"]

CLASS = "class"
AU = "au"
AU_PREFIX = "au:"
"""``--labels au:SET`` trains AU targets."""

AU_LOGIT_THRESHOLD = 0.0
"""An AU is predicted where its logit is above this (sigmoid above 0.5), as MEB decides."""

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def class_figures(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, macro F1, UF1, UAR and the confusion matrix of one set of clip predictions."""
    confusion = metrics.confusion_matrix(y_true, y_pred, n_classes)
    return {"accuracy": metrics.accuracy(y_true, y_pred), "macro_f1": metrics.macro_f1(y_true, y_pred, n_classes),
            "uf1": metrics.uf1(confusion), "uar": metrics.uar(confusion), "confusion": confusion.tolist()}


def multilabel_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, the mean over every (clip, AU) pair (MEB's ``MultiLabelBCELoss``)."""
    return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))


def correct_decisions(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(right decisions, decisions) of a training batch: clips whose argmax is their class, or, for AU targets
    (``y`` float (B, K)), (clip, AU) pairs whose logit is on the side of the threshold that ``y`` says."""
    if y.is_floating_point():
        return int(((logits > AU_LOGIT_THRESHOLD) == (y > 0.5)).sum()), int(y.numel())
    return int((logits.argmax(1) == y).sum()), len(y)


@dataclass(frozen=True)
class ClassTargets:
    """One class per clip, given by a label scheme.

    Attributes
    ----------
    name : str
        The scheme (``--labels``).
    classes : tuple of str
        Class names; a class's index is its position here.
    """

    name: str = ""
    classes: tuple[str, ...] = ()
    kind: ClassVar[str] = CLASS
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1", "uf1", "uar")
    """The run's summary figures (``mean_over_folds``, ``mepipe reproduce``)."""
    validation: ClassVar[tuple[str, ...]] = ("uf1", "accuracy")
    """Figures of the validation clips recorded each epoch (``val_uf1`` ...); the first chooses the epoch."""

    @property
    def names(self) -> tuple[str, ...]:
        """What the network's outputs stand for."""
        return self.classes

    def label(self, samples: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """(target of every labelled sample, mask of the samples the scheme leaves out), indexed like ``samples``."""
        labels, _, _ = apply_scheme(samples, self.name)
        return labels, pd.Series(~samples.index.isin(labels.index), index=samples.index)

    def training_loss(self, recipe_loss: Loss) -> Loss:
        """The recipe's own loss."""
        return recipe_loss

    def decide(self, logits: np.ndarray) -> np.ndarray:
        """Class of each row of logits (n, C): its argmax, int64 (n,)."""
        return np.asarray(logits).argmax(axis=-1).astype(np.int64)

    def array(self, values: Sequence[Any]) -> np.ndarray:
        """Targets or predictions as an array: class indices, int64 (n,)."""
        return np.asarray(values, dtype=np.int64).reshape(-1)

    def row(self, value: Any) -> int:
        """One clip's target or prediction as a prediction row writes it."""
        return int(value)

    def figures(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
        """Accuracy, macro F1, UF1, UAR and confusion (:func:`class_figures`)."""
        return class_figures(self.array(y_true), self.array(y_pred), len(self.classes))

    def counts(self, values: Sequence[Any]) -> dict[str, int]:
        """Clips per class."""
        found = np.bincount(self.array(values), minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, found)}

    def summary(self, per_dataset: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        """Run-level figures beyond the pooled ones: none for classes."""
        return {}


@dataclass(frozen=True)
class AuTargets:
    """The action units a clip shows, over a vocabulary: multi-label AU detection.

    Attributes
    ----------
    name : str
        As given (``au:meb-cross``).
    aus : tuple of int
        The vocabulary; the network has one output per AU, in this order.
    """

    name: str
    aus: tuple[int, ...]
    kind: ClassVar[str] = AU
    metrics: ClassVar[tuple[str, ...]] = ("f1_macro", "f1_binary")
    validation: ClassVar[tuple[str, ...]] = ("f1_macro", "f1_binary")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"AU{au}" for au in self.aus)

    def label(self, samples: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """(multi-hot vector of every AU-coded sample, mask of the samples without an AU cell).

        A clip whose sheet has no AU cell (SMIC codes none; an empty cell)
        has no AU target and is left out; a coded clip showing none of the
        vocabulary's AUs is kept with an all-zero vector, as MEB keeps it.
        """
        if "action_units" not in samples.columns:
            raise KeyError("samples lack the column 'action_units'; a store built before AU codes were stored "
                           "needs `mepipe build` again (its cached stages are kept) to write it")
        uncoded = samples["action_units"].fillna("").astype(str).str.strip().eq("").to_numpy()
        coded = samples[~uncoded]
        matrix, _ = au_matrix(coded, self.aus)
        return pd.Series(list(matrix), index=coded.index, name="label", dtype=object), pd.Series(uncoded,
                                                                                               index=samples.index)

    def training_loss(self, recipe_loss: Loss) -> Loss:
        """Binary cross-entropy with logits (:func:`multilabel_loss`), whatever the recipe's class loss."""
        return multilabel_loss

    def decide(self, logits: np.ndarray) -> np.ndarray:
        """AUs of each row of logits (n, K): 1 where the logit is above :data:`AU_LOGIT_THRESHOLD`, uint8."""
        return (np.asarray(logits) > AU_LOGIT_THRESHOLD).astype(np.uint8)

    def array(self, values: Sequence[Any]) -> np.ndarray:
        """Targets or predictions as an array: multi-hot uint8 (n, K)."""
        return np.asarray(list(values), dtype=np.uint8).reshape(-1, len(self.aus))

    def row(self, value: Any) -> list[int]:
        """One clip's AU vector as a prediction row writes it: 0/1 per AU of :attr:`names`."""
        return [int(v) for v in np.asarray(value).reshape(-1)]

    def figures(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
        """Mean binary and macro F1 over the AUs and each AU's (:func:`~mepipe.train.metrics.au_f1`)."""
        scores = metrics.au_f1(self.array(y_true), self.array(y_pred))
        per_au = {name: {"f1_binary": float(b), "f1_macro": float(m), "positives": int(p), "predicted": int(q)}
                  for name, b, m, p, q in zip(self.names, scores.binary, scores.macro, scores.positives,
                                              scores.predicted)}
        return {"f1_macro": float(scores.macro.mean()), "f1_binary": float(scores.binary.mean()), "per_au": per_au}

    def counts(self, values: Sequence[Any]) -> dict[str, int]:
        """Clips showing each AU."""
        totals = self.array(values).sum(axis=0)
        return {name: int(n) for name, n in zip(self.names, totals)}

    def summary(self, per_dataset: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        """``dataset_mean``: each mean F1 averaged over the datasets tested (MEB's "Average" of the datasets)."""
        if not per_dataset:
            return {}
        return {"dataset_mean": {m: float(np.mean([row[m] for row in per_dataset.values()])) for m in self.metrics}}


Targets = Union[ClassTargets, AuTargets]
"""A run's targets."""

_AU_NUMBERS = re.compile(r"\d+(?:[+,]\d+)*")


def parse_targets(labels: str) -> Targets:
    """The targets ``--labels`` names: a label scheme, or ``au:`` and an AU set or AU numbers (``au:4+12``).

    Raises
    ------
    KeyError
        An unknown scheme or AU set, naming the known ones.
    """
    if not labels.startswith(AU_PREFIX):
        return ClassTargets(labels, get_scheme(labels).classes)
    spec = labels[len(AU_PREFIX):].strip()
    if spec in AU_SETS:
        return AuTargets(labels, tuple(AU_SETS[spec]))
    if _AU_NUMBERS.fullmatch(spec):
        aus = tuple(dict.fromkeys(int(a) for a in re.split(r"[+,]", spec)))
        return AuTargets(labels, aus)
    raise KeyError(f"unknown AU set {spec!r} in --labels {labels}; known: {', '.join(sorted(AU_SETS))}, "
                   "or AU numbers such as au:4+12")


def known_labels() -> list[str]:
    """Every ``--labels`` value with a name: the label schemes and ``au:`` with each AU set."""
    return list_schemes() + [f"{AU_PREFIX}{name}" for name in sorted(AU_SETS)]
