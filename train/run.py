"""A training run: plan (stores, labels, protocol folds) → the model's recipe on each fold → report.

>>> from mepipe.train.run import RunParams, run_training
>>> report = run_training(RunParams(model="shcnn", store=("data/stores/samm.zarr", "data/stores/casme2.zarr"),
...                                 labels="megc-3", protocol="megc2019", out="runs/shcnn-megc"))  # doctest: +SKIP
>>> report["uf1"], report["per_dataset"]["samm"]["uar"]                                         # doctest: +SKIP

Everything the run knows about the network comes from its
:class:`~mepipe.train.recipe.Recipe`: the features checked against the
stores before any fold runs, the size arguments the network needs, and the
stages :func:`mepipe.train.fold.run_fold` trains. Everything a fold's
inputs depend on beyond single clips (standardisation, STRCN-A mask) is
fitted on that fold's training clips; the test clips are read only once
every stage of the fold is trained, so nothing chooses on them.

A run writes each finished fold to its folder (:mod:`mepipe.train.runstate`),
so a killed run, started again with the same parameters, keeps the folds it
finished and trains the others.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mepipe.featurestore.features import INTENSITY

from . import metrics
from .clips import ClipTable
from .fold import run_fold
from .loop import TrainParams, describe_device, load_checkpoint, resolve_device
from .models import create_model
from .params import RunParams, RunParamsError
from .plan import RunPlan, plan_run
from .protocols import FINAL
from .recipe import Recipe
from .report import REPORT_FILE, read_report, write_report
from .runstate import ExistingRunError, RunState
from .targets import Targets

__all__ = ["RunParams", "RunParamsError", "RunPlan", "load_fold_model", "mepipe_version", "plan_run", "run_training",
           "stage_train_params"]

log = logging.getLogger(__name__)


def stage_train_params(params: RunParams, recipe: Recipe) -> list[TrainParams]:
    """Settings of every stage: the recipe's, with the run's overrides (first stage; ``temporal_epochs`` second)."""
    out = []
    for number, stage in enumerate(recipe.stages):
        optimiser = stage.optimiser
        first = number == 0
        epochs = (params.epochs if first else params.temporal_epochs if number == 1 else None) or stage.epochs
        out.append(TrainParams(
            epochs=epochs,
            batch_size=(params.batch_size if first else None) or optimiser.batch_size,
            lr=(params.lr if first else None) or optimiser.lr,
            optimizer=(params.optimizer if first else None) or optimiser.name,
            weight_decay=params.weight_decay if first and params.weight_decay is not None else optimiser.weight_decay,
            momentum=optimiser.momentum,
            lr_decay=optimiser.lr_decay,
            patience=params.patience if first else None,
            seed=params.seed,
            workers=params.workers,
            progress=params.progress,
        ))
    return out


def model_kwargs(params: RunParams, recipe: Recipe, clips: ClipTable, n_classes: int) -> dict[str, Any]:
    """The factory arguments of the run's model: classes, the sizes the recipe derives from the store, overrides."""
    adapted = dict(recipe.adapt(clips.geometry(recipe.reads_for(params.options()), recipe.name)))
    return {"num_classes": n_classes, **adapted, **dict(params.model_args)}


def run_identity(plan: RunPlan) -> dict[str, Any]:
    """What a run computes: its defining parameters, its stores and what it reads of them, its folds.

    Two attempts with the same identity compute the same folds, so a killed
    run's finished folds can be kept.
    """
    return {"parameters": plan.params.defining(),
            "stores": [{"location": s["location"], "store_id": s["store_id"]} for s in plan.clips.describe()],
            "fingerprint": plan.clips.fingerprint(plan.reads, plan.table["sample"].astype(str).tolist()),
            "folds": [[s.fold.name, list(s.fold.test), list(s.validation)] for s in plan.folds]}


def run_training(params: RunParams, plan: RunPlan | None = None) -> dict[str, Any]:
    """Train and test every fold of the plan, write the run folder, return the report.

    Parameters
    ----------
    params : RunParams
    plan : RunPlan, optional
        From :func:`plan_run` (made here when not given).

    Returns
    -------
    dict
        The content of ``report.json`` (see :mod:`mepipe.train.report`):
        pooled ``accuracy``, ``uf1``, ``uar``, ``confusion`` (AU targets:
        ``f1_macro``, ``f1_binary``, ``per_au``, and ``dataset_mean``);
        ``per_dataset`` (the same figures over each dataset's test clips);
        ``folds`` (per-fold figures); ``store`` (every store with its id);
        ``plan``; ``warnings``; ``seconds``.

    Raises
    ------
    ExistingRunError
        ``params.out`` holds a finished run, or an unfinished one with other
        parameters (``overwrite`` replaces either).
    """
    out = Path(params.out)
    if (out / REPORT_FILE).exists() and not params.overwrite:
        raise ExistingRunError(f"{out} already holds a finished run; choose another --out or pass --overwrite")
    started = time.time()
    plan = plan if plan is not None else plan_run(params)
    recipe, clips = plan.recipe, plan.clips
    state = RunState.begin(out, run_identity(plan), overwrite=params.overwrite)
    kwargs = model_kwargs(params, recipe, clips, len(plan.classes))
    stage_params = stage_train_params(params, recipe)
    device = resolve_device(params.device)
    labels, datasets = plan.labels, plan.datasets
    log.info("%s on %r: %d clips, %d classes, %d folds, device %s", params.model, clips, len(plan.table),
             len(plan.classes), len(plan.folds), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    shared: dict | None = {} if params.in_memory else None
    fold_reports, predictions = [], []
    for number, sides in enumerate(plan.folds):
        result = state.finished.get(sides.fold.name)
        if result is None:
            result = run_fold(recipe, sides, clips=clips, labels=labels, options=params.options(), device=device,
                              shared=shared, stage_params=stage_params, model_kwargs=kwargs,
                              targets=plan.targets, out=out,
                              desc=f"fold {number + 1}/{len(plan.folds)} {sides.fold.name}")
            state.save(result)
        fold_reports.append(result.report)
        predictions += [{**p, "dataset": datasets[p["sample"]]} for p in result.predictions]
    report = _assemble(plan, stage_params, fold_reports, predictions, device, time.time() - started,
                       resumed=list(state.kept))
    write_report(out, report)
    return read_report(out)


def per_dataset_figures(predictions: list[dict[str, Any]], targets: Targets) -> dict[str, dict[str, Any]]:
    """The targets' figures over each dataset's test clips, pooled over all folds (MEGC's table; MEB's per dataset):
    accuracy, UF1, UAR and confusion, or the F1 of each AU and their means."""
    out = {}
    for dataset in sorted({p["dataset"] for p in predictions}):
        rows = [p for p in predictions if p["dataset"] == dataset]
        found = targets.figures([p["true"] for p in rows], [p["pred"] for p in rows])
        out[dataset] = {**found, "n_test_clips": len(rows)}
    return out


def _assemble(plan: RunPlan, stage_params: list[TrainParams], folds: list[dict[str, Any]],
              predictions: list[dict[str, Any]], device: torch.device, seconds: float,
              resumed: list[str]) -> dict[str, Any]:
    params, recipe, classes, targets = plan.params, plan.recipe, plan.classes, plan.targets
    if params.protocol == FINAL:
        return _assemble_final(plan, stage_params, folds, device, seconds)
    y_true = targets.array([p["true"] for p in predictions])
    y_pred = targets.array([p["pred"] for p in predictions])
    tested = sorted({p["sample"] for p in predictions})
    per_dataset = per_dataset_figures(predictions, targets)
    report = {
        "model": params.model, "labels": params.labels, "label_version": params.label_version,
        "protocol": params.protocol, "targets": targets.kind,
        **targets.figures(y_true, y_pred), "classes": classes, "n_test_clips": len(predictions),
        "per_dataset": per_dataset, **targets.summary(per_dataset),
        "mean_over_folds": {k: float(np.mean([f[k] for f in folds])) for k in targets.metrics},
        "folds": folds, "predictions": predictions, "resumed_folds": resumed,
        **_provenance(plan, stage_params, folds, tested, device, seconds),
    }
    for number, stage in enumerate(recipe.stages[:-1], start=1):
        key = f"stage{number}"
        if stage.predict is None:
            continue
        stage_pred = targets.array([p[f"{key}_pred"] for p in predictions])
        report[key] = {**targets.figures(y_true, stage_pred), "measured_on": stage.predict.measured_on,
                       "seconds_per_epoch": float(np.mean([f[key]["seconds_per_epoch"] for f in folds]))}
    if any(INTENSITY.name in p for p in predictions):
        spotting = metrics.spotting_report([p[INTENSITY.name] for p in predictions],
                                           [p["span"] for p in predictions])
        report["spotting_auc"], report["spotting"] = spotting["auc"], spotting
    report["parameter_count"] = folds[0].get("parameter_count") if folds else None
    if device.type == "cuda":
        report["gpu_peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return report


def _assemble_final(plan: RunPlan, stage_params: list[TrainParams], folds: list[dict[str, Any]],
                    device: torch.device, seconds: float) -> dict[str, Any]:
    """The report of a final run: what made the model (stores, recipe, parameters, clips), and no test figure."""
    params = plan.params
    return {
        "model": params.model, "labels": params.labels, "label_version": params.label_version,
        "protocol": params.protocol, "classes": plan.classes, "test_figure": None,
        "note": "final model: trained on every clip of the stores, no test fold, so no test figure; "
                f"epochs: {params.epoch_selection()}",
        **{k: None for k in ("accuracy", "macro_f1", "uf1", "uar", "confusion")},
        "n_test_clips": 0, "folds": folds, "predictions": [], "resumed_folds": [],
        **_provenance(plan, stage_params, folds, [str(s) for s in plan.table["sample"]], device, seconds),
        "parameter_count": folds[0].get("parameter_count") if folds else None,
    }


def _provenance(plan: RunPlan, stage_params: list[TrainParams], folds: list[dict[str, Any]], fingerprinted: list[str],
                device: torch.device, seconds: float) -> dict[str, Any]:
    """What made a run's figures (or final model): parameters, stores and the clips' fingerprint, plan, timing."""
    params, recipe = plan.params, plan.recipe
    described = plan.describe()
    epoch_seconds = [h["seconds"] for f in folds for h in f["history"]]
    return {
        "epoch_selection": params.epoch_selection(),
        "parameters": {"run": dataclasses.asdict(params), "recipe": recipe.describe(),
                       "recipe_options": dict(params.options().choices),
                       "stages": [{"name": s.name, "train": dataclasses.asdict(t)}
                                  for s, t in zip(recipe.stages, stage_params)]},
        "store": {"stores": described["stores"], "fingerprint": plan.clips.fingerprint(plan.reads, fingerprinted),
                  "features": list(plan.reads), "n_clips": len(plan.table), "dropped": described["dropped"]},
        "plan": {k: v for k, v in described.items() if k not in ("stores", "dropped", "folds", "warnings")},
        "warnings": described["warnings"],
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
        "seconds": round(seconds, 3), "device": describe_device(device), "torch": torch.__version__,
        "mepipe": mepipe_version(),
    }


def mepipe_version() -> str:
    """The installed mepipe version (0+unknown when not installed), as run reports and reproduce tables record it."""
    try:
        return version("mepipe")
    except PackageNotFoundError:
        return "0+unknown"


def load_fold_model(run: str | Path, fold: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module,
                                                                                           dict[str, Any]]:
    """The trained model of one fold of a finished run (built with the fold's recorded arguments), and the report."""
    report = read_report(run)
    entry = next((f for f in report["folds"] if f["name"] == fold), None)
    if entry is None:
        raise KeyError(f"{run}: no fold {fold!r}; folds: {', '.join(f['name'] for f in report['folds'])}")
    model = create_model(report["model"], **entry["model_kwargs"])
    load_checkpoint(model, Path(run) / entry["checkpoint"], device)
    return model.eval(), report
