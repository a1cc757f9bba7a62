"""Classification and spotting metrics of micro-expression recognition.

Everything derives from confusion matrices with rows = true class and
columns = predicted class. UF1 and UAR follow the MEGC 2019 composite
protocol: per-class counts are summed over all folds first, then the
per-class F1 / recall are averaged over classes.

Undefined per-class values: the F1 of a class that is neither in the truth
nor among the predictions (TP + FP + FN = 0), and the recall of a class
absent from the truth (TP + FN = 0), are undefined. They are NaN in the
per-class arrays and left out of the class averages, so a LOSO fold whose
subject shows only two of three classes is averaged over the classes it can
say something about. A class that is predicted but absent from the truth has
a defined F1 of 0 (its false positives count). An average over no defined
class raises.

Action units (multi-label, AU detection) follow MEB's evaluation code
(tvaranka/meb ``meb/utils/metrics.py``, ``MultiLabelF1Score``: scikit-learn's
``f1_score`` on each AU's column): :func:`au_f1` gives each AU's binary F1
(of "shown") and its macro F1 (the mean of the F1 of "shown" and of "not
shown" over the values that occur in the truth or the predictions). There an
F1 with nothing to count is 0, as scikit-learn's ``zero_division`` makes it,
not left out: an AU never shown nor predicted scores binary F1 0 and macro
F1 1.

Spotting (Nag et al. 2019 predict a per-frame intensity): the frame-level
ROC AUC of the intensity against the sheet's onset..offset
(:func:`roc_auc`, over every frame with a prediction, inside and outside
the expression), and, as in the MEGC spotting challenges, intervals spotted
on each clip's curve by a relative threshold (:func:`spotted_intervals`)
scored against the annotated onset..offset by the MEGC 2020 count of
:mod:`mepipe.train.spotting_eval` (each clip one video, IoU >= 0.5);
:func:`spotting_report` gives both, and says why the AUC is undefined when
it is.

References
----------
.. [1] J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - the second
   facial micro-expressions grand challenge", IEEE FG 2019.
   https://doi.org/10.1109/FG.2019.8756611 (spotting: IoU >= 0.5)
.. [2] Y. He, S.-J. Wang, J. Li, M. H. Yap, "Spotting macro- and
   micro-expression intervals in long video sequences", IEEE FG 2020.
   https://doi.org/10.1109/FG47880.2020.00036 (the MEGC 2020 count)
.. [3] T. Varanka, Y. Li, W. Peng, G. Zhao, "Data leakage and evaluation
   issues in micro-expression analysis", IEEE Trans. Affective Computing
   15(1), 2024 (AU F1). https://doi.org/10.1109/TAFFC.2023.3265063
.. [4] A. Moilanen, G. Zhao, M. Pietikäinen, "Spotting rapid facial movements
   from videos using appearance-based feature difference analysis", ICPR
   2014 (the threshold C_mean + p (C_max - C_mean)).
   https://doi.org/10.1109/ICPR.2014.303
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .spotting_eval import IOU, spotting_counts

__all__ = [
    "AuF1",
    "accuracy",
    "au_f1",
    "confusion_matrix",
    "macro_f1",
    "per_class_f1",
    "per_class_recall",
    "roc_auc",
    "runs_of",
    "spotted_intervals",
    "spotting_report",
    "sum_confusions",
    "uar",
    "uf1",
]


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
        Class indices in 0..n_classes-1.
    n_classes : int
        Number of classes, so that classes absent here still get a row.

    Returns
    -------
    ndarray, shape (n_classes, n_classes), int64
        ``C[i, j]`` = samples of true class i predicted as j.
    """
    true, pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} holds classes outside 0..{n_classes - 1}: {sorted(set(values.tolist()))}")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def sum_confusions(confusions: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """One (n, n) confusion from one matrix or a stack/list of per-fold matrices."""
    stack = np.asarray(confusions)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2] or stack.shape[0] == 0:
        raise ValueError(f"need an (n, n) confusion or a non-empty stack (F, n, n), got shape {stack.shape}")
    if (stack < 0).any():
        raise ValueError("confusion counts must be non-negative")
    return stack.sum(axis=0)


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) per class; NaN where TP + FP + FN = 0."""
    matrix = sum_confusions(confusion).astype(np.float64)
    tp = np.diag(matrix)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # (TP + FP) + (TP + FN)
    return np.divide(2 * tp, denominator, out=np.full_like(tp, np.nan), where=denominator > 0)


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall = TP / (TP + FN) per class; NaN for classes absent from the truth."""
    matrix = sum_confusions(confusion).astype(np.float64)
    support = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), support, out=np.full(len(support), np.nan), where=support > 0)


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Share of samples whose predicted class is the true class."""
    true, pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if true.shape != pred.shape or true.size == 0:
        raise ValueError(f"need equally long, non-empty y_true and y_pred, got {true.size} and {pred.size}")
    return float(np.mean(true == pred))


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    """Mean per-class F1 of one set of predictions (classes with undefined F1 left out)."""
    return _class_mean(per_class_f1(confusion_matrix(y_true, y_pred, n_classes)), "F1")


def uf1(confusions: np.ndarray | Sequence[np.ndarray]) -> float:
    """Unweighted F1 (MEGC): per-class F1 of the confusion summed over folds, averaged over classes.

    Parameters
    ----------
    confusions : ndarray (n, n) or (F, n, n), or list of (n, n)
        Per-fold confusion matrices (or their sum).
    """
    return _class_mean(per_class_f1(confusions), "F1")


def uar(confusions: np.ndarray | Sequence[np.ndarray]) -> float:
    """Unweighted average recall (MEGC): per-class recall of the summed confusion, averaged over classes."""
    return _class_mean(per_class_recall(confusions), "recall")


@dataclass(frozen=True)
class AuF1:
    """F1 of each action unit of multi-label predictions (MEB's per-AU figures).

    Attributes
    ----------
    binary : ndarray, float64, shape (K,)
        F1 of "shown": 2TP / (2TP + FP + FN); 0 where TP + FP + FN = 0.
    macro : ndarray, float64, shape (K,)
        Mean of the F1 of "shown" and of "not shown" (2TN / (2TN + FN + FP)),
        over those of the two that occur in the AU's truth or predictions.
    positives, predicted : ndarray, int64, shape (K,)
        Clips showing the AU, and clips predicted to show it.
    """

    binary: np.ndarray
    macro: np.ndarray
    positives: np.ndarray
    predicted: np.ndarray


def au_f1(y_true: np.ndarray, y_pred: np.ndarray) -> AuF1:
    """Per-AU binary and macro F1 of multi-hot predictions, as MEB computes them.

    Parameters
    ----------
    y_true, y_pred : array-like of {0, 1}, shape (N, K)
        N clips, K action units; 1 where the clip shows (is predicted to show) the AU.

    Returns
    -------
    AuF1
    """
    true, pred = (_multi_hot(v, name) for v, name in ((y_true, "y_true"), (y_pred, "y_pred")))
    if true.shape != pred.shape or true.shape[0] == 0:
        raise ValueError(f"need equally shaped, non-empty y_true and y_pred, got {true.shape} and {pred.shape}")
    tp = (true & pred).sum(axis=0)
    fp = (~true & pred).sum(axis=0)
    fn = (true & ~pred).sum(axis=0)
    tn = (~true & ~pred).sum(axis=0)
    shown, hidden = _f1(tp, fp, fn), _f1(tn, fn, fp)
    has_shown = (tp + fp + fn) > 0  # "shown" occurs in the truth or the predictions
    has_hidden = (tn + fn + fp) > 0
    macro = (shown * has_shown + hidden * has_hidden) / (has_shown.astype(int) + has_hidden.astype(int))
    return AuF1(shown, macro, true.sum(axis=0).astype(np.int64), pred.sum(axis=0).astype(np.int64))


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """2TP / (2TP + FP + FN), 0 where nothing is counted (scikit-learn's ``zero_division``)."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)


def _multi_hot(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be (clips, AUs), got shape {array.shape}")
    if array.size and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold 0 or 1, got values {sorted(set(array.ravel().tolist()))[:5]}")
    return array.astype(bool)


def _class_mean(values: np.ndarray, what: str) -> float:
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        raise ValueError(f"no class has a defined {what}: the confusion holds no samples")
    return float(defined.mean())


def _labels(values: Sequence[int], name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    return array.astype(np.int64)


def roc_auc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Area under the ROC curve, by the Mann-Whitney U statistic (spotting metric of Nag et al. 2019).

    ``AUC = U / (n_pos * n_neg)`` where U counts, over all (positive,
    negative) pairs, 1 when the positive scores higher and 1/2 on a tie —
    the probability that a random positive outranks a random negative. It
    equals the trapezoidal area under the ROC curve. Computed from mid-ranks
    (tied scores share the mean of their ranks):
    ``U = R_pos - n_pos (n_pos + 1) / 2`` with R_pos the positives' rank sum.

    Parameters
    ----------
    scores : array-like of float, shape (N,)
        Higher = more likely positive (e.g. predicted per-frame intensity).
    positives : array-like of bool or {0, 1}, shape (N,)
        True for the positive samples (e.g. frames inside onset..offset).

    Returns
    -------
    float
        AUC in [0, 1]: 1 when every positive outscores every negative, 0.5
        for uninformative (e.g. all-equal) scores.

    Raises
    ------
    ValueError
        When the arrays differ in length, are not 1-D, scores are not finite,
        labels are not boolean/0-1, or either class is absent (AUC undefined).
    """
    score = np.asarray(scores, dtype=np.float64)
    label = np.asarray(positives)
    if score.ndim != 1 or label.ndim != 1:
        raise ValueError(f"scores and positives must be one-dimensional, got shapes {score.shape} and {label.shape}")
    if score.shape != label.shape:
        raise ValueError(f"scores and positives differ in length: {score.size} vs {label.size}")
    if not np.isfinite(score).all():
        raise ValueError(f"scores hold non-finite values at {np.flatnonzero(~np.isfinite(score)).tolist()}")
    if label.dtype != np.bool_:
        if label.size and not np.isin(label, (0, 1)).all():
            raise ValueError(f"positives must be boolean or 0/1, got values {sorted(set(label.tolist()))}")
        label = label.astype(bool)
    n_pos = int(label.sum())
    n_neg = label.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs both classes, got {n_pos} positive(s) and {n_neg} negative(s)")
    # Mid-ranks (1-based): a value held by `count` samples after `before` smaller ones
    # occupies ranks before+1 .. before+count, mean before + (count + 1) / 2.
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    before = np.cumsum(counts) - counts
    ranks = (before + (counts + 1) / 2.0)[inverse]
    u = ranks[label].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _curve(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in np.asarray(values, dtype=object).ravel()], dtype=np.float64)


def _pooled(intensity: Sequence, spans: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth of every predicted frame of every clip (frames without a prediction left out)."""
    scores, truth = [np.empty(0)], [np.empty(0, dtype=bool)]
    for curve, span in zip(intensity, spans):
        curve = _curve(curve)
        span = np.asarray(span, dtype=np.float64).ravel()
        if curve.shape != span.shape:
            raise ValueError(f"an intensity curve of {curve.size} frames has a span of {span.size}")
        known = np.isfinite(curve)
        scores.append(curve[known])
        truth.append(span[known] > 0.5)
    return np.concatenate(scores), np.concatenate(truth)


# --- interval-level spotting (MEGC) ----------------------------------------------------------


def runs_of(mask: Sequence[bool]) -> list[tuple[int, int]]:
    """(first, last) indices, inclusive, of each run of True values."""
    mask = np.asarray(mask, dtype=bool).ravel()
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return [(int(a), int(b) - 1) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def spotted_intervals(curve: Sequence[float | None], p: float = 0.5, min_frames: int = 1) -> list[tuple[int, int]]:
    """Intervals spotted on one clip's predicted intensity curve by a relative threshold.

    The threshold is ``T = C_mean + p (C_max - C_mean)`` over the clip's
    predicted frames (Moilanen et al. 2014, the MEGC spotting baselines'
    rule); each maximal run of consecutive frames with intensity >= T and
    at least ``min_frames`` long is one interval. A frame without a
    prediction (NaN or None) breaks a run; a flat curve (max = mean) spots
    nothing.

    Parameters
    ----------
    curve : sequence of float or None, shape (T,)
    p : float
        In [0, 1]: 0 keeps every frame at or above the mean, 1 only the maximum.
    min_frames : int

    Returns
    -------
    list of (int, int)
        (first, last) frame indices of the curve, inclusive.
    """
    if not 0 <= p <= 1 or min_frames < 1:
        raise ValueError(f"need 0 <= p <= 1 and min_frames >= 1, got p={p!r}, min_frames={min_frames!r}")
    values = _curve(curve)
    known = np.isfinite(values)
    if not known.any():
        return []
    mean, top = float(values[known].mean()), float(values[known].max())
    if top - mean <= 1e-12:
        return []
    above = known & (np.where(known, values, -np.inf) >= mean + p * (top - mean))
    return [(a, b) for a, b in runs_of(above) if b - a + 1 >= min_frames]


def spotting_report(intensity: Sequence, spans: Sequence, p: float = 0.5, iou: float = IOU) -> dict:
    """Frame-level and interval-level spotting figures of predicted intensity curves (Nag 2019; MEGC).

    Parameters
    ----------
    intensity : sequence of array-like
        Each clip's predicted intensity per frame (None / NaN: no prediction).
    spans : sequence of array-like
        Each clip's onset..offset indicator on the same frames.
    p : float
        Threshold of :func:`spotted_intervals`.
    iou : float
        IoU a spotted interval needs to count (MEGC: 0.5).

    Returns
    -------
    dict
        ``frames``, ``inside``, ``outside`` (predicted frames in and out of
        onset..offset), ``auc`` (None when undefined) and ``auc_note`` saying
        why, and ``intervals``: the MEGC 2020 counts and figures
        (:meth:`~mepipe.train.spotting_eval.SpottingCounts.as_record`) of the
        intervals spotted with ``p`` against each clip's annotated interval,
        with ``p`` and ``iou``. The annotated interval is the run of frames
        inside onset..offset, whether or not the network predicted them (a
        frame without a prediction inside it neither splits nor shortens it).
    """
    scores, truth = _pooled(intensity, spans)
    inside = int(truth.sum())
    outside = int(truth.size - inside)
    out: dict = {"frames": int(truth.size), "inside": inside, "outside": outside, "auc": None}
    if truth.size == 0:
        out["auc_note"] = "no frame has a predicted intensity"
    elif outside == 0:
        out["auc_note"] = ("every predicted frame lies inside onset..offset (the clip folders hold only the "
                           "expression's frames, as CASME II's raw folders do), so the ROC AUC, which needs frames "
                           "outside it, is undefined")
    elif inside == 0:
        out["auc_note"] = "no predicted frame lies inside onset..offset (no sheet onset/offset?): the ROC AUC is undefined"
    else:
        out["auc"] = roc_auc(scores, truth)
    spotted = [spotted_intervals(curve, p) for curve in intensity]
    annotated = [runs_of(np.asarray(span, dtype=np.float64).ravel() > 0.5) for span in spans]
    out["intervals"] = {**spotting_counts(spotted, annotated, iou).as_record(), "p": p, "iou": iou}
    return out
