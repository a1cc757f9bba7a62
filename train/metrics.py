"""Classification metrics of micro-expression recognition (SPEC §4).

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

References
----------
.. [1] J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - the second
   facial micro-expressions grand challenge", IEEE FG 2019.
   https://doi.org/10.1109/FG.2019.8756611
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "accuracy",
    "confusion_matrix",
    "macro_f1",
    "per_class_f1",
    "per_class_recall",
    "roc_auc",
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


def spotting_auc(intensity: Sequence[np.ndarray], spans: Sequence[np.ndarray]) -> float | None:
    """ROC AUC of predicted per-frame intensity against the onset..offset span, over all given frames.

    Parameters
    ----------
    intensity : sequence of ndarray
        Predicted intensity of each clip's frames.
    spans : sequence of ndarray
        1 (or > 0.5) for the frames inside the clip's onset..offset, aligned with ``intensity``.

    Returns
    -------
    float or None
        None when the frames are all inside or all outside a span (the AUC is undefined).
    """
    scores = np.concatenate([np.asarray(v, dtype=np.float64) for v in intensity]) if len(intensity) else np.empty(0)
    truth = np.concatenate([np.asarray(v) > 0.5 for v in spans]) if len(spans) else np.empty(0, dtype=bool)
    if truth.size == 0 or truth.all() or not truth.any():
        return None
    return roc_auc(scores, truth)
