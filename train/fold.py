"""One fold of a run, the same for every network: the recipe's stages in order, then the fold's report.

:func:`run_fold` is the only fold runner. It works in two phases.
Training: for each stage of the model's :class:`~mepipe.train.recipe.Recipe`
it builds the stage's datasets from the fold's fit clips (its item maker
fits what it needs on them: the standardisation, the STRCN-A mask, a
recurrent head's input scale) and its validation clips, if any; trains the
parameters the stage trains with the stage's loader, objective and
optimiser, keeping the epoch the validation clips choose (or the last of
the fixed epochs); and saves a checkpoint. Testing, once every stage is
saved: the test clips are read for the first time and predicted by each
stage that has a clip rule (the last stage's predictions are the fold's).
Nothing computed from a test clip can therefore choose an epoch, a
checkpoint or a statistic.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .clips import ClipTable
from .inputs.base import Standardiser
from .loop import EpochHook, EpochRecord, TrainParams, load_checkpoint, save_checkpoint, seed_everything, train_model
from .models import create_model
from .protocols import Fold
from .recipe import Recipe, RunOptions, TrainingStage
from .report import checkpoint_path
from .targets import ClassTargets, Targets

__all__ = ["EpochChoice", "FoldInputs", "FoldResult", "FoldSides", "FoldStatistics", "epoch_hook", "run_fold",
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
    """What item makers and objective makers see of a fold: its clips and labels, the run's options, what was
    fitted so far.

    Attributes
    ----------
    clips : ClipTable
        Every clip of the run's stores (a global statistic may read clips
        outside the fold's two sides).
    train, test : list of str
        Clip ids of the two sides.
    train_labels, test_labels : list
        Their targets: class indices, or AU vectors (:attr:`targets`).
    options : RunOptions
    device : torch.device
    shared : dict or None
        In-memory arrays shared by the folds (``--in-memory``).
    statistics : FoldStatistics
    targets : ClassTargets or AuTargets
        What the run trains the network to predict (objectives take their loss from it).
    """

    clips: ClipTable
    train: list[str]
    train_labels: list[Any]
    test: list[str]
    test_labels: list[Any]
    options: RunOptions
    device: torch.device
    shared: dict | None = None
    statistics: FoldStatistics = field(default_factory=FoldStatistics)
    targets: Targets = field(default_factory=ClassTargets)

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


@dataclass(frozen=True)
class FoldSides:
    """The clips of one fold: the side trained on, the side epochs are chosen on (maybe none), the side tested.

    Attributes
    ----------
    fold : Fold
        The protocol's fold (its test side is :attr:`test`).
    fit : tuple of str
        Clips the network is fitted on: the fold's training side less the validation clips.
    validation : tuple of str
        Clips of held-out training people whose figures choose the epoch; empty for fixed epochs.
    validation_people : tuple of str
    """

    fold: Fold
    fit: tuple[str, ...]
    validation: tuple[str, ...] = ()
    validation_people: tuple[str, ...] = ()

    @classmethod
    def fixed(cls, fold: Fold) -> FoldSides:
        """Fixed epochs: fitted on the whole training side."""
        return cls(fold, tuple(fold.train))

    @property
    def test(self) -> tuple[str, ...]:
        return tuple(self.fold.test)

    def __post_init__(self) -> None:
        if set(self.fit) & set(self.validation) or (set(self.fit) | set(self.validation)) & set(self.fold.test):
            raise ValueError(f"fold {self.fold.name}: a clip is on two of its fit, validation and test sides")


@dataclass
class EpochChoice:
    """Chooses a stage's epoch on the validation clips: keeps the state of the best one, stops on patience.

    After each epoch the stage's clip rule predicts the validation clips;
    the epoch with the highest score (the first of the targets'
    :attr:`~mepipe.train.targets.ClassTargets.validation` figures: UF1, or the
    mean macro F1 over AUs; the earliest among equals) is kept,
    and training stops after ``patience`` epochs without a higher one. Only
    validation clips (people of the fold's training side) are read.
    """

    stage: TrainingStage
    model: torch.nn.Module
    loader: Any
    dataset: Any
    labels: np.ndarray
    targets: Targets
    device: torch.device
    patience: int | None = None
    scores: list[dict[str, float]] = field(default_factory=list, init=False)
    best_epoch: int = field(default=0, init=False)
    best_score: float = field(default=-1.0, init=False)
    state: dict[str, torch.Tensor] | None = field(default=None, init=False, repr=False)

    def __call__(self, record: EpochRecord) -> bool:
        predicted = self.stage.predict(self.model, self.loader, self.dataset, len(self.labels), self.device,
                                       self.targets).pred
        found = self.targets.figures(self.labels, predicted)
        score = {f"val_{m}": found[m] for m in self.targets.validation}
        self.scores.append(score)
        chosen_by = score[f"val_{self.targets.validation[0]}"]
        if chosen_by > self.best_score + 1e-12:
            self.best_score, self.best_epoch = chosen_by, record.epoch
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return self.patience is not None and record.epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        """Put the model back in the state of the chosen epoch."""
        if self.state is not None:
            self.model.load_state_dict(self.state)


def run_fold(recipe: Recipe, sides: FoldSides, *, clips: ClipTable, labels: Mapping[str, Any], options: RunOptions,
             device: torch.device, shared: dict | None, stage_params: list[TrainParams], model_kwargs: dict[str, Any],
             targets: Targets, out: Path, desc: str) -> FoldResult:
    """Train the recipe's stages on the fold's fit clips, then, and only then, predict its test clips.

    Training sees the fit clips and the validation clips (which choose the
    epoch of each stage when there are any); no test clip is in the inputs
    item makers get while any stage trains. Once every stage is trained and
    saved, the test clips are predicted: by the final model, and by the
    checkpoint of each earlier stage that has a clip rule (its figures).

    Parameters
    ----------
    recipe : Recipe
    sides : FoldSides
    clips : ClipTable
    labels : mapping of str to int or AU vector
        Target of every clip of the fold (a class index, or an AU vector).
    options : RunOptions
    device : torch.device
    shared : dict or None
        In-memory arrays shared by the folds (``--in-memory``).
    stage_params : list of TrainParams
        One per stage (the recipe's settings with the run's overrides).
    model_kwargs : dict
        Arguments of the model factory (classes, channels, sizes, ``--model-arg``).
    targets : ClassTargets or AuTargets
        What the network predicts: its loss, decisions and figures.
    out : Path
        Run folder (checkpoints).
    desc : str
        Progress-bar label.
    """
    seed_everything(options.seed)
    model = create_model(recipe.name, **model_kwargs)
    multi = len(recipe.stages) > 1
    training = FoldInputs(clips, list(sides.fit), [labels[s] for s in sides.fit], list(sides.validation),
                          [labels[s] for s in sides.validation], options, device, shared, targets=targets)
    history: list[dict] = []
    stage_info: list[dict[str, Any]] = []
    checkpoints: list[Path] = []
    chosen: dict[str, int] = {}
    n_first_items = 0
    for number, (stage, params) in enumerate(zip(recipe.stages, stage_params), start=1):
        label = f"{desc} stage {number}" if multi else desc
        train, validation = stage.items.datasets(training, model)
        n_first_items = n_first_items or len(train)
        loader = stage.items.loader(train, params.batch_size, training, train=True)
        objective = stage.objective(training)
        choice = None
        if sides.validation and stage.predict is not None:
            choice = EpochChoice(stage, model, stage.items.loader(validation, params.batch_size, training, train=False),
                                 validation, targets.array(training.test_labels), targets, device,
                                 patience=params.patience)
            params = dataclasses.replace(params, patience=None)  # patience counts validation epochs instead
        records = train_model(model, loader, params, device, objective=objective,
                              parameters=list(stage.parameters(model)), desc=label,
                              before_epoch=epoch_hook(model, train, objective, device), after_epoch=choice)
        entries = history_records(records, stage=number if multi else None, first_epoch=len(history) + 1)
        if choice is not None:
            choice.restore()
            for entry, score in zip(entries, choice.scores):
                entry.update(score)
            chosen[stage.name] = choice.best_epoch
        history += entries
        last = number == len(recipe.stages)
        path = save_checkpoint(model, checkpoint_path(out, sides.fold.name) if last
                               else stage_checkpoint_path(out, sides.fold.name, number))
        checkpoints.append(path)
        stage_info.append({"name": stage.name, "items": len(train), "shape": list(train[0].x.shape),
                           "epochs": len(records), "seconds_per_epoch": _mean_seconds(records),
                           "checkpoint": str(path.relative_to(out))})
    report = {
        "parameter_count": int(sum(p.numel() for p in model.parameters())),
        "name": sides.fold.name, "n_train": len(sides.fold.train), "n_test": len(sides.test),
        "n_train_items": n_first_items, "test": list(sides.test), "epochs": len(history),
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else 0.0,
        "checkpoint": stage_info[-1]["checkpoint"], "model_kwargs": model_kwargs,
        "inputs": {**training.statistics.describe(), "stages": stage_info}, "history": history,
    }
    if sides.validation:
        report["validation"] = {"people": list(sides.validation_people), "clips": list(sides.validation),
                                "n_fit": len(sides.fit), "chosen_epoch": chosen}
    if not sides.test:
        return FoldResult(report)  # a final model (--final): nothing to test
    # Every stage is trained and saved: only now are the test clips read.
    testing = FoldInputs(clips, [], [], list(sides.test), [labels[s] for s in sides.test], options, device, shared,
                         statistics=training.statistics, targets=targets)
    y_true = targets.array(testing.test_labels)
    stage_figures: dict[str, dict[str, Any]] = {}
    stage_rows: dict[str, np.ndarray] = {}
    predicted = None
    for number, (stage, params) in enumerate(zip(recipe.stages, stage_params), start=1):
        if stage.predict is None:
            continue
        last = number == len(recipe.stages)
        trained = model if last else load_checkpoint(create_model(recipe.name, **model_kwargs), checkpoints[number - 1],
                                                     device)
        _, test = stage.items.datasets(testing, trained)
        test_loader = stage.items.loader(test, params.batch_size, testing, train=False)
        predicted = stage.predict(trained, test_loader, test, len(testing.test), device, targets)
        if not last:
            key = f"stage{number}"
            info = stage_info[number - 1]
            stage_figures[key] = {**targets.figures(y_true, predicted.pred), "epochs": info["epochs"],
                                  "checkpoint": info["checkpoint"], "measured_on": stage.predict.measured_on,
                                  "seconds_per_epoch": info["seconds_per_epoch"]}
            stage_rows[key] = predicted.pred
    fold = sides.fold
    report.update({**targets.figures(y_true, predicted.pred), **stage_figures, **predicted.fold})
    rows = [{"sample": s, "fold": fold.name, "true": targets.row(t), "pred": targets.row(p)}
            for s, t, p in zip(testing.test, y_true, predicted.pred)]
    for row, extra in zip(rows, predicted.rows):
        row.update(extra)
    for key, pred in stage_rows.items():
        for row, p in zip(rows, pred):
            row[f"{key}_pred"] = targets.row(p)
    return FoldResult(report, rows)
