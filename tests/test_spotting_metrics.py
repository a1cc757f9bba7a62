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


# --- every frame, and intervals (MEGC) ----------------------------------------------------------


def test_spotting_report_uses_frames_outside_onset_offset_and_says_when_there_are_none():
    from mepipe.train.metrics import spotting_report

    # Clip 1: frames 1..5 predicted (frame 0 ends no pair), onset..offset = frames 2..4.
    # Clip 2: frames 1..3, a gap leaves frame 2 without a prediction; all inside onset..offset.
    curves = [[0.1, 0.7, 0.9, 0.6, 0.2], [0.3, None, 0.8]]
    spans = [[0, 1, 1, 1, 0], [1, 1, 1]]
    report = spotting_report(curves, spans)
    # Positives 0.7, 0.9, 0.6, 0.3, 0.8; negatives 0.1, 0.2: every positive outranks both -> AUC 1.
    assert (report["frames"], report["inside"], report["outside"]) == (7, 5, 2) and report["auc"] == 1.0
    # Only clip 2, as a CASME II raw folder (onset..offset only): no negative frame, and the report says so.
    only_inside = spotting_report(curves[1:], spans[1:])
    assert only_inside["auc"] is None and only_inside["outside"] == 0
    assert "every predicted frame lies inside onset..offset" in only_inside["auc_note"]


def test_spotted_intervals_by_hand():
    from mepipe.train.metrics import spotted_intervals

    # mean = (0.1 + 0.2 + 0.8 + 0.9 + 0.3 + 0.7) / 6 = 0.5, max 0.9: p = 0.5 -> T = 0.7.
    curve = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]
    assert spotted_intervals(curve, p=0.5) == [(2, 3), (5, 5)]
    assert spotted_intervals(curve, p=0.5, min_frames=2) == [(2, 3)]
    assert spotted_intervals(curve, p=1.0) == [(3, 3)]  # T = max
    assert spotted_intervals(curve, p=0.0) == [(2, 3), (5, 5)]  # T = mean = 0.5
    # A missing frame breaks a run (mean of the rest: (0.1 + 0.8 + 0.9 + 0.8) / 4 = 0.65, T = 0.775).
    assert spotted_intervals([0.1, 0.8, None, 0.9, 0.8], p=0.5) == [(1, 1), (3, 4)]
    assert spotted_intervals([0.4, 0.4, 0.4]) == []  # flat: nothing stands out


def test_interval_iou_and_f1_by_hand():
    from mepipe.train.metrics import interval_f1, interval_iou

    # [2, 6] and [4, 9]: intersection 4..6 = 3 frames, union 2..9 = 8 frames.
    assert interval_iou((2, 6), (4, 9)) == pytest.approx(3 / 8)
    assert interval_iou((0, 3), (5, 7)) == 0.0 and interval_iou((3, 5), (3, 5)) == 1.0
    # Clip 1: truth [10, 19]; spotted [12, 19] (IoU 8/10 = 0.8, TP) and [11, 18] (IoU 0.8 too, but the truth is
    #   taken: FP). Clip 2: truth [5, 9]; spotted [8, 12] (IoU 2/8 = 0.25: FP), the truth missed (FN).
    # Clip 3: no truth, spotted [0, 1]: FP.  TP 1, FP 3, FN 1 -> F1 = 2/(2 + 3 + 1) = 1/3.
    figures = interval_f1([[(12, 19), (11, 18)], [(8, 12)], [(0, 1)]], [[(10, 19)], [(5, 9)], []])
    assert (figures["tp"], figures["fp"], figures["fn"]) == (1, 3, 1)
    assert figures["precision"] == pytest.approx(0.25) and figures["recall"] == pytest.approx(0.5)
    assert figures["f1"] == pytest.approx(1 / 3)
    # IoU exactly 0.5 counts: [0, 3] vs [0, 7] -> 4/8.
    assert interval_f1([[(0, 3)]], [[(0, 7)]])["tp"] == 1
    assert interval_f1([[]], [[]])["f1"] is None
