"""AU targets (``--labels au:SET``): AU vectors from the sheets' cells, the loss, decisions, MEB's F1, whole runs.

The F1 figures are checked against hand counts (MEB computes them with
scikit-learn's ``f1_score`` on each AU column: binary of "shown", macro of
"shown" and "not shown", a count of nothing scoring 0). Runs use small
synthetic stores named like SAMM, CASME II and SMIC (``tests/corpora.py``)
whose clips carry AU cells as those sheets write them (SMIC codes none).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import train_cli
from corpora import write_corpus_store

from mepipe.pipeline.datasets.action_units import au_codes, parse_action_units
from mepipe.pipeline.datasets.sheets import cell_text
from mepipe.train import metrics
from mepipe.train.labels import AU_SETS
from mepipe.train.loop import ItemLogits
from mepipe.train.models import get_recipe, list_models
from mepipe.train.params import RunParamsError
from mepipe.train.plan import format_plan, plan_run
from mepipe.train.report import AU_F1_FILE, format_report, read_report
from mepipe.train.rules import FrameVote, ItemAt, MeanLogits, vote_each
from mepipe.train.run import RunParams, run_training
from mepipe.train.targets import AuTargets, ClassTargets, correct_decisions, multilabel_loss, parse_targets

torch.set_num_threads(1)

TINY = (("widths", (4, 8, 8)), ("hidden", 16))
MEB = parse_targets("au:meb-cross")

# --- the AU parse table: a sheet's cell -> the clip's vector over MEB's 12 AUs ---------------------------------

VECTOR_TABLE = [
    # cell as a sheet writes it (stored as its text), the AUs of MEB's set (1 2 4 5 6 7 9 10 12 14 15 17) it turns on
    ("AU4+L10", {4, 10}),            # MMEW prefix, CASME II side
    ("R12", {12}),                   # SAMM unilateral
    ("(4)", {4}),                    # CASME parentheses
    ("4+7+43", {4, 7}),              # AU43 is outside MEB's set
    ("4，7", {4, 7}),                 # CAS(ME)³ full-width comma
    ("4,7", {4, 7}),
    ("AU4+AU7(k)", {4}),             # 4DME (k): not shown
    ("A1B+A2C", {1, 2}),             # SAMM asymmetry and intensities
    ("L12 or L14", set()),           # alternatives: neither counts as shown
    ("(R6 or R12)+R15", {15}),
    ("R14+17+soft focus", {14, 17}),
    ("25+26", set()),                # coded, but none of MEB's AUs: an all-zero target, kept
    (12.0, {12}),                    # Excel's float of a bare number
]


@pytest.mark.parametrize(("cell", "shown"), VECTOR_TABLE)
def test_a_sheets_au_cell_becomes_the_clips_vector_over_mebs_aus(cell, shown):
    samples = pd.DataFrame({"action_units": [cell_text(cell)], "au_codes": [au_codes(parse_action_units(cell))]})
    labels, uncoded = MEB.label(samples)
    expected = [1 if au in shown else 0 for au in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17)]
    assert not uncoded.any() and labels.iloc[0].tolist() == expected


def test_clips_without_an_au_cell_have_no_target_and_coded_ones_keep_theirs():
    samples = pd.DataFrame({"action_units": ["4+7", "", None, "  ", "25"], "au_codes": ["4+7", "", "", "", "25"]},
                           index=[10, 11, 12, 13, 14])
    labels, uncoded = parse_targets("au:4+7").label(samples)
    assert uncoded.tolist() == [False, True, True, True, False]
    assert list(labels.index) == [10, 14] and [v.tolist() for v in labels] == [[1, 1], [0, 0]]


def test_labels_name_a_scheme_an_au_set_or_au_numbers():
    assert parse_targets("au:meb-cross") == AuTargets("au:meb-cross", AU_SETS["meb-cross"])
    assert parse_targets("au:12+4,12").aus == (12, 4) and parse_targets("au:12+4").names == ("AU12", "AU4")
    assert parse_targets("samm-3") == ClassTargets("samm-3", ("negative", "positive", "surprise"))
    with pytest.raises(KeyError, match="unknown AU set 'nope'.*meb-cross"):
        parse_targets("au:nope")


# --- MEB's F1 -------------------------------------------------------------------------------------------------


def test_au_f1_is_mebs_per_column_f1_by_hand():
    # Four clips, four AUs:
    #   AU a: truth 1 1 0 0, pred 1 0 1 0 -> TP 1 FP 1 FN 1 TN 1: binary 2/4; "not shown" 2/4; macro 1/2
    #   AU b: never shown, never predicted -> binary 0 (nothing counted); only "not shown" occurs: macro 1
    #   AU c: always shown and predicted -> binary 1; only "shown" occurs: macro 1
    #   AU d: truth 0 0 0 1, pred 1 1 1 1 -> TP 1 FP 3: binary 2/5; "not shown" TP 0 FN 3: 0; macro 1/5
    y_true = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 1]])
    y_pred = np.array([[1, 0, 1, 1], [0, 0, 1, 1], [1, 0, 1, 1], [0, 0, 1, 1]])
    scores = metrics.au_f1(y_true, y_pred)
    assert scores.binary == pytest.approx([0.5, 0.0, 1.0, 0.4])
    assert scores.macro == pytest.approx([0.5, 1.0, 1.0, 0.2])
    assert scores.positives.tolist() == [2, 0, 4, 1] and scores.predicted.tolist() == [2, 0, 4, 4]
    figures = AuTargets("au:1+2+4+5", (1, 2, 4, 5)).figures(y_true, y_pred)
    assert figures["f1_binary"] == pytest.approx((0.5 + 0 + 1 + 0.4) / 4)
    assert figures["f1_macro"] == pytest.approx((0.5 + 1 + 1 + 0.2) / 4)
    assert figures["per_au"]["AU5"] == {"f1_binary": pytest.approx(0.4), "f1_macro": pytest.approx(0.2),
                                        "positives": 1, "predicted": 4}


def test_au_f1_refuses_what_is_not_multi_hot():
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.au_f1(np.array([[2, 0]]), np.array([[1, 0]]))
    with pytest.raises(ValueError, match="equally shaped"):
        metrics.au_f1(np.zeros((2, 3)), np.zeros((2, 2)))


def test_the_au_loss_is_the_mean_binary_cross_entropy_of_every_clip_and_au():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    by_hand = -np.mean([np.log(1 / (1 + np.exp(-2.0))), np.log(1 - 1 / (1 + np.exp(1.0))), np.log(0.5),
                        np.log(1 / (1 + np.exp(-3.0)))])
    assert float(multilabel_loss(logits, y)) == pytest.approx(by_hand, rel=1e-6)
    assert MEB.training_loss(torch.nn.functional.cross_entropy) is multilabel_loss
    assert ClassTargets().training_loss(torch.nn.functional.cross_entropy) is torch.nn.functional.cross_entropy


def test_training_decisions_count_clips_or_each_clips_aus():
    assert correct_decisions(torch.tensor([[0.2, 0.9], [0.8, 0.1]]), torch.tensor([1, 1])) == (1, 2)
    logits = torch.tensor([[0.5, -0.5, 0.1], [-1.0, 2.0, -0.1]])
    assert correct_decisions(logits, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])) == (4, 6)


# --- clip decisions under AU targets ---------------------------------------------------------------------------


def test_each_au_is_voted_on_by_the_frames_and_the_apex_frame_breaks_a_tie():
    frames = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 0, 0]])  # AU columns: 2 of 4, 1 of 4, 2 of 4
    assert vote_each(frames, apex_index=0).tolist() == [1, 0, 1]   # ties take frame 0's
    assert vote_each(frames, apex_index=3).tolist() == [0, 0, 0]
    assert vote_each(frames[:3], apex_index=2).tolist() == [1, 0, 1]  # 2 of 3: shown; 1 of 3: not


class _Frames:
    apex_fields = [2, 0]


def test_the_rules_decide_each_au_by_the_sign_of_its_logit():
    au = AuTargets("au:1+2", (1, 2))
    logits = np.array([[1.0, -2.0], [1.0, 3.0], [-3.0, 1.0], [0.5, -0.2], [-0.1, 0.3], [-0.2, 0.4]], np.float32)
    predicted = ItemLogits(logits=logits, y=np.zeros((6, 2)), clip=np.repeat([0, 1], 3),
                           frame=np.tile([0, 1, 2], 2))
    rows = [np.arange(3), np.arange(3, 6)]
    # clip 0 means (-1/3, 2/3), clip 1 (0.067, 0.167)
    assert MeanLogits().decide(predicted, rows, None, au).tolist() == [[0, 1], [1, 1]]
    assert ItemAt(frame=1).decide(predicted, rows, None, au).tolist() == [[1, 1], [0, 1]]
    # clip 0 frames: AU1 on 2 of 3; AU2 on 2 of 3. clip 1: AU1 on 1 of 3, AU2 on 2 of 3
    assert FrameVote().decide(predicted, rows, _Frames(), au).tolist() == [[1, 1], [0, 1]]
    assert MeanLogits().decide(predicted, rows, None, ClassTargets("c", ("a", "b"))).tolist() == [1, 1]


# --- which networks take AU targets ----------------------------------------------------------------------------


def test_every_network_with_a_class_head_takes_au_targets_and_the_others_are_refused_in_one_line():
    able = [m for m in list_models() if not get_recipe(m).refusal("au")]
    assert {"shcnn", "strcn-a", "strcn-g", "lfm", "clfm"} <= set(able)
    for model, objective in (("kim2017", "KimStateObjective"), ("nag2019", "NagObjective")):
        with pytest.raises(RunParamsError) as caught:
            RunParams(model=model, store="x", labels="au:meb-cross")
        message = str(caught.value)
        assert "\n" not in message and objective in message and "models that can: " in message


def test_cli_refuses_a_network_or_au_set_it_cannot_train_in_one_sentence(tmp_path):
    for model, labels, words in (("kim2017", "au:meb-cross", "KimStateObjective takes classes only"),
                                 ("shcnn", "au:nope", "unknown AU set 'nope'")):
        result = CliRunner().invoke(train_cli(), ["train", "--model", model, "--labels", labels, "--store",
                                                  str(tmp_path / "none.zarr"), "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output


# --- runs ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """SAMM, CASME II and SMIC stores, 2 people each, a clip per class, AU cells as each sheet writes them."""
    root = tmp_path_factory.mktemp("au-corpora")
    return [str(write_corpus_store(root / f"{d}.zarr", d, subjects=range(1, 3), n_clips=1, aus=True, seed=k))
            for k, d in enumerate(("samm", "casme2", "smic"))]


def _params(stores, out, **changes):
    return RunParams(**{"model": "shcnn", "store": tuple(stores), "labels": "au:meb-cross", "protocol": "meb",
                        "out": str(out), "epochs": 1, "batch_size": 8, "device": "cpu", "progress": False,
                        "model_args": TINY, **changes})


@pytest.mark.slow
def test_meb_plan_names_the_absent_corpora_and_what_it_leaves_out(corpora, tmp_path):
    plan = plan_run(_params(corpora, tmp_path / "r"))
    described = plan.describe()
    assert [f["name"] for f in described["folds"]] == ["casme2", "samm"]
    assert described["absent_datasets"] == ["casme", "4dme", "mmew", "casme3"]
    assert len(described["dropped"]["no_action_units"]) == 6  # SMIC codes no AUs
    assert described["classes"] == list(MEB.names) and described["targets"] == "au"
    assert described["clips"]["by_dataset"]["samm"]["AU4"] == 2 and described["clips"]["by_dataset"]["samm"]["total"] == 6
    text = format_plan(described)
    assert "absent from meb (no clip in the run): casme, 4dme, mmew, casme3" in text
    assert any("no AU cell" in w and "smic: 6" in w for w in plan.warnings)
    emotions = plan_run(_params(corpora, tmp_path / "e", labels="megc-3"))
    assert [f.fold.name for f in emotions.folds] == ["casme2", "samm"]
    assert emotions.dropped["not_in_protocol"] and any("smic is not among MEB's corpora" in w
                                                        for w in emotions.warnings)


@pytest.mark.slow
def test_an_au_run_reports_mebs_figures_pooled_per_dataset_and_their_mean(corpora, tmp_path):
    report = run_training(_params(corpora, tmp_path / "run"))
    assert report["targets"] == "au" and report["classes"] == list(MEB.names)
    predictions = report["predictions"]
    assert len(predictions) == 12 and all(len(p["true"]) == len(p["pred"]) == 12 for p in predictions)
    pooled = metrics.au_f1(np.array([p["true"] for p in predictions]), np.array([p["pred"] for p in predictions]))
    assert report["f1_macro"] == pytest.approx(pooled.macro.mean())
    assert report["f1_binary"] == pytest.approx(pooled.binary.mean())
    samm = [p for p in predictions if p["dataset"] == "samm"]
    samm_f1 = metrics.au_f1(np.array([p["true"] for p in samm]), np.array([p["pred"] for p in samm]))
    assert report["per_dataset"]["samm"]["f1_macro"] == pytest.approx(samm_f1.macro.mean())
    assert report["dataset_mean"]["f1_binary"] == pytest.approx(
        np.mean([report["per_dataset"][d]["f1_binary"] for d in ("casme2", "samm")]))
    assert {f["name"] for f in report["folds"]} == {"casme2", "samm"}
    assert set(report["mean_over_folds"]) == {"f1_macro", "f1_binary"}
    assert (tmp_path / "run" / AU_F1_FILE).exists() and read_report(tmp_path / "run")["per_au"]["AU4"]["positives"] == 4
    text = format_report(report)
    assert "AU F1 (mean over 12 AUs): macro" in text and "AU17" in text and "casme2" in text


@pytest.mark.slow
def test_evaluate_reprints_an_au_run_and_compare_refuses_it(corpora, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "shcnn", "--labels", "au:4+7+12", "--protocol", "cross", "--test-dataset", "samm",
        "--train-dataset", "casme2", *sum((["--store", s] for s in corpora), []), "--epochs", "1", "--device", "cpu",
        "--no-progress", "--out", str(out), "--model-arg", "widths=[4,8,8]", "--model-arg", "hidden=16"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "AU F1 (mean over 3 AUs)" in result.output
    shown = CliRunner().invoke(train_cli(), ["evaluate", str(out), "--json"])
    assert json.loads(shown.output)["per_dataset"].keys() == {"samm"}
    from mepipe.train.compare import compare_runs

    with pytest.raises(ValueError, match="trained AU targets"):
        compare_runs([out, out])


CLASS_AUS = {"Happiness": "12", "Anger": "4+7", "Surprise": "1+2"}
"""The AUs each synthetic class shows: the demo's classes' AUs (SAMM layout)."""


def _store_with_aus(path, **synthetic):
    """A synthetic store (class-dependent motion, :func:`test_training.write_synthetic_store`) whose clips show
    their class's AUs (:data:`CLASS_AUS`)."""
    from test_training import write_synthetic_store

    return write_synthetic_store(path, class_aus=CLASS_AUS, **synthetic)


@pytest.mark.slow
def test_shcnn_learns_aus_of_class_dependent_motion_under_loso_and_not_shuffled_ones(tmp_path):
    """Each class moves its own way and shows its own AUs (AU12, AU4+7, AU1+2): learnable from the motion of other
    people's clips. With the AU vectors shuffled over the clips the motion says nothing about them."""
    def run(store, name):
        params = RunParams(model="shcnn", store=str(store), labels="au:1+2+4+7+12", protocol="loso",
                           out=str(tmp_path / name), epochs=3, batch_size=16, device="cpu", progress=False,
                           model_args=(("widths", (8, 16, 32)), ("hidden", 64)))
        report = run_training(params)
        print(f"shcnn {name} AU targets: LOSO F1 binary {report['f1_binary']:.3f}, macro {report['f1_macro']:.3f}")
        return report

    learned = run(_store_with_aus(tmp_path / "synth.zarr"), "learned")
    shuffled = run(_store_with_aus(tmp_path / "shuffled.zarr", shuffle_labels=True), "shuffled")
    assert learned["f1_binary"] >= 0.7
    assert shuffled["f1_binary"] <= 0.5, "AU vectors shuffled over the clips must not be learnable"


def test_a_feature_dataset_of_au_targets_gives_each_clip_its_vector(corpora):
    from mepipe.train.api import FeatureDataset
    from mepipe.train.inputs.batches import collate

    data = FeatureDataset(corpora, ["flow_onset_apex"], labels="au:4+7+12")
    assert data.classes == ["AU4", "AU7", "AU12"] and len(data) == 12  # SMIC's clips have no AU cell
    by_sample = {s: data[i].y.tolist() for i, s in enumerate(data.samples)}
    assert by_sample["samm/001_1_1"] == [1.0, 1.0, 0.0] and by_sample["casme2/sub01_EP03_01f"] == [0.0, 0.0, 1.0]
    assert collate([data[0], data[1]]).y.shape == (2, 3)
