"""Spotting figures on examples small enough to count by hand.

The frame-level ROC AUC of Nag et al. 2019, and intervals scored as the MEGC
2020 baseline's ``result_helper.py`` scores them (mepipe.train.spotting_eval):
every expected count is worked out in the comments.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
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


def test_in_clip_spotting_takes_the_truth_from_the_annotation_and_counts_as_megc():
    from mepipe.train.metrics import spotting_report

    # One clip, onset..offset = frames 1..5; frame 3 has no prediction (it starts a run after a gap).
    # mean of the predicted frames (0.1 + 0.8 + 0.9 + 0.9 + 0.8 + 0.1) / 6 = 0.6, max 0.9, p = 0.5 -> T = 0.75:
    # spotted (1, 2) and (4, 5). The annotated interval is (1, 5) whole, not (1, 2) and (4, 5):
    # IoU 2/5 each -> no truth found: TP 0, FP 2, FN 1 (the predicted frames alone would make two truths, TP 2).
    report = spotting_report([[0.1, 0.8, 0.9, None, 0.9, 0.8, 0.1]], [[0, 1, 1, 1, 1, 1, 0]])
    intervals = report["intervals"]
    assert (intervals["tp"], intervals["fp"], intervals["fn"]) == (0, 2, 1) and intervals["f1"] == 0.0
    # Two clips, each annotated 2..5, pooled as two videos. Clip 1: mean 0.5, T = 0.75, spots (2, 4): IoU 3/4,
    # found. Clip 2: mean 2/3, T = 5/6, spots (0, 0) (a false positive) and (3, 5): IoU 3/4, found.
    # M = 2, N = 3, A = 2: P 2/3, R 1, F1 0.8.
    curves = [[0.0, 0.0, 1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]]
    spans = [[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]
    both = spotting_report(curves, spans)["intervals"]
    assert (both["tp"], both["fp"], both["fn"], both["truths"], both["predictions"]) == (2, 1, 0, 2, 3)
    assert both["f1"] == pytest.approx(0.8) and (both["p"], both["iou"]) == (0.5, 0.5)


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


# --- MEGC interval scoring (spotting_eval) ----------------------------------------------------


def test_interval_iou_counts_inclusive_frames():
    from mepipe.train.spotting_eval import interval_iou, iou_matrix

    # [2, 6] and [4, 9]: shared frames 4, 5, 6 = 3; frames in either 2..9 = 8.
    assert interval_iou((2, 6), (4, 9)) == pytest.approx(3 / 8)
    # Touching intervals: [0, 3] and [4, 7] share no frame; [0, 3] and [3, 7] share frame 3 of 0..7 (8 frames).
    assert interval_iou((0, 3), (4, 7)) == 0.0
    assert interval_iou((0, 3), (3, 7)) == pytest.approx(1 / 8)
    # A one-frame interval is one frame: itself gives 1, a two-frame interval around it 1/2.
    assert interval_iou((5, 5), (5, 5)) == 1.0 and interval_iou((5, 5), (5, 6)) == 0.5
    predicted, truth = [(2, 6), (0, 3), (5, 5)], [(4, 9), (3, 7)]
    expected = [[interval_iou(p, t) for t in truth] for p in predicted]
    np.testing.assert_allclose(iou_matrix(predicted, truth), expected)


def _record(dataset, video, onset, offset, kind="micro", **extra):
    return {"dataset": dataset, "video": video, "onset": onset, "offset": offset, "kind": kind, **extra}


# Two datasets, every awkward case of the MEGC 2020 count (M truths, N predictions, A truths found):
#
# demo-lv, video v1, micro truths T1 [10, 19] and T2 [20, 23] (touching: adjacent, no shared frame):
#   P1 [12, 19]: T1 8/10 = 0.8 -> finds T1
#   P2 [11, 18]: T1 8/10 = 0.8 -> T1 is found already: a second prediction on one truth, A unchanged
#   P3 [14, 23]: overlaps both, T1 6/14 = 0.43 (14..19 of 10..23), T2 4/10 = 0.4 (20..23 of 14..23) -> finds neither
#   P4 [18, 23]: overlaps both, T1 2/14, T2 4/6 = 0.67 -> finds T2
#   P6 [100, 199] micro: exactly the macro truth T3, but of the other kind -> finds nothing
# demo-lv, video v1, macro truth T3 [100, 199]: P5 [150, 249] macro: 50/150 = 1/3 -> not found
# demo-lv, video v2 (no truth): micro P7 [0, 9] -> a false positive
# demo-lv, video v3: micro truth T4 [5, 9], no prediction -> a false negative
#   micro: M = 3 (T1, T2, T4), N = 6 (P1-P4, P6, P7), A = 2 -> TP 2, FP 4, FN 1,
#          P = 2/6, R = 2/3, F1 = 2 (1/3)(2/3) / (1/3 + 2/3) = 4/9
#   macro: M = 1, N = 1, A = 0 -> TP 0, FP 1, FN 1, F1 0
#   overall: M = 4, N = 7, A = 2 -> P = 2/7, R = 1/2, F1 = (2/7) / (11/14) = 4/11
# casme-sq, video w1: macro truth [0, 7], macro prediction [0, 3]: IoU 4/8 = 0.5 exactly -> found (>= 0.5)
#   micro: nothing -> every count 0 and F1 0 (the official value when a denominator is 0)
#   macro: M = N = A = 1 -> F1 1; overall the same
# all: micro M 3, N 6, A 2 -> 4/9; macro M 2, N 2, A 1 -> P = R = 1/2, F1 1/2;
#      overall M 5, N 8, A 3 -> P 3/8, R 3/5, F1 = 2 (9/40) / (39/40) = 6/13
PREDICTED = [
    _record("demo-lv", "v1", 12, 19), _record("demo-lv", "v1", 11, 18), _record("demo-lv", "v1", 14, 23),
    _record("demo-lv", "v1", 18, 23), _record("demo-lv", "v1", 150, 249, "macro"),
    _record("demo-lv", "v1", 100, 199), _record("demo-lv", "v2", 0, 9), _record("casme-sq", "w1", 0, 3, "macro"),
]
TRUTH = [
    _record("demo-lv", "v1", 10, 19), _record("demo-lv", "v1", 20, 23), _record("demo-lv", "v1", 100, 199, "macro"),
    _record("demo-lv", "v3", 5, 9), _record("casme-sq", "w1", 0, 7, "macro"),
]


def test_megc_spotting_table_by_hand():
    from mepipe.train.spotting_eval import spotting_table

    rows = {(r.dataset, r.kind): r.counts for r in spotting_table(PREDICTED, TRUTH)}
    assert list(rows) == [(d, k) for d in ("casme-sq", "demo-lv", "all") for k in ("micro", "macro", "overall")]
    counts = {key: (c.tp, c.fp, c.fn) for key, c in rows.items()}
    assert counts[("demo-lv", "micro")] == (2, 4, 1) and counts[("demo-lv", "macro")] == (0, 1, 1)
    assert counts[("demo-lv", "overall")] == (2, 5, 2)
    assert counts[("casme-sq", "micro")] == (0, 0, 0) and counts[("casme-sq", "macro")] == (1, 0, 0)
    assert counts[("all", "micro")] == (2, 4, 1) and counts[("all", "macro")] == (1, 1, 1)
    assert counts[("all", "overall")] == (3, 5, 2)
    f1 = {key: c.f1 for key, c in rows.items()}
    assert f1[("demo-lv", "micro")] == pytest.approx(4 / 9) and f1[("demo-lv", "macro")] == 0.0
    assert f1[("demo-lv", "overall")] == pytest.approx(4 / 11)
    assert f1[("casme-sq", "micro")] == 0.0 and f1[("casme-sq", "macro")] == 1.0
    assert f1[("all", "macro")] == pytest.approx(0.5) and f1[("all", "overall")] == pytest.approx(6 / 13)
    demo = rows[("demo-lv", "micro")]
    assert (demo.precision, demo.recall) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert (demo.truths, demo.predictions) == (3, 6)
    # The same tables as DataFrames, in another row order, count the same.
    shuffled = spotting_table(pd.DataFrame(PREDICTED[::-1]), pd.DataFrame(TRUTH[::-1]))
    assert [r.as_record() for r in shuffled] == [r.as_record() for r in spotting_table(PREDICTED, TRUTH)]


def test_a_prediction_that_is_two_adjacent_truths_finds_both_as_the_official_count_does():
    from mepipe.train.spotting_eval import spotting_counts

    # Truths [0, 3] and [4, 7] (4 frames each); the prediction [0, 7] has IoU 4/8 = 0.5 with each -> finds both.
    # pred_clips_analysis adds both to A (truths found) against N = 1 prediction: TP 2, FP = N - A = -1,
    # precision A / N = 2, recall 1, F1 = 2 * 2 * 1 / 3 = 4/3.
    counts = spotting_counts([[(0, 7)]], [[(0, 3), (4, 7)]])
    assert (counts.tp, counts.fp, counts.fn) == (2, -1, 0)
    assert counts.precision == 2.0 and counts.f1 == pytest.approx(4 / 3)
    # Shifted by one frame it overlaps both but finds only [4, 7] (IoU 4/7; [0, 3]: 3/8).
    shifted = spotting_counts([[(1, 7)]], [[(0, 3), (4, 7)]])
    assert (shifted.tp, shifted.fp, shifted.fn) == (1, 0, 1)


def test_megc2020_published_counts_give_the_published_f1():
    from mepipe.train.spotting_eval import MEGC2020_BASELINE

    # recall = A / M, precision = A / N (truths found over predictions), F1 their harmonic mean; e.g. CAS(ME)^2
    # micro: R = 21/57 = 0.368421, P = 21/5035 = 0.0041708, F1 = 0.0082482 -> 0.0082 as published.
    assert len(MEGC2020_BASELINE) == 6
    for entry in MEGC2020_BASELINE:
        recall, precision = entry.found / entry.truths, entry.found / entry.predictions
        assert round(2 * recall * precision / (recall + precision), 4) == entry.f1
        assert entry.counts.f1 == pytest.approx(2 * recall * precision / (recall + precision))
    overall = {e.corpus: e for e in MEGC2020_BASELINE if e.kind == "overall"}
    for corpus, total in overall.items():  # overall pools micro and macro
        parts = [e for e in MEGC2020_BASELINE if e.corpus == corpus and e.kind != "overall"]
        assert total.predictions == sum(e.predictions for e in parts) and total.found == sum(e.found for e in parts)


def test_spotting_table_formats_with_the_published_figures_beside_ours():
    from mepipe.train.spotting_eval import format_spotting_table, spotting_table

    rows = spotting_table(PREDICTED, TRUTH)
    text = format_spotting_table(rows)
    lines = text.splitlines()
    demo_micro = next(line for line in lines if line.startswith("demo-lv") and " micro " in line)
    # demo-lv stands for SAMM Long Videos: the MEGC 2020 baseline's SAMM micro F1 0.0364 beside our 4/9.
    assert demo_micro.split()[2:] == ["3", "6", "2", "4", "1", "0.3333", "0.6667", "0.4444", "0.0364"]
    casme_macro = next(line for line in lines if line.startswith("casme-sq") and " macro " in line)
    assert casme_macro.split()[-2:] == ["1.0000", "0.1196"]
    assert next(line for line in lines if line.startswith("all") and "overall" in line).split()[-1] == "—"
    assert "SAMM Long Videos" in lines[-1] and "10.1109/FG47880.2020.00036" in text
    markdown = format_spotting_table(rows, markdown=True).splitlines()
    assert markdown[0].startswith("| dataset | kind |") and markdown[1].startswith("| --- |")
    assert "| demo-lv | micro | 3 | 6 | 2 | 4 | 1 | 0.3333 | 0.6667 | 0.4444 | 0.0364 |" in markdown
    # A dataset name from a sheet reaches the terminal escaped, and cannot break a Markdown row.
    odd = spotting_table([_record("x\x1b[2J|y", "v", 0, 9)], [])
    assert "\x1b" not in format_spotting_table(odd) and "x\\x1b[2J\\|y" in format_spotting_table(odd, markdown=True)


def test_interval_tables_are_checked_and_name_the_row():
    from dataclasses import dataclass

    from mepipe.train.spotting_eval import interval_table, spotting_table

    @dataclass
    class Interval:
        dataset: str
        video: str
        onset: int
        offset: int
        kind: str
        apex: int

    frame = interval_table([Interval("samm-lv", "006_1", 10.0, 19, "micro", 14)], "truth")
    assert frame["onset"].dtype == np.int64 and frame.loc[0, "apex"] == 14  # other columns carried along
    assert interval_table([], "predictions").empty
    with pytest.raises(ValueError, match="truth: no column 'kind'"):
        interval_table([{"dataset": "d", "video": "v", "onset": 1, "offset": 2}], "truth")
    with pytest.raises(ValueError, match=r"row 1 \(dataset d, video v\): kind 'Micro - 1/2' is neither micro"):
        interval_table([_record("d", "v", 1, 2), _record("d", "v", 3, 4, "Micro - 1/2")], "truth")
    with pytest.raises(ValueError, match="row 0 .*offset 2 is before onset 5"):
        interval_table([_record("d", "v", 5, 2)])
    with pytest.raises(ValueError, match="row 0 .*: no offset"):
        interval_table([_record("d", "v", 5, None)])
    with pytest.raises(ValueError, match="onset 1.5 is not a frame number"):
        interval_table([_record("d", "v", 1.5, 3)])
    with pytest.raises(ValueError, match="predictions row 0 .*: no emotion"):
        interval_table([_record("d", "v", 1, 3, emotion=None)], "predictions", required=("emotion",))
    # Listing the evaluated videos catches a misspelt one instead of counting it as a video without truth.
    with pytest.raises(ValueError, match="1 video.* not among the evaluated videos: d/V1"):
        spotting_table([_record("d", "V1", 0, 9)], [_record("d", "v1", 0, 9)], videos=[("d", "v1")])
    with pytest.raises(ValueError, match="iou must be in"):
        spotting_table([], [], iou=0.0)
