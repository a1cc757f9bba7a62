"""Kim 2017, Choi LFM/CLFM and Nag 2019 through ``mepipe train``: run folders, both stages' checkpoints, reports.

Runs use the 6-clip demo store with every feature (``full_store``), one
fold, one epoch per stage and narrow networks: they check the wiring, not
the learning (``test_sequence_learning.py`` does that on the full demo).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import train_cli

from mepipe.train.models.kim2017 import GRID
from mepipe.train.fold import stage_checkpoint_path
from mepipe.train.report import SPOTTING_FILE, read_report
from mepipe.train.run import RunParams, load_fold_model, run_training

torch.set_num_threads(1)

TINY = {
    "kim2017": (("conv_widths", (4, 8, 8)), ("fc_widths", (32, 32)), ("hidden", 16), ("lstm_layers", 2)),
    "clfm": (("hidden", 8),),
    "lfm": (("hidden", 8), ("input_size", 64)),
    "nag2019": (("widths", (4, 8, 8)), ("fc6", 8), ("feature_channels", 8), ("fused", 8), ("fc", 16),
                ("hidden", 16)),
}
"""Narrow versions of each network: the wiring tests must stay fast on two CPU cores."""


def _params(store, out, model, **changes):
    return RunParams(**{"model": model, "store": str(store), "labels": "samm-3", "out": str(out), "epochs": 1,
                        "folds": 1, "device": "cpu", "progress": False, "model_args": TINY[model],
                        "in_memory": True, **changes})


@pytest.mark.slow
@pytest.mark.parametrize("model", ["clfm", "lfm"])
def test_choi_models_save_both_stages_and_report_stage_one(full_store, tmp_path, model):
    out = tmp_path / model
    report = run_training(_params(full_store, out, model, temporal_epochs=2))
    fold = report["folds"][0]
    assert report["n_test_clips"] == 3 and len(fold["history"]) == 3
    assert [h["stage"] for h in fold["history"]] == [1, 2, 2]
    assert stage_checkpoint_path(out, fold["name"], 1).exists()
    assert (out / fold["checkpoint"]).exists()
    assert set(report["stage1"]) >= {"accuracy", "uf1", "uar", "confusion", "measured_on"}
    cnn, lstm = fold["inputs"]["stages"]
    assert cnn["shape"] == [1, *({"clfm": (21, 21), "lfm": (68, 68)}[model])]
    assert lstm["shape"][0] == 24 and lstm["items"] == fold["n_train"]  # the middle 24 maps of each clip
    assert report["parameter_count"] == fold["parameter_count"] > 0
    assert report["parameters"]["stages"][1]["train"]["epochs"] == 2
    # Stage 1 and stage 2 weights differ only in the LSTM head: the CNN is frozen in stage 2.
    first = torch.load(stage_checkpoint_path(out, fold["name"], 1), weights_only=True)
    final = torch.load(out / fold["checkpoint"], weights_only=True)
    assert all(torch.equal(first[k], final[k]) for k in first if k.startswith("cnn."))
    assert any(not torch.equal(first[k], final[k]) for k in first if k.startswith("temporal."))
    model_back, _ = load_fold_model(out, fold["name"])
    assert model_back(torch.zeros(1, 24, *cnn["shape"])).shape == (1, 3)


@pytest.mark.slow
def test_kim_through_the_cli_with_chosen_terms(full_store, tmp_path):
    out = tmp_path / "kim"
    args = ["train", "--model", "kim2017", "--store", str(full_store), "--labels", "samm-3", "--epochs", "1",
            "--temporal-epochs", "1", "--folds", "1", "--device", "cpu", "--no-progress", "--in-memory",
            "--recipe-option", "terms=e1,E2,E3", "--out", str(out)]
    for key, value in TINY["kim2017"]:
        args += ["--model-arg", f"{key}={json.dumps(value)}"]
    result = CliRunner().invoke(train_cli(), args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "stage 1 (Fc on the apex frame)" in result.output
    report = read_report(out)
    assert report["parameters"]["recipe_options"]["terms"] == ["E1", "E2", "E3"]
    fold = report["folds"][0]
    cnn, lstm = fold["inputs"]["stages"]
    assert cnn["shape"] == [3, 64, 64] and cnn["items"] == 5 * fold["n_train"]  # five state frames per clip
    # Stage 2's epoch is every clip under each of the 150 affine variants of Kim's grid (§3.1).
    assert GRID.n_variants == 150
    assert lstm["items"] == GRID.n_variants * fold["n_train"] and lstm["shape"] == [24, 32]  # 24 frames x F5 width
    assert stage_checkpoint_path(out, fold["name"], 1).exists()
    assert all("stage1_pred" in p for p in report["predictions"])


def test_kim_terms_are_validated(full_store, tmp_path):
    bad = CliRunner().invoke(train_cli(), ["train", "--model", "kim2017", "--store", str(full_store), "--labels",
                                      "samm-3", "--recipe-option", "terms=E1,E7", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "recipe option terms" in bad.output and "E7" in bad.output
    with pytest.raises(ValueError, match="model 'clfm' has no recipe option 'terms'"):
        RunParams(model="clfm", store="s", labels="samm-3", recipe_options=(("terms", "E1"),))


@pytest.mark.slow
def test_nag_reports_intensity_states_and_spotting_auc(full_store, tmp_path):
    out = tmp_path / "nag"
    report = run_training(_params(full_store, out, "nag2019", batch_size=4))
    fold = report["folds"][0]
    assert fold["inputs"]["stages"][0]["shape"] == [14, 8, 64, 64] and fold["model_kwargs"]["in_chans"] == 8
    rows = report["predictions"]
    assert len(rows) == 3
    for row in rows:
        n = len(row["intensity"])
        assert n == len(row["span"]) == len(row["states"]) > 0
        assert all(0.0 <= v <= 1.0 for v in row["intensity"]) and set(row["states"]) <= set(range(5))
    spans = np.concatenate([r["span"] for r in rows])
    assert 0 < spans.sum() < spans.size
    assert 0.0 <= report["spotting_auc"] <= 1.0 and report["spotting_auc"] == fold["spotting_auc"]
    assert (out / SPOTTING_FILE).read_bytes()[:4] == b"\x89PNG"
    evaluated = CliRunner().invoke(train_cli(), ["evaluate", str(out)])
    assert evaluated.exit_code == 0 and "spotting ROC AUC" in evaluated.output
