"""Spotting on the demo's long videos and on a learnable synthetic store.

- The MEGC count on one ``demo-lv`` video equals a count by hand: the truth
  is the video's sheet as the adapter reads it (checked against the
  generator's own record of every event), the predictions are placed on the
  recorded events (an expression, a blink, a macro-expression cut short).
- Spotter (b) learns where expressions are under LOSO and beats spotter (a)
  and chance; trained on intervals moved to random places it falls to chance
  (slow: it trains).
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from video_stores import write_video_store

from mepipe.pipeline.datasets.samm_lv import read_samm_lv
from mepipe.pipeline.demo import LongDemoParams, write_long_demo
from mepipe.train.spotters.run import SpotParams, run_spot
from mepipe.train.spotting_eval import ALL, OVERALL, spotting_table

torch.set_num_threads(1)

ONE_VIDEO = LongDemoParams(n_subjects=1, micro_count=(1, 1), macro_count=(1, 1), blink_count=(2, 2),
                           head_count=(1, 1), lead_frames=(30, 30), gap_frames=(15, 20), quirks=())
"""One demo-lv video: one micro- and one macro-expression, two blinks, one head movement."""


@pytest.mark.slow
def test_the_megc_count_on_a_demo_lv_video_equals_a_hand_count(tmp_path):
    written = write_long_demo(tmp_path / "demo-lv", ONE_VIDEO)
    root = written.root
    video = json.loads(written.truth.read_text())["videos"][0]
    events = {e["kind"]: e for e in video["events"] if e["kind"] != "blink"}
    blink = next(e for e in video["events"] if e["kind"] == "blink")
    truth = read_samm_lv(root, dataset="demo-lv").intervals().assign(dataset="demo-lv")
    assert sorted(zip(truth["kind"], truth["onset"], truth["offset"])) == sorted(
        (e["kind"], e["onset"], e["offset"]) for e in video["events"] if e["annotated"])
    micro, macro = events["micro"], events["macro"]
    half = (micro["offset"] - micro["onset"] + 1) // 2
    cut = macro["onset"] + int(0.4 * (macro["offset"] - macro["onset"] + 1)) - 1

    def p(kind, onset, offset):
        return {"dataset": "demo-lv", "video": video["video"], "onset": onset, "offset": offset, "kind": kind}

    predictions = pd.DataFrame([
        p("micro", micro["onset"], micro["offset"]),                # finds the micro-expression (IoU 1)
        p("micro", micro["onset"] + half, micro["offset"] + half),  # overlaps it by half its length: IoU 1/3
        p("micro", blink["onset"], blink["offset"]),                # a blink: nothing annotated there
        p("micro", macro["onset"], macro["offset"]),                # the macro-expression, called micro
        p("macro", macro["onset"], cut),                            # 40 % of the macro-expression: IoU 0.4
    ])
    table = {(r.dataset, r.kind): r.counts for r in spotting_table(predictions, truth)}
    # By hand: micro 1 truth, 4 predictions, 1 found -> TP 1, FP 3, FN 0; macro 1 truth, 1 prediction, none
    # found -> TP 0, FP 1, FN 1; overall TP 1, FP 4, FN 1: precision 1/5, recall 1/2, F1 2/7.
    assert (table[("demo-lv", "micro")].tp, table[("demo-lv", "micro")].fp, table[("demo-lv", "micro")].fn) == (1, 3, 0)
    assert (table[("demo-lv", "macro")].tp, table[("demo-lv", "macro")].fp, table[("demo-lv", "macro")].fn) == (0, 1, 1)
    assert table[(ALL, OVERALL)].f1 == pytest.approx(2 / 7)


NAG = (("epochs", 4), ("patience", 2), ("negatives", 1.0), ("lr", 1e-3),
       ("model_args", (("widths", (8, 16, 16)), ("fc6", 16), ("feature_channels", 8), ("fused", 16), ("fc", 32),
                       ("hidden", 32))))
"""A narrow nag2019 with a higher learning rate, so the synthetic store is learnt in a few epochs on a CPU. A fold
stops two epochs after its best validation F1: its chosen epoch is unchanged (the four folds chose epochs 1, 2, 4
and 1 without it, from validation F1 histories 1/1/1/1, .07/1/1/1, .07/.03/.8/1 and 0/0/0/0, and every relocated
fold 1, from 0/0/0/0), so the run's F1 is too, and six of the eight runs end after three epochs."""


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    return write_video_store(tmp_path_factory.mktemp("learnable") / "demo-lv.zarr", n_subjects=4, seed=1)


def _micro(report: dict) -> tuple[float, float]:
    """(F1, chance F1) of micro-expressions over every dataset."""
    ours = next(r for r in report["table"] if r["dataset"] == ALL and r["kind"] == "micro")
    chance = next(c for c in report["chance"] if c["dataset"] == ALL and c["kind"] == "micro")
    return ours["f1"], chance["f1"]


@pytest.mark.slow
def test_nag_spots_micro_expressions_under_loso_and_falls_to_chance_on_relocated_intervals(learnable, tmp_path):
    common = {"store": (str(learnable),), "progress": False, "device": "cpu", "in_memory": True}
    baseline = run_spot(SpotParams("baseline", out=str(tmp_path / "baseline"), **common))
    nag = run_spot(SpotParams("nag2019", params=NAG, out=str(tmp_path / "nag"), **common))
    control = run_spot(SpotParams("nag2019", params=NAG, control="relocated", out=str(tmp_path / "control"),
                                  **common))
    (a, a_chance), (b, b_chance), (c, c_chance) = _micro(baseline), _micro(nag), _micro(control)
    print(f"micro F1: baseline {a:.3f} (chance {a_chance:.3f}), nag2019 {b:.3f} (chance {b_chance:.3f}), "
          f"relocated {c:.3f} (chance {c_chance:.3f})")
    assert b >= 0.5 and b > a and b > b_chance + 0.3
    assert c <= c_chance + 0.15, "intervals moved to random places must not be learnable"
