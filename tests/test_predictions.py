"""``mepipe predict``'s pieces on hand-checkable inputs: final protocol, no-face spans, probabilities, scoring."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mepipe.featurestore.errors import UsageError
from mepipe.train.final_model import softmax
from mepipe.train.params import RunParams, RunParamsError
from mepipe.train.predictions import (
    CSV_FILE, no_face_spans, outside_spans, read_predictions, score_predictions, write_predictions)
from mepipe.train.protocols import final


def test_final_protocol_trains_on_everyone_and_tests_nobody():
    table = pd.DataFrame({"sample": ["a", "b", "c"], "subject": ["1", "1", "2"], "dataset": ["d", "d", "d"]})
    [fold] = final(table)
    assert (fold.name, fold.train, fold.test) == ("final", ("a", "b", "c"), ())


def test_final_refuses_folds():
    with pytest.raises(RunParamsError, match="folds"):
        RunParams(model="shcnn", store="s.zarr", labels="megc-3", protocol="final", folds=1)


def test_no_face_spans_are_runs_of_frames_without_a_face_in_frame_numbers():
    # frames 10..16: face, none, none, face, face, none, face -> spans [11, 12] and [15, 15]
    found = [True, False, False, True, True, False, True]
    assert no_face_spans(found, range(10, 17)) == [(11, 12), (15, 15)]
    assert no_face_spans([True] * 3, [0, 1, 2]) == []


def test_intervals_touching_a_span_without_face_are_dropped():
    rows = [{"onset": 0, "offset": 10}, {"onset": 5, "offset": 11}, {"onset": 13, "offset": 20},
            {"onset": 30, "offset": 40}]
    # span [11, 12]: the second row shares frame 11; the first ends at 10, the third starts at 13
    assert outside_spans(rows, [(11, 12), (35, 35)]) == [rows[0], rows[2]]


def test_softmax_by_hand():
    # logits (0, ln 2): exp -> (1, 2), shares 1/3, 2/3; a shift by 1000 changes nothing and does not overflow
    assert softmax([0.0, math.log(2)]) == pytest.approx([1 / 3, 2 / 3])
    assert softmax([1000.0, 1000 + math.log(2)]) == pytest.approx([1 / 3, 2 / 3])


def _prediction(video, onset, offset, kind, label):
    return {"video": video, "onset": onset, "apex": onset, "offset": offset, "onset_s": onset / 10,
            "apex_s": onset / 10, "offset_s": offset / 10, "kind": kind, "class": label, "score": 1.0,
            "probabilities": {"negative": 0.2, "positive": 0.7, "surprise": 0.1}}


def test_scoring_by_hand(tmp_path):
    # Truth (SAMM emotions; megc-3 classes by the demo-lv = SAMM rules):
    #   v1 micro [10, 19] happiness -> positive; v1 micro [40, 49] surprise; v1 macro [100, 199] anger -> negative
    #   v2 micro [5, 14] other -> no megc-3 class (spotted, not analysed); v3 is not predicted (its truth ignored)
    # Predictions:
    #   v1 micro [11, 19] positive: IoU 9/10 with [10, 19] -> pair (positive, positive)
    #   v1 micro [40, 52] positive: IoU 10/13 with [40, 49] -> pair (positive, surprise)
    #   v1 micro [70, 75] negative: FP;   v2 micro [5, 14] surprise: pair with the unlabelled truth
    #   v1 macro [100, 199] negative: IoU 1 -> macro pair (negative, negative)
    # Micro spotting: TP 3, FP 1, FN 0 -> P 3/4, R 1, F1 6/7.
    # Micro analysis over the labelled pairs, classes of the truth {positive, surprise}:
    #   positive TP 1 FP 1 FN 0 -> P 1/2 R 1;  surprise TP 0 FP 0 FN 1 -> P 0 R 0
    #   mean P 1/4, mean R 1/2 -> F1 = 2 (1/8) / (3/4) = 1/3;  STRS = 6/7 * 1/3 = 2/7.
    # Both kinds: TP 4 FP 1 FN 0 -> F1 8/9; classes {negative, positive, surprise}: negative P 1 R 1,
    #   positive P 1/2 R 1, surprise P 0 R 0 -> mean P 1/2, R 2/3 -> F1 = (2/3) / (7/6) = 4/7; STRS 32/63.
    truth = pd.DataFrame({"dataset": "demo-lv", "video": ["v1", "v1", "v1", "v2", "v3"],
                          "onset": [10, 40, 100, 5, 0], "apex": [15, 45, 150, 9, 5],
                          "offset": [19, 49, 199, 14, 9], "kind": ["micro", "micro", "macro", "micro", "micro"],
                          "emotion": ["Happiness", "surprise", "anger", "Other", "fear"]})
    result = {"labels": "megc-3", "classes": ["negative", "positive", "surprise"],
              "videos": [{"video": "v1"}, {"video": "v2"}],
              "predictions": [_prediction("v1", 11, 19, "micro", "positive"),
                              _prediction("v1", 40, 52, "micro", "positive"),
                              _prediction("v1", 70, 75, "micro", "negative"),
                              _prediction("v2", 5, 14, "micro", "surprise"),
                              _prediction("v1", 100, 199, "macro", "negative")]}
    score = score_predictions(result, truth, "demo-lv", ["v1", "v2", "v3"])
    micro = score["strs"]
    assert (micro["spotting"]["tp"], micro["spotting"]["fp"], micro["spotting"]["fn"]) == (3, 1, 0)
    assert micro["analysis"]["f1"] == pytest.approx(1 / 3)
    assert micro["strs"] == pytest.approx(2 / 7)
    assert score["strs_all"]["strs"] == pytest.approx(32 / 63)
    assert score["unlabelled_truth"] == 1
    table = {(r["dataset"], r["kind"]): (r["tp"], r["fp"], r["fn"]) for r in score["table"]}
    assert table[("demo-lv", "micro")] == (3, 1, 0)
    assert table[("demo-lv", "macro")] == (1, 0, 0)


def test_scoring_refuses_a_video_the_store_does_not_hold():
    result = {"labels": "megc-3", "classes": ["negative"], "videos": [{"video": "elsewhere"}], "predictions": []}
    with pytest.raises(UsageError, match="elsewhere"):
        score_predictions(result, pd.DataFrame(), "demo-lv", ["v1"])


def test_predictions_files_round_trip(tmp_path):
    result = {"labels": "megc-3", "classes": ["negative", "positive", "surprise"], "videos": [{"video": "v1"}],
              "predictions": [_prediction("v1", 11, 19, "micro", "positive")]}
    write_predictions(tmp_path, result)
    assert read_predictions(tmp_path) == result
    header, row = (tmp_path / CSV_FILE).read_text().splitlines()
    assert header == ("video,onset,apex,offset,onset_s,apex_s,offset_s,kind,class,score,p_negative,p_positive,"
                      "p_surprise")
    assert row == "v1,11,11,19,1.1,1.1,1.9,micro,positive,1.0,0.2,0.7,0.1"
