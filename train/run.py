"""A training run: label scheme → protocol folds → train, checkpoint and test each fold → report.

>>> from mepipe.train.run import RunParams, run_training
>>> report = run_training(RunParams(model="shcnn", store="data/stores/demo.zarr",
...                                 labels="samm-3", out="runs/shcnn-demo"))   # doctest: +SKIP
>>> report["uf1"]                                                             # doctest: +SKIP

Everything a fold's inputs depend on beyond single clips (standardisation,
STRCN-A mask) is fitted on that fold's training clips; the test clips are
only predicted. SHCNN's clip class is the vote of its frames with the apex
frame breaking ties (Miao §III-E); the STRCN networks predict one class per
clip.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mepipe.featurestore import FeatureStore, open_store

from .augment import augmenter_for
from .data import INPUT_FEATURES, ClipBlockSampler, FlowFrameDataset, StoreDataset, fold_data
from .fold_run import FoldContext, FoldResult, clip_rows, figures, fold_report, history_records
from .labels import apply_scheme
from .loop import (TrainParams, describe_device, load_checkpoint, make_loader, predict, resolve_device,
                   save_checkpoint, seed_everything, train_model)
from .models import balanced_loss, create_model, get_spec, vote
from .nag_training import run_nag_fold, spotting_auc
from .protocols import Fold, composite, cross_dataset, loso, lovo
from .report import checkpoint_path, read_report, write_report
from .two_stage import RECIPES, run_two_stage_fold, temporal_train_params

log = logging.getLogger(__name__)

PROTOCOLS = ("loso", "lovo", "composite", "cross")

DEFAULT_EPOCHS = {"shcnn": 30, "strcn-a": 30, "strcn-g": 30, "kim2017": 40, "lfm": 30, "clfm": 30, "nag2019": 30}
"""Epochs (of the first stage) when ``--epochs`` is not given. Neither Miao nor Xia states an
epoch count for micro-expressions: Miao's FERPlus run stops after 31 epochs, and Xia's lr decay
(×0.8 per epoch) brings the lr to 1e-3 of its start after 30 epochs. Kim trains the CNN 40
epochs (§3.1); Choi and Nag give no count."""

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "strcn-a": balanced_loss,
    "strcn-g": balanced_loss,
}
"""Training loss per model; cross-entropy for models not listed (SHCNN, Miao eq. 2)."""

_KIND_BY_FEATURE = {"flow_first_each": "flow_frames", "flow_onset_apex": "onset_apex_flow",
                    "appearance": "appearance", "appearance_frames": "appearance",
                    "state_frames": "state_sequences", "lfm68": "lfm68_sequences", "lfm21": "lfm21_sequences",
                    "frames64": "nag_windows"}

FOLD_RUNNERS: dict[str, Callable[[FoldContext], FoldResult]] = {
    "state_sequences": run_two_stage_fold,
    "lfm68_sequences": run_two_stage_fold,
    "lfm21_sequences": run_two_stage_fold,
    "nag_windows": run_nag_fold,
}
"""Fold runners of the input kinds that do not train one network on single items (see ``_run_fold``)."""


@dataclass(frozen=True)
class RunParams:
    """Everything that defines a run (recorded in ``report.json``).

    Attributes
    ----------
    model : str
        Registered model name (``mepipe.train.models.list_models()``).
    store : str
        Feature store folder.
    labels : str
        Label scheme (``mepipe.train.labels.list_schemes()``).
    protocol : {"loso", "lovo", "composite", "cross"}
    test_dataset : str, optional
        Held-out dataset of the ``cross`` protocol (all others train).
    out : str
        Run folder.
    epochs, batch_size, lr, optimizer, weight_decay : optional
        Overrides of the model's paper defaults (optimizer: "adam", "sgd" or "rmsprop").
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
        On-the-fly augmentation of the training batches (:mod:`mepipe.train.augment`).
    model_args : tuple of (str, value)
        Extra keyword arguments of the model factory (e.g. ``("n_maps", 32)``).
    terms : tuple of str, optional
        Kim 2017: the objective terms of stage 1 (``("E1", "E2")``; default all five, Table 6).
    temporal_epochs : int, optional
        Two-stage models: epochs of the recurrent stage (default: the model's recipe).
    patience : int, optional
        Early stopping on the training loss; None (default) trains every epoch.
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
        if self.terms is not None and self.model != "kim2017":
            raise ValueError(f"terms (--terms) select Kim 2017's objective terms; model {self.model!r} has none")
        if self.temporal_epochs is not None and (self.temporal_epochs < 1 or self.model not in RECIPES):
            raise ValueError(f"temporal_epochs must be >= 1 and is for the two-stage models {sorted(RECIPES)}")

    def train_params(self) -> TrainParams:
        """The model's paper settings with this run's overrides."""
        optim = get_spec(self.model).optim
        return TrainParams(
            epochs=self.epochs or DEFAULT_EPOCHS.get(self.model, 30),
            batch_size=self.batch_size or optim.batch_size,
            lr=self.lr or optim.lr,
            optimizer=self.optimizer or optim.optimizer,
            weight_decay=optim.weight_decay if self.weight_decay is None else self.weight_decay,
            momentum=optim.momentum or 0.0,
            lr_decay=optim.lr_decay,
            patience=self.patience,
            seed=self.seed,
            workers=self.workers,
            progress=self.progress,
        )


def input_kind(model: str) -> str:
    """Input kind of a registered model (a key of :data:`mepipe.train.data.INPUT_FEATURES`)."""
    spec = get_spec(model)
    for feature in spec.features:
        if feature in _KIND_BY_FEATURE:
            return _KIND_BY_FEATURE[feature]
    raise ValueError(f"model {model!r} reads {spec.features}; training supports models reading one of "
                     f"{sorted(_KIND_BY_FEATURE)}")


def labelled_samples(store: FeatureStore, scheme: str, features: Sequence[str]) -> tuple[pd.DataFrame, list[str],
                                                                                          dict[str, Any]]:
    """The store's usable clips with a ``label`` column, the class names and what was dropped.

    Failed clips, clips the scheme does not map, and clips lacking a needed
    feature are dropped and counted.
    """
    table = store.samples
    failed = (table["status"].astype(str) == "failed") if "status" in table else pd.Series(False, table.index)
    table = table[~failed]
    labels, classes, unmapped = apply_scheme(table, scheme)
    table = table.loc[labels.index].assign(label=labels)
    has_all = np.array([all(store.has(f, s) for f in features) for s in table["sample"]], dtype=bool)
    missing = table.loc[~has_all, "sample"].astype(str).tolist() if len(table) else []
    if missing:
        log.warning("%s: %d clips lack one of %s and are left out: %s", store.path, len(missing), list(features),
                    ", ".join(missing[:5]))
    table = table[has_all].reset_index(drop=True)
    dropped = {"unmapped_by_scheme": unmapped, "failed": int(failed.sum()),
               "missing_features": missing}
    if table.empty:
        raise ValueError(f"{store.path}: no clip is left to train on under scheme {scheme!r} with features "
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


def store_fingerprint(store: FeatureStore, features: Sequence[str], samples: Sequence[str]) -> str:
    """SHA-256 of the store's schema, stage provenance and the cache keys of the arrays a run reads.

    Two stores give the same fingerprint when the run would read the same
    arrays computed the same way (build times and hosts do not enter).
    """
    attrs = store.attrs
    keys = {s: {f: store.attrs_of(f, s).get("cache_key") for f in features if store.has(f, s)}
            for s in sorted(samples)}
    payload = {"schema_version": attrs.get("schema_version"), "dataset": attrs.get("dataset"),
               "stages": attrs.get("stages"), "shared_params": attrs.get("shared_params"),
               "annotations": (attrs.get("annotations") or {}).get("sha256"), "cache_keys": keys}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_training(params: RunParams) -> dict[str, Any]:
    """Train and test every fold, write the run folder, return the report.

    Returns
    -------
    dict
        The content of ``report.json`` (see :mod:`mepipe.train.report`).
    """
    out = Path(params.out)
    if (out / "report.json").exists() and not params.overwrite:
        raise FileExistsError(f"{out} already holds a finished run; choose another --out or pass --overwrite")
    started = time.time()
    store = open_store(params.store)
    kind = input_kind(params.model)
    needed = INPUT_FEATURES[kind]
    table, classes, dropped = labelled_samples(store, params.labels, needed)
    folds = make_folds(table, params.protocol, params.test_dataset)
    if params.folds is not None:
        folds = folds[:params.folds]
    train_params = params.train_params()
    device = resolve_device(params.device)
    label_of = dict(zip(table["sample"].astype(str), table["label"].astype(int)))
    augment = augmenter_for(kind) if params.augment else None
    loss_fn = LOSSES.get(params.model, F.cross_entropy)
    log.info("%s on %s: %d clips, %d classes, %d folds, device %s", params.model, store.path, len(table),
             len(classes), len(folds), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    shared: dict | None = {} if params.in_memory else None
    fold_reports, predictions = [], []
    runner = FOLD_RUNNERS.get(kind)
    for number, fold in enumerate(folds):
        ctx = FoldContext(params, train_params, store, kind, fold, label_of, len(classes), device, out,
                          f"fold {number + 1}/{len(folds)} {fold.name}", shared)
        result = runner(ctx) if runner is not None else _run_fold(ctx, augment, loss_fn)
        fold_reports.append(result.report)
        predictions += result.predictions
    report = _assemble(params, train_params, store, needed, table, classes, dropped, fold_reports, predictions,
                       device, time.time() - started)
    write_report(out, report)
    return report


def _run_fold(ctx: FoldContext, augment, loss_fn) -> FoldResult:
    """One network trained on single items (SHCNN's flow frames, STRCN's clips), tested on the fold's clips."""
    params, train_params, fold = ctx.params, ctx.train_params, ctx.fold
    seed_everything(params.seed)
    data = fold_data(ctx.kind, ctx.store, fold.train, ctx.labels(fold.train), fold.test, ctx.labels(fold.test),
                     mask=params.mask, in_memory=params.in_memory, augment=params.augment, seed=params.seed,
                     shared=ctx.shared)
    model = ctx.build_model(int(data.train[0]["x"].shape[0]))
    sampler = None
    if isinstance(data.train, FlowFrameDataset) and not params.in_memory:
        sampler = ClipBlockSampler(data.train, seed=params.seed)
    loader = make_loader(data.train, train_params.batch_size, sampler=sampler, shuffle=True, seed=params.seed,
                         workers=train_params.workers, device=ctx.device)
    history = train_model(model, loader, train_params, ctx.device, loss_fn=loss_fn, augment=augment, desc=ctx.desc)
    path = save_checkpoint(model, checkpoint_path(ctx.out, fold.name))
    test_loader = make_loader(data.test, train_params.batch_size, workers=train_params.workers, device=ctx.device)
    clip_pred = clip_predictions(data.test, predict(model, test_loader, ctx.device))
    y_true = data.test.labels
    shape = list(data.train[0]["x"].shape)
    report = fold_report(ctx, y_true, clip_pred, n_train_items=len(data.train), history=history_records(history),
                         checkpoint=path, inputs={**data.describe(), "shape": shape, "in_chans": shape[0]},
                         model=model)
    return FoldResult(report, clip_rows(ctx, data.test.samples, y_true, clip_pred))


def clip_predictions(dataset: StoreDataset, predicted: dict[str, np.ndarray]) -> np.ndarray:
    """One class per clip of ``dataset``: argmax of clip logits, or the vote of its frames (SHCNN)."""
    logits, clips = predicted["logits"], predicted["clip"]
    out = np.empty(len(dataset.samples), dtype=np.int64)
    if isinstance(dataset, FlowFrameDataset):
        frames = predicted["frame"]
        for c in range(len(dataset.samples)):
            rows = np.flatnonzero(clips == c)
            rows = rows[np.argsort(frames[rows])]
            apex = int(np.searchsorted(frames[rows], dataset.apex_fields[c]))
            out[c] = vote(logits[rows], min(apex, len(rows) - 1))
        return out
    out[clips] = logits.argmax(axis=1)
    return out


def _assemble(params: RunParams, train_params: TrainParams, store: FeatureStore, needed: Sequence[str],
              table: pd.DataFrame, classes: list[str], dropped: dict[str, Any], folds: list[dict[str, Any]],
              predictions: list[dict[str, Any]], device: torch.device, seconds: float) -> dict[str, Any]:
    y_true = np.array([p["true"] for p in predictions], dtype=np.int64)
    y_pred = np.array([p["pred"] for p in predictions], dtype=np.int64)
    epoch_seconds = [h["seconds"] for f in folds for h in f["history"]]
    tested = sorted({p["sample"] for p in predictions})
    report = {
        "model": params.model, "labels": params.labels, "protocol": params.protocol,
        **figures(y_true, y_pred, len(classes)), "classes": classes, "n_test_clips": len(predictions),
        "mean_over_folds": {k: float(np.mean([f[k] for f in folds])) for k in ("accuracy", "macro_f1", "uf1", "uar")},
        "folds": folds, "predictions": predictions,
        "parameters": {"run": dataclasses.asdict(params), "train": dataclasses.asdict(train_params),
                       "model_doi": get_spec(params.model).doi, "input_kind": input_kind(params.model)},
        "store": {"path": _absolute(store.path), "fingerprint": store_fingerprint(store, needed, tested),
                  "dataset": store.attrs.get("dataset"), "schema_version": store.schema_version,
                  "features": list(needed), "n_clips": len(table), "dropped": dropped},
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
        "seconds": round(seconds, 3),
        "device": describe_device(device),
        "torch": torch.__version__,
    }
    if params.model in RECIPES:
        report["parameters"]["temporal_train"] = dataclasses.asdict(temporal_train_params(params,
                                                                                          RECIPES[params.model]))
        stage1 = np.array([p["stage1_pred"] for p in predictions], dtype=np.int64)
        report["stage1"] = {**figures(y_true, stage1, len(classes)),
                            "measured_on": folds[0]["stage1"]["measured_on"] if folds else None,
                            "seconds_per_epoch": float(np.mean([f["stage1"]["seconds_per_epoch"] for f in folds]))}
    if any("intensity" in p for p in predictions):
        report["spotting_auc"] = spotting_auc([np.array(p["intensity"]) for p in predictions],
                                              [np.array(p["span"]) for p in predictions])
    report["parameter_count"] = folds[0].get("parameter_count") if folds else None
    if device.type == "cuda":
        report["gpu_peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return report


def _absolute(path: str) -> str:
    """A local store's absolute path; URLs unchanged."""
    return path if "://" in path else str(Path(path).resolve())


def load_fold_model(run: str | Path, fold: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module,
                                                                                           dict[str, Any]]:
    """The trained model of one fold of a finished run, and the run's report."""
    report = read_report(run)
    entry = next((f for f in report["folds"] if f["name"] == fold), None)
    if entry is None:
        raise KeyError(f"{run}: no fold {fold!r}; folds: {', '.join(f['name'] for f in report['folds'])}")
    run_params = report["parameters"]["run"]
    kwargs = {k: v for k, v in run_params.get("model_args") or []}
    kwargs.setdefault("num_classes", len(report["classes"]))
    kwargs.setdefault("in_chans", int(entry["inputs"].get("in_chans", entry["inputs"]["shape"][0])))
    model = create_model(report["model"], **kwargs)
    load_checkpoint(model, Path(run) / entry["checkpoint"], device)
    return model.eval(), report
