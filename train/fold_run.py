"""What every fold runner gets and gives back.

:mod:`mepipe.train.run` builds one :class:`FoldContext` per fold and hands
it to the runner of the model's input kind (single-network training in
``run.py``, :mod:`mepipe.train.two_stage` for Kim and Choi,
:mod:`mepipe.train.nag_training` for Nag). A runner returns a
:class:`FoldResult`: the fold's entry of ``report.json`` and one prediction
per test clip.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics
from .loop import EpochRecord, TrainParams
from .models import create_model
from .protocols import Fold


@dataclass
class FoldContext:
    """One fold of a run.

    Attributes
    ----------
    params : RunParams
        The run's parameters (:class:`mepipe.train.run.RunParams`).
    train_params : TrainParams
        Settings of the (first-stage) training.
    store : FeatureStore
    kind : str
        Input kind of the model.
    fold : Fold
    label_of : dict
        Clip id → class index.
    n_classes : int
    device : torch.device
    out : Path
        Run folder.
    desc : str
        Progress-bar label of the fold.
    shared : dict or None
        In-memory arrays shared by the folds (``--in-memory``).
    """

    params: Any
    train_params: TrainParams
    store: Any
    kind: str
    fold: Fold
    label_of: dict[str, int]
    n_classes: int
    device: torch.device
    out: Path
    desc: str
    shared: dict | None = None

    def labels(self, samples: list[str] | tuple[str, ...]) -> list[int]:
        return [self.label_of[s] for s in samples]

    def build_model(self, in_chans: int) -> torch.nn.Module:
        """The run's model for this fold's classes and ``in_chans`` input channels (``--model-arg`` wins)."""
        return create_model(self.params.model, **{"num_classes": self.n_classes, "in_chans": in_chans,
                                                  **dict(self.params.model_args)})


@dataclass
class FoldResult:
    """A fold's report entry and its per-clip predictions."""

    report: dict[str, Any]
    predictions: list[dict[str, Any]] = field(default_factory=list)


def figures(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, macro F1, UF1, UAR and the confusion matrix of one set of clip predictions."""
    confusion = metrics.confusion_matrix(y_true, y_pred, n_classes)
    return {"accuracy": metrics.accuracy(y_true, y_pred), "macro_f1": metrics.macro_f1(y_true, y_pred, n_classes),
            "uf1": metrics.uf1(confusion), "uar": metrics.uar(confusion), "confusion": confusion.tolist()}


def history_records(history: list[EpochRecord], stage: int | None = None, first_epoch: int = 1) -> list[dict]:
    """Epoch records as JSON dicts, numbered from ``first_epoch``, tagged with their stage when given."""
    out = []
    for number, record in enumerate(history, start=first_epoch):
        entry = {**dataclasses.asdict(record), "epoch": number}
        if stage is not None:
            entry["stage"] = stage
        out.append(entry)
    return out


def fold_report(ctx: FoldContext, y_true: np.ndarray, y_pred: np.ndarray, *, n_train_items: int,
                history: list[dict], checkpoint: Path, inputs: dict[str, Any], model: torch.nn.Module | None = None,
                **extra: Any) -> dict[str, Any]:
    """The fold's ``report.json`` entry (the keys every runner writes, plus ``extra``)."""
    seconds = [h["seconds"] for h in history]
    return {
        "parameter_count": int(sum(p.numel() for p in model.parameters())) if model is not None else None,
        "name": ctx.fold.name, "n_train": len(ctx.fold.train), "n_test": len(ctx.fold.test),
        "n_train_items": n_train_items, "test": list(ctx.fold.test),
        **figures(y_true, y_pred, ctx.n_classes),
        "epochs": len(history), "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
        "checkpoint": str(checkpoint.relative_to(ctx.out)), "inputs": inputs, "history": history, **extra,
    }


def clip_rows(ctx: FoldContext, samples: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> list[dict[str, Any]]:
    """One prediction entry per test clip."""
    return [{"sample": s, "fold": ctx.fold.name, "true": int(t), "pred": int(p)}
            for s, t, p in zip(samples, y_true, y_pred)]
