"""No test-fold selection, anywhere: nothing read from a test clip can choose an epoch, a checkpoint or a statistic.

Every recipe trains one fold from a clip table whose test clips raise when
their features are read before the fold's last stage has finished training;
after that, they must be read (the fold is predicted from them). A run that
chose anything on the test side would have to read it earlier and fails.
The guard does catch such reads: STRCN-A with the paper's global mask reads
the test clips' heat maps before training, and is stopped.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from corpora import write_corpus_store

from mepipe.train import fold as fold_module
from mepipe.train.clips import ClipTable
from mepipe.train.fold import EpochChoice
from mepipe.train.loop import EpochRecord
from mepipe.train.models import get_recipe, list_models
from mepipe.train.plan import plan_run
from mepipe.train.rules import ClipPredictions
from mepipe.train.run import RunParams, run_training
from mepipe.train.targets import ClassTargets

torch.set_num_threads(1)

TINY = {
    "shcnn": (("widths", (4, 8, 8)), ("hidden", 16)),
    "strcn-a": (("n_maps", 4),),
    "strcn-g": (("n_maps", 4),),
    "kim2017": (("conv_widths", (4, 8, 8)), ("fc_widths", (32, 32)), ("hidden", 16), ("lstm_layers", 2)),
    "clfm": (("hidden", 8),),
    "lfm": (("hidden", 8), ("input_size", 64)),
    "nag2019": (("widths", (4, 8, 8)), ("fc6", 8), ("feature_channels", 8), ("fused", 8), ("fc", 16),
                ("hidden", 16)),
}
"""Narrow networks: the guard checks what is read when, not what is learnt."""


class ReadBeforeTrainingEnded(AssertionError):
    """A test clip's feature was read while its fold was still training."""


class SealedClips(ClipTable):
    """A clip table whose sealed clips raise on any feature read; :meth:`unseal` lifts it."""

    def __init__(self, base: ClipTable, sealed):
        super().__init__(base.stores, base.samples)
        self.sealed = set(sealed)
        self.read_after = 0

    def read(self, feature, sample):
        if sample in self.sealed:
            raise ReadBeforeTrainingEnded(f"{feature} of test clip {sample} read before the fold finished training")
        return super().read(feature, sample)

    def unseal(self, samples):
        opened = self.sealed & set(samples)
        self.sealed -= opened
        self.read_after += len(opened)


def _guarded_run(monkeypatch, params):
    """Run the first fold of ``params`` with its test clips sealed until its last stage's training returns."""
    plan = plan_run(params)
    test = plan.folds[0].test
    clips = SealedClips(plan.clips, test)
    plan = plan_run(params, clips=clips)
    stages = len(get_recipe(params.model).stages)
    trained = []
    real = fold_module.train_model

    def training(*args, **kwargs):
        records = real(*args, **kwargs)
        trained.append(len(records))
        if len(trained) == stages:
            clips.unseal(test)
        return records

    monkeypatch.setattr(fold_module, "train_model", training)
    report = run_training(params, plan)
    assert clips.read_after == len(test) and not clips.sealed  # the test clips were read, after training
    return report


@pytest.mark.parametrize("model", [m if m == "shcnn" else pytest.param(m, marks=pytest.mark.slow)
                                   for m in list_models()])
def test_every_recipe_reads_its_test_clips_only_after_training(full_store, tmp_path, monkeypatch, model):
    params = RunParams(model=model, store=str(full_store), labels="samm-3", out=str(tmp_path / model), epochs=1,
                       temporal_epochs=1 if len(get_recipe(model).stages) > 1 else None, folds=1, device="cpu",
                       progress=False, model_args=TINY[model], in_memory=True)
    report = _guarded_run(monkeypatch, params)
    assert report["n_test_clips"] == 3 and report["epoch_selection"] == "fixed epochs"


def test_the_guard_stops_a_run_that_reads_test_clips_before_training(full_store, tmp_path, monkeypatch):
    # Xia's global mask is built from every clip's heat map, the test clips' included, before training.
    params = RunParams(model="strcn-a", store=str(full_store), labels="samm-3", out=str(tmp_path / "global"),
                       epochs=1, folds=1, device="cpu", progress=False, model_args=TINY["strcn-a"],
                       recipe_options=(("mask", "global"),))
    with pytest.raises(ReadBeforeTrainingEnded, match="heatmap of test clip"):
        _guarded_run(monkeypatch, params)


@pytest.fixture(scope="module")
def four_people(tmp_path_factory):
    return write_corpus_store(tmp_path_factory.mktemp("four") / "samm.zarr", "samm", subjects=range(1, 5),
                              n_clips=1)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["shcnn", "strcn-g"])
def test_validation_people_choose_the_epoch_and_the_test_side_is_still_sealed(four_people, tmp_path, monkeypatch,
                                                                              model):
    params = RunParams(model=model, store=str(four_people), labels="megc-3", out=str(tmp_path / model), epochs=3,
                       folds=1, val_subjects=1, device="cpu", progress=False, model_args=TINY[model])
    report = _guarded_run(monkeypatch, params)
    fold = report["folds"][0]
    validation = fold["validation"]
    assert len(validation["people"]) == 1 and validation["people"][0] != fold["name"]
    assert len(validation["clips"]) == 3 and validation["n_fit"] == fold["n_train"] - 3
    assert not set(validation["clips"]) & set(fold["test"])
    scores = [h["val_uf1"] for h in fold["history"]]
    assert validation["chosen_epoch"] == {"network": 1 + int(np.argmax(scores))}
    assert report["epoch_selection"].startswith("validation: 1 people")


class _Scripted:
    """A stage whose clip rule returns scripted predictions, one list per epoch."""

    def __init__(self, predictions):
        self.predictions = iter(predictions)
        self.predict = lambda *args: ClipPredictions(np.array(next(self.predictions)))


def test_epoch_choice_keeps_the_first_best_epoch_and_stops_on_patience():
    model = torch.nn.Linear(1, 1, bias=False)
    truth = np.array([0, 1, 2, 0])
    uf1_by_epoch = [[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 2, 2], [0, 1, 2, 0], [0, 1, 2, 0], [0, 1, 2, 0]]
    choice = EpochChoice(_Scripted(uf1_by_epoch), model, None, None, truth, ClassTargets("test", ("a", "b", "c")),
                         torch.device("cpu"), patience=2)
    stops = []
    for epoch in range(1, 7):
        model.weight.data.fill_(epoch)
        stops.append(choice(EpochRecord(epoch, 0.0, 0.0, 0.0, 0.1)))
        if stops[-1]:
            break
    # UF1 by hand: epoch 1 (F1 2/3, 0, 0) 0.222; 2 (0.8, 1, 0) 0.6; 3 (2/3, 1, 2/3) 0.778; 4-6 perfect.
    # The first perfect epoch is kept; patience 2 stops after epoch 6.
    assert [round(s["val_uf1"], 3) for s in choice.scores] == [0.222, 0.6, 0.778, 1.0, 1.0, 1.0]
    assert choice.best_epoch == 4 and stops == [False] * 5 + [True]
    choice.restore()
    assert float(model.weight.detach()) == 4.0
