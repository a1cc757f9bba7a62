"""Spot-then-recognise (MEGC 2023-2024 STRS) on examples counted by hand in the comments."""
from __future__ import annotations

import pytest

from mepipe.train.spotting_eval import spotting_table
from mepipe.train.strs import claim_truths, strs


def _row(video, onset, offset, emotion, kind="micro", dataset="demo-lv"):
    return {"dataset": dataset, "video": video, "onset": onset, "offset": offset, "kind": kind, "emotion": emotion}


# Video A: truths T1 [10, 19] happiness, T2 [40, 49] surprise. Predictions, in order:
#   P1 [11, 19] happiness: IoU 9/10 with T1 -> pair (said happiness, true happiness)
#   P2 [12, 19] surprise:  IoU 8/10 with T1, claimed already -> FP (a second prediction on one truth)
#   P3 [40, 50] happiness: IoU 10/11 with T2 -> pair (said happiness, true surprise)
# Video B (no truth): P4 [0, 5] negative -> FP.   Video C: T3 [100, 109] disgust, no prediction -> FN.
# Video D: T4 [200, 209] surprise; P5 [200, 209] surprise -> pair (surprise, surprise).
# A macro truth and prediction in video A ([300, 399] happiness) are left out when scoring micro-expressions.
# Spotting: TP 3, FP 2, FN 1 -> P 3/5, R 3/4, F1 = 2 (9/20) / (27/20) = 2/3.
# Analysis over the 3 pairs, classes = the truth's {disgust, happiness, surprise}:
#   disgust:   TP 0, FP 0, FN 0 -> P 0,   R 0,   F1 0
#   happiness: TP 1, FP 1, FN 0 -> P 1/2, R 1,   F1 2/3
#   surprise:  TP 1, FP 0, FN 1 -> P 1,   R 1/2, F1 2/3
#   mean P = 1/2, mean R = 1/2 -> F1_analysis = 1/2 (the mean per-class F1, UF1, is 4/9 instead).
# STRS = 2/3 * 1/2 = 1/3.
PREDICTED = [_row("A", 11, 19, "happiness"), _row("A", 12, 19, "surprise"), _row("A", 40, 50, "happiness"),
             _row("B", 0, 5, "negative"), _row("D", 200, 209, "surprise"),
             _row("A", 300, 399, "happiness", "macro")]
TRUTH = [_row("A", 10, 19, "happiness"), _row("A", 40, 49, "surprise"), _row("C", 100, 109, "disgust"),
         _row("D", 200, 209, "surprise"), _row("A", 300, 399, "happiness", "macro")]


def test_strs_by_hand():
    result = strs(PREDICTED, TRUTH)
    spot = result.spotting
    assert (spot.tp, spot.fp, spot.fn) == (3, 2, 1) and spot.f1 == pytest.approx(2 / 3)
    per_class = {c.label: (c.counts.tp, c.counts.fp, c.counts.fn) for c in result.classes}
    assert per_class == {"disgust": (0, 0, 0), "happiness": (1, 1, 0), "surprise": (1, 0, 1)}
    assert (result.precision, result.recall) == (pytest.approx(0.5), pytest.approx(0.5))
    assert result.analysis_f1 == pytest.approx(0.5) and result.uf1 == pytest.approx(4 / 9)
    assert result.strs == pytest.approx(1 / 3)
    record = result.as_record()
    assert record["strs"] == pytest.approx(1 / 3) and record["analysis"]["classes"][1]["class"] == "happiness"
    # The spotting counts are the MEGC 2020 table's (truths found: T1, T2, T4 of 4; 5 predictions).
    micro = next(r.counts for r in spotting_table(PREDICTED, TRUTH) if (r.dataset, r.kind) == ("demo-lv", "micro"))
    assert (micro.tp, micro.fp, micro.fn) == (spot.tp, spot.fp, spot.fn)
    # Every kind (pairing within kinds): the macro pair adds a TP -> TP 4, FP 2, FN 1.
    every = strs(PREDICTED, TRUTH, kind=None).spotting
    assert (every.tp, every.fp, every.fn) == (4, 2, 1)
    # Fewer analysed classes: happiness and surprise only -> mean P = 3/4, mean R = 3/4, F1_analysis 3/4.
    assert strs(PREDICTED, TRUTH, classes=["happiness", "surprise"]).analysis_f1 == pytest.approx(0.75)


def test_predictions_claim_truths_in_order_as_the_official_code():
    # Overlapping truths T1 [0, 9], T2 [5, 14]. A [2, 12] has IoU 8/13 with each; B [0, 9] IoU 1 with T1, 1/3 with T2.
    # A first: A claims T1 and T2, B finds T1 claimed -> pairs (A,T1), (A,T2); B a FP.
    # B first: B claims T1, then A claims T2 -> two pairs, no FP.
    truths = [(0, 9), (5, 14)]
    assert claim_truths([(2, 12), (0, 9)], truths) == [(0, 0), (0, 1)]
    assert claim_truths([(0, 9), (2, 12)], truths) == [(0, 0), (1, 1)]
    rows = [_row("v", 0, 9, "x"), _row("v", 5, 14, "x")]
    a_first = strs([_row("v", 2, 12, "x"), _row("v", 0, 9, "x")], rows).spotting
    b_first = strs([_row("v", 0, 9, "x"), _row("v", 2, 12, "x")], rows).spotting
    assert (a_first.tp, a_first.fp, a_first.fn) == (2, 1, 0) and (b_first.tp, b_first.fp, b_first.fn) == (2, 0, 0)


def test_one_prediction_on_two_adjacent_truths_is_two_pairs_and_no_fp():
    # Truths [0, 3] a and [4, 7] b; the prediction [0, 7] (IoU 1/2 with each) claims both: TP 2, FP 0, FN 0
    # (the MEGC 2020 count instead has A = 2 found of N = 1 prediction: FP -1).
    result = strs([_row("v", 0, 7, "a")], [_row("v", 0, 3, "a"), _row("v", 4, 7, "b")])
    assert (result.spotting.tp, result.spotting.fp, result.spotting.fn) == (2, 0, 0)
    # Pairs (said a, true a), (said a, true b): a TP 1, FP 1 -> P 1/2, R 1; b FN 1 -> P 0, R 0.
    # Mean P 1/4, mean R 1/2 -> F1_analysis = 2 (1/8) / (3/4) = 1/3.
    assert result.analysis_f1 == pytest.approx(1 / 3) and result.strs == pytest.approx(1 / 3)


def test_a_perfect_one_class_result_scores_one():
    # The official script's sklearn unpacking fails when every pair is true x and predicted x and zeroes x's
    # TP (STRS 0, then NaN); counted here: TP 1, P = R = 1 -> STRS 1.
    assert strs([_row("v", 0, 9, "x")], [_row("v", 0, 9, "x")]).strs == 1.0
    # Nothing spotted: every figure 0.
    empty = strs([], [_row("v", 0, 9, "x")])
    assert (empty.spotting.fn, empty.analysis_f1, empty.strs) == (1, 0.0, 0.0)


def test_strs_needs_classes_and_a_known_kind():
    with pytest.raises(ValueError, match="truth: no column 'emotion'"):
        strs([], [{"dataset": "d", "video": "v", "onset": 0, "offset": 9, "kind": "micro"}])
    with pytest.raises(ValueError, match="predictions row 1 .*: no emotion"):
        strs([_row("v", 0, 9, "x"), _row("v", 20, 29, None)], [_row("v", 0, 9, "x")])
    # A macro-expression without a class is no matter when micro-expressions are scored.
    assert strs([], [_row("v", 0, 9, "x"), _row("v", 20, 99, None, "macro")]).spotting.fn == 1
    with pytest.raises(ValueError, match="kind must be one of micro, macro or None"):
        strs([], [], kind="Micro")
    with pytest.raises(ValueError, match="classes are repeated"):
        strs([], [], classes=["x", "x"])
