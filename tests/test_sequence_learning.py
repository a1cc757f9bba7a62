"""Learning is real: each sequence network beats chance under LOSO on the demo, and not with shuffled labels.

The fixture builds the 36-clip demo (6 subjects × 3 classes × 2 clips)
with the core features and those a network reads (``lfm``, ``kim`` or
``flow_consecutive`` with the suite's cheaper TV-L1), when a run first
asks for them, so the default suite (CLFM only) builds no flows. The
shuffled copy permutes the emotions over the clips, so a network that
learned the demo's expressions, not an artefact of the pipeline, must fall
to chance there. Chance is 1/3; runs are short and narrow, so the bars are
well above chance but below what the full-size networks reach
(see ``benchmarks/results/sequence-models-demo-quick.md``).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mepipe.featurestore import open_store
from mepipe.featurestore.manifest import write_manifest
from mepipe.featurestore.writer import StoreWriter
from mepipe.train.run import RunParams, run_training

from conftest import build_options, demo_build_params

torch.set_num_threads(1)

RUNS = {
    "clfm": {"epochs": 8, "temporal_epochs": 15, "model_args": (("hidden", 32),)},
    "kim2017": {"epochs": 20, "temporal_epochs": 40, "lr": 1e-3, "optimizer": "adam", "augment": False,
                "recipe_options": (("terms", "E1"),),
                "model_args": (("conv_widths", (16, 32, 32)), ("fc_widths", (128, 128)), ("hidden", 64),
                               ("lstm_layers", 1))},
    "nag2019": {"epochs": 15, "batch_size": 4, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
                "augment": False,
                "model_args": (("widths", (8, 16, 32)), ("fc6", 32), ("feature_channels", 16), ("fused", 16),
                               ("fc", 64), ("hidden", 64))},
}
"""Short, narrow runs per model (LOSO, 6 folds). The demo's expressions move about 1 px at 64×64, below
Kim's ±2 px / ±10° augmentation and, per frame pair at 200 fps, near the flow noise, so the Kim and Nag
runs train without augmentation, with Adam, and Nag without its 0.005 weight decay, which at this signal
size drives the weights to zero before they learn (measured; see the closing note of issue 5)."""

FEATURE_STAGES = {"clfm": ("lfm",), "kim2017": ("kim",), "nag2019": ("flow_consecutive",)}
"""The stages, beyond the core (landmarks, align, apex), that write what each network reads."""


@pytest.fixture(scope="session")
def demo_stores(tmp_path_factory):
    """``stores(model)``: the 36-clip demo store with the core and ``model``'s features, and a copy of it whose
    emotions are permuted over the clips; each model's features are added to the one store when first asked for.
    The build runs in-process: a process pool of its own only adds start-up and transfers while the suite's
    workers already keep the cores busy (36 clips: 13-23 s in-process, 37-42 s with two processes)."""
    from mepipe.pipeline.build import run_build
    from mepipe.pipeline.demo import write_demo

    root = tmp_path_factory.mktemp("demo36") / "demo"
    write_demo(root)
    store = root.parent / "demo.zarr"
    built = {}

    def stores(model):
        if model not in built:
            stages = ("landmarks", "align", "apex", *FEATURE_STAGES[model])
            report = run_build(build_options(root, store, stages=stages, params=demo_build_params()))
            assert report.exit_code == 0, report.summary()
            built[model] = store, _shuffled_copy(store, tmp_path_factory.mktemp("shuffled36") / "demo.zarr")
        return built[model]

    return stores


def _shuffled_copy(store, path):
    """A copy of ``store`` at ``path`` whose emotions are permuted over the clips."""
    shutil.copytree(store, path)
    table = open_store(path).samples.copy()
    table["emotion"] = np.random.default_rng(1).permutation(table["emotion"].to_numpy())
    writer = StoreWriter(path)
    writer.write_samples(table)
    writer.consolidate()
    write_manifest(path)
    return path


def _run(store, out, model):
    return run_training(RunParams(model=model, store=str(store), labels="samm-3", out=str(out), device="cpu",
                                  progress=False, in_memory=True, **RUNS[model]))


def _check_learns(demo_stores, tmp_path, model, bar=0.6):
    store, shuffled_store = demo_stores(model)
    learned = _run(store, tmp_path / "learned", model)
    assert learned["n_test_clips"] == 36 and len(learned["folds"]) == 6
    print(f"{model}: LOSO accuracy {learned['accuracy']:.3f}, UF1 {learned['uf1']:.3f}")
    assert learned["accuracy"] >= bar and learned["uf1"] >= bar - 0.05, f"{model} did not learn the demo"
    shuffled = _run(shuffled_store, tmp_path / "shuffled", model)
    print(f"{model} shuffled: LOSO accuracy {shuffled['accuracy']:.3f}")
    assert shuffled["accuracy"] <= 0.5, f"{model} 'learned' labels shuffled over the clips"
    return learned


KIM_ACROSS_PEOPLE = pytest.mark.xfail(
    run=False,
    reason="not run (88 s of the suite to confirm a recorded failure; benchmarks/kim_learnability.py measures it): "
           "Kim 2017 does not learn the demo across its six different people, and its recipe cannot on data this "
           "small (benchmarks/kim_learnability.py, 2026-12-07: LOSO 0.33-0.39 with E1, 0.36 with E1..E5; with the "
           "paper's 40 stage-1 epochs its E1 CNN fits the training people's apex frames (1.00) and is at chance on "
           "an unseen person's (0.33-0.36; E1..E5 0.42-0.50), with or without the neutral onset/offset frames in "
           "stage 1 (LSTM 0.33 and 0.36), because an expression changes a 64x64 frame by RMS 0.04 and a change of "
           "person by 0.20; with 11 training people (a demo of 12) CNN and LSTM stay at 0.33)")
"""Kim's learnability is an open failure on the demo of distinct people: recorded (README, Known failures)."""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["clfm", pytest.param("kim2017", marks=KIM_ACROSS_PEOPLE)])
def test_learns_the_demo_under_loso_and_not_shuffled_labels(demo_stores, tmp_path, model):
    _check_learns(demo_stores, tmp_path, model)


@pytest.mark.long
def test_nag_learns_the_demo_under_loso_and_not_shuffled_labels(demo_stores, tmp_path):
    """About 20 CPU minutes: Nag's per-pair CNNs see 14 × 2 frames per window (0.58 measured, chance 0.33)."""
    learned = _check_learns(demo_stores, tmp_path, "nag2019", bar=0.5)
    assert learned["spotting_auc"] > 0.6
