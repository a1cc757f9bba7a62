"""One fold of a run, the same for every network: the recipe's stages in order, then the fold's report.

:func:`run_fold` is the only fold runner. For each stage of the model's
:class:`~mepipe.train.recipe.Recipe` it builds the stage's datasets (its
item maker fits what it needs on the fold's training clips: the
standardisation, the STRCN-A mask, a recurrent head's input scale), its
loader, objective and optimiser, trains the parameters the stage trains,
saves a checkpoint and, where the stage has a rule, predicts the test
clips. The last stage's predictions are the fold's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics
from .clips import ClipTable
from .data import Standardiser
from .loop import EpochHook, EpochRecord, TrainParams, save_checkpoint, seed_everything, train_model
from .models import create_model
from .protocols import Fold
from .recipe import Recipe, RunOptions
from .report import checkpoint_path

__all__ = ["FoldInputs", "FoldResult", "FoldStatistics", "epoch_hook", "figures", "run_fold",
           "stage_checkpoint_path"]


@dataclass
class FoldStatistics:
    """What a fold fitted on its training clips (never on a test clip), kept for the report.

    Attributes
    ----------
    standardiser : Standardiser or None
        Per-channel standardisation of the first stage's items (later stages reuse it).
    mask : ndarray or None
        STRCN-A mask (H, W) bool.
    mask_clips : tuple of str
        The clips the mask was built from.
    """

    standardiser: Standardiser | None = None
    mask: np.ndarray | None = None
    mask_clips: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-able statistics, enough to rebuild the test inputs (saliency, re-evaluation)."""
        out: dict[str, Any] = {}
        if self.standardiser is not None:
            out["standardiser"] = self.standardiser.to_dict()
        if self.mask is not None:
            out["mask_clips"] = list(self.mask_clips)
            out["mask_pixels"] = int(self.mask.sum())
        return out


@dataclass
class FoldInputs:
    """What item makers see of a fold: its clips and labels, the run's options, what was fitted so far.

    Attributes
    ----------
    clips : ClipTable
        Every clip of the run's stores (a global statistic may read clips
        outside the fold's two sides).
    train, test : list of str
        Clip ids of the two sides.
    train_labels, test_labels : list of int
    options : RunOptions
    device : torch.device
    shared : dict or None
        In-memory arrays shared by the folds (``--in-memory``).
    statistics : FoldStatistics
    """

    clips: ClipTable
    train: list[str]
    train_labels: list[int]
    test: list[str]
    test_labels: list[int]
    options: RunOptions
    device: torch.device
    shared: dict | None = None
    statistics: FoldStatistics = field(default_factory=FoldStatistics)

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise ValueError(f"clips {sorted(overlap)[:5]} are on both sides of a fold")

    @property
    def io(self) -> dict[str, Any]:
        """Reader settings of the datasets: in memory or lazy, and the arrays shared across folds."""
        return {"in_memory": self.options.in_memory, "shared": self.shared}


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


def stage_checkpoint_path(run: str | Path, fold: str, stage: int) -> Path:
    """Where the checkpoint after stage ``stage`` (1-based) of a multi-stage fold lives; the last is the fold's."""
    path = checkpoint_path(run, fold)
    return path.with_name(f"{path.stem}-stage{stage}{path.suffix}")


def epoch_hook(model: torch.nn.Module, train: Any, objective: Any, device: torch.device) -> EpochHook | None:
    """The stage's per-epoch work: the training dataset's ``start_epoch(epoch)``, then the objective's
    ``start_epoch(model, dataset, device, epoch)``, each where it has one (None when neither has)."""
    dataset_hook = getattr(train, "start_epoch", None)
    objective_hook = getattr(objective, "start_epoch", None)
    if dataset_hook is None and objective_hook is None:
        return None

    def hook(epoch: int) -> None:
        if dataset_hook is not None:
            dataset_hook(epoch)
        if objective_hook is not None:
            objective_hook(model, train, device, epoch)

    return hook


def _mean_seconds(history: list[EpochRecord]) -> float:
    return float(np.mean([h.seconds for h in history])) if history else 0.0


def run_fold(recipe: Recipe, inputs: FoldInputs, *, fold: Fold, stage_params: list[TrainParams],
             model_kwargs: dict[str, Any], n_classes: int, out: Path, desc: str) -> FoldResult:
    """Train the recipe's stages on the fold's training clips and predict its test clips.

    Parameters
    ----------
    recipe : Recipe
    inputs : FoldInputs
    fold : Fold
    stage_params : list of TrainParams
        One per stage (the recipe's settings with the run's overrides).
    model_kwargs : dict
        Arguments of the model factory (classes, channels, sizes, ``--model-arg``).
    n_classes : int
    out : Path
        Run folder (checkpoints).
    desc : str
        Progress-bar label.
    """
    seed_everything(inputs.options.seed)
    model = create_model(recipe.name, **model_kwargs)
    multi = len(recipe.stages) > 1
    history: list[dict] = []
    stage_info: list[dict[str, Any]] = []
    stage_figures: dict[str, dict[str, Any]] = {}
    stage_rows: dict[str, np.ndarray] = {}
    y_true = np.asarray(inputs.test_labels, dtype=np.int64)
    predicted = None
    n_first_items = 0
    for number, (stage, params) in enumerate(zip(recipe.stages, stage_params), start=1):
        label = f"{desc} stage {number}" if multi else desc
        train, test = stage.items.datasets(inputs, model)
        n_first_items = n_first_items or len(train)
        loader = stage.items.loader(train, params.batch_size, inputs, train=True)
        objective = stage.objective(inputs.options)
        records = train_model(model, loader, params, inputs.device, objective=objective,
                              parameters=list(stage.parameters(model)), desc=label,
                              before_epoch=epoch_hook(model, train, objective, inputs.device))
        history += history_records(records, stage=number if multi else None, first_epoch=len(history) + 1)
        last = number == len(recipe.stages)
        path = save_checkpoint(model, checkpoint_path(out, fold.name) if last
                               else stage_checkpoint_path(out, fold.name, number))
        stage_info.append({"name": stage.name, "items": len(train), "shape": list(train[0]["x"].shape),
                           "epochs": len(records), "seconds_per_epoch": _mean_seconds(records),
                           "checkpoint": str(path.relative_to(out))})
        if stage.predict is None:
            continue
        test_loader = stage.items.loader(test, params.batch_size, inputs, train=False)
        predicted = stage.predict(model, test_loader, test, len(inputs.test), inputs.device)
        if not last:
            key = f"stage{number}"
            stage_figures[key] = {**figures(y_true, predicted.pred, n_classes), "epochs": len(records),
                                  "checkpoint": str(path.relative_to(out)), "measured_on": stage.predict.measured_on,
                                  "seconds_per_epoch": _mean_seconds(records)}
            stage_rows[key] = predicted.pred
    seconds = [h["seconds"] for h in history]
    report = {
        "parameter_count": int(sum(p.numel() for p in model.parameters())),
        "name": fold.name, "n_train": len(fold.train), "n_test": len(fold.test), "n_train_items": n_first_items,
        "test": list(fold.test), **figures(y_true, predicted.pred, n_classes),
        "epochs": len(history), "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
        "checkpoint": stage_info[-1]["checkpoint"], "model_kwargs": model_kwargs,
        "inputs": {**inputs.statistics.describe(), "stages": stage_info}, "history": history,
        **stage_figures, **predicted.fold,
    }
    rows = [{"sample": s, "fold": fold.name, "true": int(t), "pred": int(p)}
            for s, t, p in zip(inputs.test, y_true, predicted.pred)]
    for row, extra in zip(rows, predicted.rows):
        row.update(extra)
    for key, pred in stage_rows.items():
        for row, p in zip(rows, pred):
            row[f"{key}_pred"] = int(p)
    return FoldResult(report, rows)
