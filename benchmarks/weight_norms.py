"""Weight norms, training loss and held-out accuracy per epoch of a network at its recipe and at changed settings.

Trains the first ``--folds`` LOSO folds of a store with the model's recipe
(narrow networks from ``benchmarks/paper_recipes.py``), once per setting
given with ``--setting NAME:JSON`` (RunParams overrides, e.g.
``wd0:{"weight_decay": 0}``), and records before every epoch the L2 norm of
all trained weights (the epoch hook of the training loop), and after
training the figures on the held-out subjects. It shows what a paper's
weight decay does to a small network on a small dataset (Nag et al. 2019:
RMSProp at 1e-4 with weight decay 0.005).

    python benchmarks/weight_norms.py --store data/stores/demo.zarr --model nag2019 --folds 2 \\
        --setting 'paper:{}' --setting 'wd0:{"weight_decay": 0}'
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from mepipe.train.clips import ClipTable
from mepipe.train.fold import FoldInputs, run_fold
from mepipe.train.loop import resolve_device
from mepipe.train.models import get_recipe
from mepipe.train.run import RunParams, labelled_samples, make_folds, model_kwargs, stage_train_params

from paper_recipes import QUICK


class NormRecorder:
    """An objective that records the trained weights' L2 norm before each epoch, then steps as the recipe's does."""

    def __init__(self, step, norms: list):
        self.step, self.norms = step, norms
        self.inner_hook = getattr(step, "start_epoch", None)

    def start_epoch(self, model, dataset, device, epoch):
        weights = [p.detach().float() for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
        self.norms.append(float(torch.sqrt(sum((w ** 2).sum() for w in weights))))
        if self.inner_hook is not None:
            self.inner_hook(model, dataset, device, epoch)

    def __call__(self, model, batch, generator):
        return self.step(model, batch, generator)


def run(store: str, model: str, changes: dict, folds: int, out: Path) -> dict:
    params = RunParams(model=model, store=store, labels="samm-3", out=str(out), device="cpu", in_memory=True,
                       overwrite=True, progress=False, **{**QUICK[model], **changes})
    recipe = get_recipe(model)
    norms: list[float] = []
    stage = recipe.stages[0]
    recording = dataclasses.replace(stage, objective=lambda options: NormRecorder(stage.objective(options), norms))
    recipe = dataclasses.replace(recipe, stages=(recording, *recipe.stages[1:]))
    clips = ClipTable.of(store)
    table, classes, _ = labelled_samples(clips, "samm-3", recipe.reads_for(params.options()))
    label = dict(zip(table["sample"], table["label"]))
    kwargs = model_kwargs(params, recipe, clips, len(classes))
    rows = []
    for fold in make_folds(table, "loso")[:folds]:
        norms.clear()
        inputs = FoldInputs(clips, list(fold.train), [label[s] for s in fold.train], list(fold.test),
                            [label[s] for s in fold.test], params.options(), resolve_device("cpu"), {})
        result = run_fold(recipe, inputs, fold=fold, stage_params=stage_train_params(params, recipe),
                          model_kwargs=kwargs, n_classes=len(classes), out=out, desc=fold.name)
        rows.append({"fold": fold.name, "norms": [round(n, 3) for n in norms],
                     "loss": [round(h["loss"], 4) for h in result.report["history"]],
                     "train_accuracy": [round(h["accuracy"], 3) for h in result.report["history"]],
                     "test_accuracy": result.report["accuracy"]})
    return {"changes": changes, "folds": rows,
            "test_accuracy": float(np.mean([r["test_accuracy"] for r in rows]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--model", default="nag2019")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--setting", action="append", required=True, metavar="NAME:JSON")
    parser.add_argument("--out", default="runs/weight-norms")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for setting in args.setting:
        name, text = setting.split(":", 1)
        started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        results[name] = run(args.store, args.model, json.loads(text), args.folds, Path(args.out) / name)
        results[name]["cpu_seconds"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu, 1)
        results[name]["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(name, json.dumps(results[name]), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "weight-norms.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
