"""Spot-then-recognise scored as MEGC 2023-2024 score it: analysis F1 of the spotted intervals, and STRS.

A spot-then-recognise system predicts intervals with a class (emotion) each.
The official STRS code (``genbing99/STRS-Metric``, ``strs_metric.py``,
class ``Evaluator``; the metric of Liong, See and Chan 2023 [1]_, used by
the MEGC 2023 and 2024 STR tracks) scores them in two steps:

1. **Spotting** (``evaluate_spotting``), per video: the predictions in
   their order each claim every truth, in the truths' order, that has IoU
   >= 0.5 with them and no earlier claim; each claim is a TP pair, a
   prediction claiming none is a FP, a truth never claimed a FN.
   ``F1_spot`` follows from TP, FP, FN pooled over videos (0 where a
   denominator is 0).
2. **Analysis** (``calculate_analysis_metrics``), over the TP pairs whose
   true class is one of the analysed classes (by default every class of the
   truth): per class c, ``TP_c`` pairs true c predicted c, ``FP_c``
   predicted c true another, ``FN_c`` true c predicted another; precision
   and recall per class (0 where undefined), averaged over the classes;
   ``F1_analysis = 2 P R / (P + R)`` of the two averages (not the mean of
   the per-class F1, reported as ``uf1``).

``STRS = F1_spot * F1_analysis``. The spotting counts equal the MEGC 2020
count of :mod:`mepipe.train.spotting_eval` except when one prediction finds
two truths (there the 2020 count's precision can exceed 1; here the
prediction is one FP-free prediction with two TP pairs).

Where this differs from the official script
-------------------------------------------
- Every video of either table counts. The script takes its subjects from
  the predictions and each subject's videos from the truth, so the truths of
  a subject without any prediction are no FN, and predictions in a video
  without truth no FP; here they are, as in the MEGC 2020 count.
- A class whose TP pairs are all true c and predicted c (or of which there
  is no pair at all) makes sklearn's ``confusion_matrix(...).ravel()`` return
  one number, and the script's ``except`` then zeroes that class's TP; here
  its pairs count (a perfect one-class result has STRS 1, not 0).
- ``F1_analysis`` is 0, not NaN, when both averages are 0.
- The analysis UAR is the mean per-class recall (``recall``); the script's
  "UAR analysis" is the mean per-class precision.
- Videos are keyed by (dataset, video), the script's by (subject, video).

Intervals are scored within one kind: ``kind="micro"`` (the STR tracks
score micro-expressions) keeps the rows of that kind; ``kind=None`` keeps
every row and pairs predictions only with truths of their own kind.

References
----------
.. [1] G.-B. Liong, J. See, C. S. Chan, "Spot-then-recognize: a
   micro-expression analysis network for seamless evaluation of long
   videos", Signal Processing: Image Communication 110, 2023.
   https://doi.org/10.1016/j.image.2022.116875; code:
   https://github.com/genbing99/STRS-Metric (``strs_metric.py``, commit eb86468).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mepipe.featurestore.safety import printable

from .spotting_eval import IOU, KINDS, SpottingCounts, interval_table, iou_matrix

__all__ = ["ClassCounts", "StrsResult", "claim_truths", "strs"]


def claim_truths(predicted: Sequence[Sequence[int]], truth: Sequence[Sequence[int]],
                 iou: float = IOU) -> list[tuple[int, int]]:
    """TP pairs (prediction index, truth index) of one video, in the STRS code's order.

    Predictions in order each claim every still unclaimed truth, in order,
    with IoU >= ``iou`` (a prediction may claim several; a truth is claimed once).
    """
    if len(predicted) == 0 or len(truth) == 0:
        return []
    hits = iou_matrix(predicted, truth) >= iou
    claimed = np.zeros(len(truth), dtype=bool)
    pairs = []
    for i, row in enumerate(hits):
        for j in np.flatnonzero(row & ~claimed):
            claimed[j] = True
            pairs.append((i, int(j)))
    return pairs


@dataclass(frozen=True)
class ClassCounts:
    """One class's counts over the TP pairs (see the module docstring)."""

    label: str
    counts: SpottingCounts

    def as_record(self) -> dict:
        return {"class": self.label, **self.counts.as_record()}


@dataclass(frozen=True)
class StrsResult:
    """Spotting, analysis and STRS figures of a spot-then-recognise run.

    Attributes
    ----------
    spotting : SpottingCounts
        TP pairs, FP, FN of the spotting step.
    classes : tuple of ClassCounts
        Per analysed class, in order.
    precision, recall : float
        Per-class precision and recall averaged over the classes (the recall
        average is the UAR of the analysis).
    analysis_f1 : float
        ``2 P R / (P + R)`` of those averages.
    uf1 : float
        Mean per-class F1.
    kind : str or None
        The kind scored (None: every kind).
    """

    spotting: SpottingCounts
    classes: tuple[ClassCounts, ...]
    precision: float
    recall: float
    analysis_f1: float
    uf1: float
    kind: str | None

    @property
    def strs(self) -> float:
        """STRS = F1_spot x F1_analysis."""
        return self.spotting.f1 * self.analysis_f1

    def as_record(self) -> dict:
        return {"strs": self.strs, "kind": self.kind, "spotting": self.spotting.as_record(),
                "analysis": {"f1": self.analysis_f1, "precision": self.precision, "recall": self.recall,
                             "uf1": self.uf1, "classes": [c.as_record() for c in self.classes]}}


def strs(predictions: pd.DataFrame | Iterable, truth: pd.DataFrame | Iterable, *, kind: str | None = "micro",
         iou: float = IOU, classes: Sequence[str] | None = None) -> StrsResult:
    """STRS of predicted, classified intervals against the annotated ones (MEGC 2023-2024).

    Parameters
    ----------
    predictions, truth : interval tables with an ``emotion`` column
        See :func:`mepipe.train.spotting_eval.interval_table`; ``emotion`` is
        the predicted class, respectively the true one (compared as text).
    kind : {"micro", "macro"} or None
        The kind scored; None scores every row, pairing within kinds.
    iou : float
    classes : sequence of str, optional
        The analysed classes; by default every class of the (kept) truth, sorted.

    Returns
    -------
    StrsResult
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} or None, got {kind!r}")
    kinds = KINDS if kind is None else (kind,)
    pred = interval_table(predictions, "predictions", required=("emotion",), kinds=kinds)
    real = interval_table(truth, "truth", required=("emotion",), kinds=kinds)
    labels = tuple(sorted(set(real["emotion"]))) if classes is None else tuple(str(c) for c in classes)
    if len(set(labels)) != len(labels):
        raise ValueError(f"classes are repeated: {', '.join(printable(c) for c in labels)}")
    pred_groups = dict(tuple(pred.groupby(["dataset", "video", "kind"], sort=False)))
    real_groups = dict(tuple(real.groupby(["dataset", "video", "kind"], sort=False)))
    spotting, pairs = SpottingCounts(), []
    for key in set(pred_groups) | set(real_groups):
        p = pred_groups.get(key, pred.iloc[:0])
        t = real_groups.get(key, real.iloc[:0])
        claimed = claim_truths(p[["onset", "offset"]].to_numpy(), t[["onset", "offset"]].to_numpy(), iou)
        spotting += SpottingCounts(len(claimed), len(p) - len({i for i, _ in claimed}), len(t) - len(claimed))
        pairs += [(p["emotion"].iloc[i], t["emotion"].iloc[j]) for i, j in claimed]
    analysed = [(said, true) for said, true in pairs if true in labels]
    per_class = tuple(ClassCounts(c, SpottingCounts(sum(s == c and t == c for s, t in analysed),
                                                    sum(s == c and t != c for s, t in analysed),
                                                    sum(s != c and t == c for s, t in analysed)))
                      for c in labels)
    precision = float(np.mean([c.counts.precision for c in per_class])) if per_class else 0.0
    recall = float(np.mean([c.counts.recall for c in per_class])) if per_class else 0.0
    return StrsResult(
        spotting=spotting, classes=per_class, precision=precision, recall=recall,
        analysis_f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        uf1=float(np.mean([c.counts.f1 for c in per_class])) if per_class else 0.0, kind=kind)

