"""Metrics on confusions small enough to work out by hand (numbers in the comments)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from mepipe.train.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    per_class_f1,
    per_class_recall,
    sum_confusions,
    uar,
    uf1,
)

# Two folds of a 3-class problem.
#   fold 1: true (0, 0, 1), predicted (0, 1, 1)
#   fold 2: true (0, 1, 2), predicted (0, 2, 2)
FOLD1 = ([0, 0, 1], [0, 1, 1])
FOLD2 = ([0, 1, 2], [0, 2, 2])
# Summed confusion (rows true, columns predicted):
#   [[2, 1, 0],
#    [0, 1, 1],
#    [0, 0, 1]]
SUMMED = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_confusion_matrix_rows_are_true_classes():
    assert confusion_matrix(*FOLD1, n_classes=3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert confusion_matrix(*FOLD2, n_classes=3).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert confusion_matrix(*FOLD1, n_classes=3).dtype == np.int64
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 0], n_classes=3)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0], n_classes=3)


def test_pooled_scores_by_hand():
    folds = [confusion_matrix(*f, n_classes=3) for f in (FOLD1, FOLD2)]
    assert sum_confusions(folds).tolist() == SUMMED.tolist()
    # Accuracy: 4 of 6 right.
    assert accuracy(FOLD1[0] + FOLD2[0], FOLD1[1] + FOLD2[1]) == pytest.approx(4 / 6)
    # F1 = 2TP / (2TP + FP + FN): class 0: 4/5 = 0.8; class 1: 2/4 = 0.5; class 2: 2/3.
    assert per_class_f1(SUMMED) == pytest.approx([0.8, 0.5, 2 / 3])
    # UF1 = (0.8 + 0.5 + 0.6667) / 3 = 0.655556
    assert uf1(folds) == pytest.approx(0.655556, abs=1e-6)
    assert uf1(SUMMED) == pytest.approx(0.655556, abs=1e-6)
    # Recall: 2/3, 1/2, 1/1 -> UAR = 0.722222
    assert per_class_recall(SUMMED) == pytest.approx([2 / 3, 0.5, 1.0])
    assert uar(np.stack(folds)) == pytest.approx(0.722222, abs=1e-6)


def test_uf1_is_not_the_mean_of_fold_f1():
    # Fold 1: class 0: 2/3, class 1: 2/3, class 2 undefined -> 0.666667.
    # Fold 2: class 0: 2/2 = 1, class 1: 0/1 = 0, class 2: 2/3 -> 0.555556.
    # Their mean (0.611111) differs from the pooled UF1 (0.655556).
    assert macro_f1(*FOLD1, n_classes=3) == pytest.approx(0.666667, abs=1e-6)
    assert macro_f1(*FOLD2, n_classes=3) == pytest.approx(0.555556, abs=1e-6)


def test_absent_classes_do_not_produce_nan_or_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fold1 = confusion_matrix(*FOLD1, n_classes=3)
        f1 = per_class_f1(fold1)
        assert np.isnan(f1[2]) and not np.isnan(f1[:2]).any()
        assert not np.isnan(macro_f1(*FOLD1, n_classes=3))
        # Predicted but absent from the truth: true (0, 0), predicted (0, 1).
        # Class 0: TP 1, FN 1 -> F1 2/3, recall 1/2; class 1: FP 1 -> F1 0, recall undefined.
        assert macro_f1([0, 0], [0, 1], n_classes=2) == pytest.approx(1 / 3)
        assert uar(confusion_matrix([0, 0], [0, 1], n_classes=2)) == pytest.approx(0.5)


def test_empty_input_raises():
    with pytest.raises(ValueError, match="no class has a defined F1"):
        uf1(np.zeros((3, 3), dtype=int))
    with pytest.raises(ValueError, match="non-empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="stack"):
        uar([])
