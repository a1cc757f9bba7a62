"""ROC AUC (spotting, Nag 2019) on examples small enough to count by hand."""
from __future__ import annotations

import numpy as np
import pytest

from mepipe.train.metrics import roc_auc


def test_roc_auc_by_hand_with_ties():
    # Positives score (0.9, 0.5, 0.5); negatives score (0.5, 0.2).
    # Pairs (positive, negative):
    #   0.9 vs 0.5 -> 1,   0.9 vs 0.2 -> 1
    #   0.5 vs 0.5 -> 1/2, 0.5 vs 0.2 -> 1   (first 0.5 positive)
    #   0.5 vs 0.5 -> 1/2, 0.5 vs 0.2 -> 1   (second 0.5 positive)
    # U = 1 + 1 + 0.5 + 1 + 0.5 + 1 = 5 over 3 * 2 = 6 pairs -> AUC = 5/6.
    # Via mid-ranks: sorted 0.2 (rank 1), three 0.5 (ranks 2, 3, 4 -> 3 each), 0.9 (rank 5);
    # R_pos = 5 + 3 + 3 = 11, U = 11 - 3 * 4 / 2 = 5.
    scores = [0.9, 0.5, 0.5, 0.5, 0.2]
    positives = [True, True, True, False, False]
    assert roc_auc(scores, positives) == pytest.approx(5 / 6)
    assert roc_auc(scores, [1, 1, 1, 0, 0]) == pytest.approx(5 / 6)  # 0/1 labels too


def test_roc_auc_extremes():
    positives = [False, False, True, True]
    assert roc_auc([0.1, 0.2, 0.3, 0.4], positives) == 1.0  # every positive above every negative
    assert roc_auc([0.4, 0.3, 0.2, 0.1], positives) == 0.0  # reversed
    assert roc_auc([0.7, 0.7, 0.7, 0.7], positives) == 0.5  # all ties: each pair counts 1/2


def test_roc_auc_equals_counting_all_pairs():
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = int(rng.integers(5, 60))
        scores = rng.integers(0, 6, size=n) / 5.0  # few distinct values -> many ties
        positives = rng.random(n) < 0.4
        positives[:2] = [True, False]  # both classes present
        expected = 0.0
        for p in scores[positives]:
            for q in scores[~positives]:
                expected += 1.0 if p > q else 0.5 if p == q else 0.0
        expected /= positives.sum() * (~positives).sum()
        assert roc_auc(scores, positives) == pytest.approx(expected, abs=1e-12)
        continuous = rng.normal(size=n)
        assert roc_auc(continuous, positives) + roc_auc(-continuous, positives) == pytest.approx(1.0)


def test_roc_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc([0.1, 0.2, 0.3], [True, False])
    with pytest.raises(ValueError, match="0/1"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="non-finite"):
        roc_auc([0.1, np.nan], [True, False])
