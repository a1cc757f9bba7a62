"""A training run: label scheme → protocol folds → the model's recipe on each fold → report.

>>> from mepipe.train.run import RunParams, run_training
>>> report = run_training(RunParams(model="shcnn", store="data/stores/demo.zarr",
...                                 labels="samm-3", out="runs/shcnn-demo"))   # doctest: +SKIP
>>> report["uf1"]                                                             # doctest: +SKIP

Everything the run knows about the network comes from its
:class:`~mepipe.train.recipe.Recipe`: the features checked against the
store before any fold runs, the size arguments the network needs, and the
stages :func:`mepipe.train.fold.run_fold` trains. Everything a fold's
inputs depend on beyond single clips (standardisation, STRCN-A mask) is
fitted on that fold's training clips; the test clips are only predicted.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mepipe.featurestore.errors import UsageError

from . import metrics
from .clips import ClipTable
from .fold import FoldInputs, figures, run_fold
from .labels import apply_scheme
from .loop import TrainParams, describe_device, load_checkpoint, resolve_device
from .models import create_model, get_recipe
from .protocols import Fold, composite, cross_dataset, loso, lovo
from .recipe import Recipe, RunOptions
from .report import read_report, write_report

log = logging.getLogger(__name__)

PROTOCOLS = ("loso", "lovo", "composite", "cross")


@dataclass(frozen=True)
class RunParams:
    """Everything that defines a run (recorded in ``report.json``).

    Attributes
    ----------
    model : str
        Registered model name (``mepipe.train.models.list_models()``).
    store : str
        Feature store folder, zip or URL.
    labels : str
        Label scheme (``mepipe.train.labels.list_schemes()``).
    protocol : {"loso", "lovo", "composite", "cross"}
    test_dataset : str, optional
        Held-out dataset of the ``cross`` protocol (all others train).
    out : str
        Run folder.
    epochs, batch_size, lr, optimizer, weight_decay : optional
        Overrides of the first stage's settings (optimizer: "adam", "sgd" or "rmsprop").
    device : {"auto", "cpu", "cuda"}
    seed : int
        Seeds every fold (each fold restarts from the same seed).
    mask : {"fold", "global"}
        STRCN-A mask from each fold's training clips, or from all clips (Xia).
    in_memory : bool
        Hold the needed features of the fold's clips in RAM.
    folds : int, optional
        Run only the first N folds (quick checks); the figures cover those.
    augment : bool
        On-the-fly augmentation of training items and batches.
    model_args : tuple of (str, value)
        Extra keyword arguments of the model factory (e.g. ``("n_maps", 32)``); they win over the
        sizes the recipe derives from the store.
    terms : tuple of str, optional
        Objective terms, for models whose recipe takes them (Kim 2017: ``("E1", "E2")``; Table 6).
    recipe_options : tuple of (str, value)
        The recipe's named options (``--recipe-option NAME=VALUE``, e.g. Kim's ``("means", "batch")``);
        unset ones take their default, the paper's way.
    temporal_epochs : int, optional
        Multi-stage models: epochs of the second (recurrent) stage.
    patience : int, optional
        Early stopping of the first stage on the training loss; None (default) trains every epoch.
    workers : int
        DataLoader worker processes.
    progress : bool
        tqdm bar per fold.
    overwrite : bool
        Replace an existing run in ``out``.
    """

    model: str
    store: str
    labels: str
    protocol: str = "loso"
    test_dataset: str | None = None
    out: str = "runs/run"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    device: str = "auto"
    seed: int = 0
    mask: str = "fold"
    in_memory: bool = False
    folds: int | None = None
    augment: bool = True
    model_args: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    terms: tuple[str, ...] | None = None
    recipe_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    temporal_epochs: int | None = None
    patience: int | None = None
    workers: int = 0
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "cross" and not self.test_dataset:
            raise ValueError("the cross protocol needs test_dataset (--test-dataset NAME)")
        if self.mask not in ("fold", "global"):
            raise ValueError(f"mask must be 'fold' or 'global', got {self.mask!r}")
        if self.folds is not None and self.folds < 1:
            raise ValueError(f"folds must be >= 1, got {self.folds}")
        recipe = get_recipe(self.model)
        if self.terms is not None and "terms" not in recipe.options:
            raise ValueError(f"terms (--terms) select objective terms; model {self.model!r} has none "
                             "(Kim 2017's E1..E5 do)")
        if self.mask != "fold" and "mask" not in recipe.options:
            raise ValueError(f"mask (--mask) chooses the clips of a dataset-level mask; model {self.model!r} "
                             "reads none (STRCN-A does)")
        recipe.resolve_choices(self.recipe_options)
        if self.temporal_epochs is not None and (self.temporal_epochs < 1 or len(recipe.stages) < 2):
            raise ValueError(f"temporal_epochs must be >= 1 and is for models with a second stage; "
                             f"{self.model!r} has {len(recipe.stages)}")

    def options(self) -> RunOptions:
        """What item makers and objectives see of this run."""
        return RunOptions(augment=self.augment, seed=self.seed, in_memory=self.in_memory, mask=self.mask,
                          terms=self.terms, workers=self.workers,
                          choices=get_recipe(self.model).resolve_choices(self.recipe_options))


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


def labelled_samples(clips: ClipTable, scheme: str, features: Sequence[str]) -> tuple[pd.DataFrame, list[str],
                                                                                      dict[str, Any]]:
    """The usable clips with a ``label`` column, the class names and what was dropped.

    Failed clips, clips the scheme does not map, and clips lacking a needed
    feature are dropped and counted.
    """
    table = clips.samples
    failed = (table["status"].astype(str) == "failed") if "status" in table else pd.Series(False, table.index)
    table = table[~failed]
    labels, classes, unmapped = apply_scheme(table, scheme)
    table = table.loc[labels.index].assign(label=labels)
    has_all = np.array([all(clips.has(f, s) for f in features) for s in table["sample"]], dtype=bool)
    missing = table.loc[~has_all, "sample"].astype(str).tolist() if len(table) else []
    if missing:
        log.warning("%d clips lack one of %s and are left out: %s", len(missing), list(features),
                    ", ".join(missing[:5]))
    table = table[has_all].reset_index(drop=True)
    dropped = {"unmapped_by_scheme": unmapped, "failed": int(failed.sum()), "missing_features": missing}
    if table.empty:
        raise ValueError(f"{clips!r}: no clip is left to train on under scheme {scheme!r} with features "
                         f"{list(features)} (dropped: {dropped})")
    return table, classes, dropped


def make_folds(table: pd.DataFrame, protocol: str, test_dataset: str | None = None) -> list[Fold]:
    """Folds of a protocol over a labelled sample table."""
    if protocol == "loso":
        return loso(table)
    if protocol == "lovo":
        return lovo(table)
    if protocol == "composite":
        return composite(table)
    others = sorted(set(table["dataset"].astype(str)) - {test_dataset})
    return cross_dataset(table, train=others, test=test_dataset)


def model_kwargs(params: RunParams, recipe: Recipe, clips: ClipTable, n_classes: int) -> dict[str, Any]:
    """The factory arguments of the run's model: classes, the sizes the recipe derives from the store, overrides."""
    adapted = dict(recipe.adapt(clips.geometry(recipe.reads_for(params.options()), recipe.name)))
    return {"num_classes": n_classes, **adapted, **dict(params.model_args)}


def run_training(params: RunParams) -> dict[str, Any]:
    """Train and test every fold, write the run folder, return the report.

    Returns
    -------
    dict
        The content of ``report.json`` (see :mod:`mepipe.train.report`).
    """
    out = Path(params.out)
    if (out / "report.json").exists() and not params.overwrite:
        raise UsageError(f"{out} already holds a finished run; choose another --out or pass --overwrite")
    started = time.time()
    recipe = get_recipe(params.model)
    clips = ClipTable.of(params.store)
    reads = recipe.reads_for(params.options())
    clips.require(reads, recipe.name)
    table, classes, dropped = labelled_samples(clips, params.labels, reads)
    kwargs = model_kwargs(params, recipe, clips, len(classes))
    folds = make_folds(table, params.protocol, params.test_dataset)
    if params.folds is not None:
        folds = folds[:params.folds]
    stage_params = stage_train_params(params, recipe)
    device = resolve_device(params.device)
    label_of = dict(zip(table["sample"].astype(str), table["label"].astype(int)))
    log.info("%s on %r: %d clips, %d classes, %d folds, device %s", params.model, clips, len(table), len(classes),
             len(folds), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    shared: dict | None = {} if params.in_memory else None
    fold_reports, predictions = [], []
    for number, fold in enumerate(folds):
        inputs = FoldInputs(clips, list(fold.train), [label_of[s] for s in fold.train], list(fold.test),
                            [label_of[s] for s in fold.test], params.options(), device, shared)
        result = run_fold(recipe, inputs, fold=fold, stage_params=stage_params, model_kwargs=kwargs,
                          n_classes=len(classes), out=out, desc=f"fold {number + 1}/{len(folds)} {fold.name}")
        fold_reports.append(result.report)
        predictions += result.predictions
    report = _assemble(params, recipe, stage_params, clips, table, classes, dropped, fold_reports, predictions,
                       device, time.time() - started)
    write_report(out, report)
    return report


def _assemble(params: RunParams, recipe: Recipe, stage_params: list[TrainParams], clips: ClipTable,
              table: pd.DataFrame, classes: list[str], dropped: dict[str, Any], folds: list[dict[str, Any]],
              predictions: list[dict[str, Any]], device: torch.device, seconds: float) -> dict[str, Any]:
    y_true = np.array([p["true"] for p in predictions], dtype=np.int64)
    y_pred = np.array([p["pred"] for p in predictions], dtype=np.int64)
    epoch_seconds = [h["seconds"] for f in folds for h in f["history"]]
    tested = sorted({p["sample"] for p in predictions})
    stores = clips.describe()
    first = next(iter(stores.values()))
    report = {
        "model": params.model, "labels": params.labels, "protocol": params.protocol,
        **figures(y_true, y_pred, len(classes)), "classes": classes, "n_test_clips": len(predictions),
        "mean_over_folds": {k: float(np.mean([f[k] for f in folds])) for k in ("accuracy", "macro_f1", "uf1", "uar")},
        "folds": folds, "predictions": predictions,
        "parameters": {"run": dataclasses.asdict(params), "recipe": recipe.describe(),
                       "stages": [{"name": s.name, "train": dataclasses.asdict(t)}
                                  for s, t in zip(recipe.stages, stage_params)]},
        "store": {"path": first["path"], "dataset": first["dataset"], "schema_version": first["schema_version"],
                  "stores": stores, "fingerprint": clips.fingerprint(recipe.reads_for(params.options()), tested),
                  "features": list(recipe.reads_for(params.options())), "n_clips": len(table), "dropped": dropped},
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
        "seconds": round(seconds, 3),
        "device": describe_device(device),
        "torch": torch.__version__,
    }
    for number, stage in enumerate(recipe.stages[:-1], start=1):
        key = f"stage{number}"
        if stage.predict is None:
            continue
        stage_pred = np.array([p[f"{key}_pred"] for p in predictions], dtype=np.int64)
        report[key] = {**figures(y_true, stage_pred, len(classes)), "measured_on": stage.predict.measured_on,
                       "seconds_per_epoch": float(np.mean([f[key]["seconds_per_epoch"] for f in folds]))}
    if any("intensity" in p for p in predictions):
        spotting = metrics.spotting_report([p["intensity"] for p in predictions], [p["span"] for p in predictions])
        report["spotting_auc"], report["spotting"] = spotting["auc"], spotting
    report["parameter_count"] = folds[0].get("parameter_count") if folds else None
    if device.type == "cuda":
        report["gpu_peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return report


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
