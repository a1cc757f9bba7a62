"""A model's recipe: everything training needs to know about a network, declared once in its module.

Each network module (``train/models/<net>.py``) builds one :class:`Recipe`
and registers it with its factory (:func:`mepipe.train.models.register_model`).
The trainer (:mod:`mepipe.train.fold`) reads it and has no per-model code:
it checks that every store holds :attr:`Recipe.reads`, asks
:attr:`Recipe.adapt` for the network's size arguments, then runs the
stages in order, each from its :class:`TrainingStage` (items, batches,
objective, optimiser, epochs, the parameters it trains, how its test clips
are predicted).

Building blocks for recipes live beside this module: item makers in
:mod:`mepipe.train.items`, objectives in :mod:`mepipe.train.objectives`,
clip-prediction rules in :mod:`mepipe.train.rules`. A new network that
needs none beyond them is one file: its ``nn.Module``, its factory and its
recipe.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from mepipe.featurestore.errors import DataError

from .loop import Objective

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

    from .clips import Geometry
    from .fold import FoldInputs
    from .rules import ClipPredictions

__all__ = ["ItemMaker", "ClipRule", "ObjectiveMaker", "Optimiser", "Recipe", "RecipeError", "RunOptions",
           "TrainingStage", "no_adaptation"]

OPTIMISERS = ("adam", "sgd", "rmsprop")
"""Optimiser families a stage may use."""


class RecipeError(DataError, ValueError):
    """A store's features cannot be read by a model as configured (a size it cannot take, say)."""


@dataclass(frozen=True)
class Optimiser:
    """Optimiser settings of one training stage (a paper's, or this implementation's choice).

    Attributes
    ----------
    name : {"adam", "sgd", "rmsprop"}
    lr : float
        Initial learning rate.
    weight_decay : float
        Coefficient ``wd`` added to the gradient as ``wd * w`` (torch's
        ``weight_decay``). A paper's loss term ``lam * sum ||w||^2`` is
        ``wd = 2 * lam``.
    momentum : float
        SGD or RMSProp momentum (0 for none).
    batch_size : int
        Mini-batch size, in the stage's items (see its item maker).
    lr_decay : float
        Factor applied to the learning rate after every epoch (1.0 = constant).
    """

    name: str
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    batch_size: int = 32
    lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {OPTIMISERS}, got {self.name!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.momentum < 0 or self.batch_size < 1 \
                or not 0 < self.lr_decay <= 1:
            raise ValueError(f"invalid optimiser settings: {self!r}")


@dataclass(frozen=True)
class RunOptions:
    """What a run decides beyond the recipe, as item makers and objectives see it.

    Attributes
    ----------
    augment : bool
        On-the-fly augmentation of training items and batches.
    seed : int
    in_memory : bool
        Hold the features of the fold's clips in RAM.
    mask : {"fold", "global"}
        Clips a dataset-level statistic (the STRCN-A mask) is fitted on: the
        fold's training clips, or every clip (the papers').
    terms : tuple of str or None
        Objective terms to use, for objectives made of several (Kim's E1..E5).
    workers : int
        DataLoader worker processes.
    """

    augment: bool = True
    seed: int = 0
    in_memory: bool = False
    mask: str = "fold"
    terms: tuple[str, ...] | None = None
    workers: int = 0


class ItemMaker(Protocol):
    """How a stage's items are assembled from store features and batched.

    ``datasets`` builds the fold's training and test datasets; it fits what
    it needs on the training clips only (standardisation, masks) and records
    it in ``fold.statistics``, unless ``fold.statistics`` already holds it.
    ``model`` is the network as trained by the earlier stages (for items
    that are its features).

    The fold runner calls it while training with the fold's fit clips and
    its validation clips (possibly none) as the two sides, and, once every
    stage is trained, with an empty training side and the test clips: then
    every statistic is already in ``fold.statistics`` and must be reused,
    never refitted (the test clips are read only in that call).
    """

    reads: tuple[str, ...]

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]: ...

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader: ...


ObjectiveMaker = Callable[[RunOptions], Objective]
"""Makes a stage's training objective ``(model, batch, generator) -> (loss, logits, y)`` for a run."""


class ClipRule(Protocol):
    """How the classes of a fold's test clips are predicted from a stage's test items.

    Called with the trained model, the stage's test loader and dataset (whose
    items carry the index of their clip in the fold's test list), the number
    of test clips and the device; see :mod:`mepipe.train.rules`.
    """

    measured_on: str

    def __call__(self, model: nn.Module, loader: DataLoader, dataset: Dataset, n_clips: int,
                 device: torch.device) -> ClipPredictions: ...


@dataclass(frozen=True)
class TrainingStage:
    """One stage of a recipe.

    Attributes
    ----------
    name : str
        ``network`` for one-stage recipes; e.g. ``cnn`` and ``sequence``.
    items : ItemMaker
        What the stage trains on and how it is batched.
    objective : ObjectiveMaker
        The loss of a training step.
    optimiser : Optimiser
    epochs : int
        Default epochs (``--epochs`` overrides the first stage's,
        ``--temporal-epochs`` the second's).
    trains : str or None
        Name of the submodule whose parameters the stage updates
        (``cnn``, ``temporal``); None for all of them.
    predict : ClipRule or None
        How test clips are classified after this stage. Required for the
        last stage (the run's predictions); for an earlier one, its figures
        are reported as that stage's.
    """

    name: str
    items: ItemMaker
    objective: ObjectiveMaker
    optimiser: Optimiser
    epochs: int
    trains: str | None = None
    predict: ClipRule | None = None

    def parameters(self, model: nn.Module) -> Iterable[nn.Parameter]:
        """The parameters this stage updates."""
        return (model if self.trains is None else getattr(model, self.trains)).parameters()


def no_adaptation(geometry: Geometry) -> dict[str, Any]:
    """Adaptation of a network that takes the stored sizes as they come: no size arguments."""
    return {}


@dataclass(frozen=True)
class Recipe:
    """How a registered network is trained from a store (see the module docstring).

    Attributes
    ----------
    name : str
        Registry name (``--model NAME``).
    doi : str
        DOI of the paper that defines the network.
    reads : tuple of str
        Exactly the store features it reads; every store must hold them.
    stages : tuple of TrainingStage
        Trained in order on one model; the last one's ``predict`` gives the
        run's clip predictions.
    adapt : callable
        ``(Geometry) -> dict`` of factory arguments that fit the stored sizes
        (``input_size``, ``in_chans``); raises :class:`RecipeError` naming the
        stage parameter when the network cannot take a size.
    options : tuple of str
        Run options (:class:`RunOptions` fields) beyond the common ones that
        this recipe honours, e.g. ``("terms",)``; others are refused.
    min_input_shape : tuple of int
        Smallest item the default network accepts (channels first, with a
        leading time axis for sequence models); the registry's tests run it.
    """

    name: str
    doi: str
    reads: tuple[str, ...]
    stages: tuple[TrainingStage, ...]
    min_input_shape: tuple[int, ...]
    adapt: Callable[[Geometry], Mapping[str, Any]] = no_adaptation
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"recipe {self.name!r} has no stage")
        if self.stages[-1].predict is None:
            raise ValueError(f"recipe {self.name!r}: its last stage needs a clip-prediction rule (predict=)")
        needed = {f for s in self.stages for f in s.items.reads}
        if not needed <= set(self.reads):
            raise ValueError(f"recipe {self.name!r}: its stages read {sorted(needed - set(self.reads))}, "
                             f"which are not in reads={self.reads}")
        unknown = set(self.options) - {"terms", "mask"}
        if unknown:
            raise ValueError(f"recipe {self.name!r}: unknown options {sorted(unknown)}")

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for run reports."""
        return {"name": self.name, "doi": self.doi, "reads": list(self.reads),
                "stages": [{"name": s.name, "items": type(s.items).__name__, "epochs": s.epochs,
                            "optimiser": vars(s.optimiser), "trains": s.trains,
                            "predict": s.predict.measured_on if s.predict is not None else None}
                           for s in self.stages]}
