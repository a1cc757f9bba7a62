"""A model's recipe: everything training needs to know about a network, declared once in its module.

Each network module (``train/models/<net>.py``) builds one :class:`Recipe`
and registers it with its factory (:func:`mepipe.train.models.register_model`).
The trainer (:mod:`mepipe.train.fold`) reads it and has no per-model code:
it checks that every store holds :attr:`Recipe.reads`, asks
:attr:`Recipe.adapt` for the network's size arguments, then runs the
stages in order, each from its :class:`TrainingStage` (items, batches,
objective, optimiser, epochs, the parameters it trains, how its test clips
are predicted).

Building blocks for recipes live beside this module: input forms (item
makers, their datasets and typed items) in :mod:`mepipe.train.inputs`,
objectives in :mod:`mepipe.train.objectives`, clip-prediction rules in
:mod:`mepipe.train.rules`. A new network that needs none beyond them is one
file: its ``nn.Module``, its factory and its recipe; a new input form is
one module.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from mepipe.featurestore.errors import DataError

from .loop import Objective
from .published import Published

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

    from .clips import Geometry
    from .fold import FoldInputs
    from .rules import ClipPredictions

__all__ = ["ItemMaker", "ClipRule", "Deviation", "ObjectiveMaker", "Optimiser", "Recipe", "RecipeError",
           "RecipeOption", "RunOptions", "TrainingStage", "no_adaptation"]

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
    workers : int
        DataLoader worker processes.
    choices : tuple of (str, value)
        The recipe's named options (:class:`RecipeOption`) as the run sets
        them; :meth:`choice` gives a name's value, its default when unset.
    """

    augment: bool = True
    seed: int = 0
    in_memory: bool = False
    workers: int = 0
    choices: tuple[tuple[str, Any], ...] = ()

    def choice(self, option: RecipeOption) -> Any:
        """The run's value of a recipe option (its default when the run does not set it)."""
        return dict(self.choices).get(option.name, option.default)


@dataclass(frozen=True)
class RecipeOption:
    """A named choice a recipe offers: the paper's way (the default) or another one, e.g. the behaviour before it.

    Set on the command line as ``--recipe-option NAME=VALUE`` and read by
    item makers and objectives through :meth:`RunOptions.choice`.

    Attributes
    ----------
    name : str
    default : str, int or value of ``parser``
        The paper's setting (or the leak-free one where the paper's lets test
        clips in; its help says so).
    help : str
        What the option chooses, and what each value does.
    values : tuple of str, optional
        The allowed values of a named choice; None for an integer option.
    low, high : int
        Bounds of an integer option (``values`` None).
    parser : callable, optional
        ``value -> value`` for an option of its own kind (Kim's list of
        objective terms): takes the text or a value, raises ValueError
        naming what is wrong.
    """

    name: str
    default: Any
    help: str
    values: tuple[str, ...] | None = None
    low: int = 1
    high: int = 1 << 30
    parser: Callable[[Any], Any] | None = None

    def parse(self, value: Any) -> Any:
        """The option's value from a string or a value; ValueError naming the allowed ones."""
        if self.parser is not None:
            try:
                return self.parser(value)
            except ValueError as err:
                raise ValueError(f"recipe option {self.name}: {err}") from None
        if self.values is not None:
            if str(value) not in self.values:
                raise ValueError(f"recipe option {self.name} must be one of {', '.join(self.values)}, got {value!r}")
            return str(value)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"recipe option {self.name} takes an integer, got {value!r}") from None
        if not self.low <= number <= self.high:
            raise ValueError(f"recipe option {self.name} must be in {self.low}..{self.high}, got {number}")
        return number


@dataclass(frozen=True)
class Deviation:
    """Where a recipe cannot follow its paper, and why (printed by reports and ``mepipe reproduce``).

    Attributes
    ----------
    topic : str
        What differs, in a few words (e.g. "Kim E2/E4/E5 means").
    paper : str
        What the paper does.
    here : str
        What this implementation does instead.
    reason : str
        Why, with the measurement behind it where there is one.
    """

    topic: str
    paper: str
    here: str
    reason: str


class ItemMaker(Protocol):
    """How a stage's items are assembled from store features and batched: the maker of an input form
    (:mod:`mepipe.train.inputs`).

    ``datasets`` builds the fold's training and test datasets, whose items
    are the form's typed :class:`~mepipe.train.inputs.batches.Item`; it fits what
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


ObjectiveMaker = Callable[["FoldInputs"], Objective]
"""Makes a stage's training objective ``(model, batch, generator) -> (loss, logits, y)`` for a fold's training
side (its run options, and its stores' recorded parameters where the objective draws from them)."""


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
        Default (empty): those its stages' item makers read, in stage order.
        Where a recipe option chooses between item makers, the run reads
        those of its choice (:meth:`reads_for`).
    stages : tuple of TrainingStage
        Trained in order on one model; the last one's ``predict`` gives the
        run's clip predictions.
    adapt : callable
        ``(Geometry) -> dict`` of factory arguments that fit the stored sizes
        (``input_size``, ``in_chans``); raises :class:`RecipeError` naming the
        stage parameter when the network cannot take a size.
    min_input_shape : tuple of int
        Smallest item the default network accepts (channels first, with a
        leading time axis for sequence models); the registry's tests run it.
    choices : tuple of RecipeOption
        Named options of the recipe (``--recipe-option NAME=VALUE``); each
        defaults to the paper's way.
    deviations : tuple of Deviation
        Where the default recipe still differs from the paper, and why.
    published : tuple of Published
        The figures the paper publishes for the network (``mepipe reproduce`` runs each).
    quick : tuple of (str, value)
        :class:`~mepipe.train.params.RunParams` fields that ``mepipe reproduce --quick`` sets instead of
        the paper's (fewer epochs, narrower layers); optimiser, augmentation and protocol stay the recipe's.
    """

    name: str
    doi: str
    stages: tuple[TrainingStage, ...]
    min_input_shape: tuple[int, ...]
    reads: tuple[str, ...] = ()
    adapt: Callable[[Geometry], Mapping[str, Any]] = no_adaptation
    choices: tuple[RecipeOption, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    published: tuple[Published, ...] = ()
    quick: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"recipe {self.name!r} has no stage")
        if self.stages[-1].predict is None:
            raise ValueError(f"recipe {self.name!r}: its last stage needs a clip-prediction rule (predict=)")
        needed = tuple(dict.fromkeys(f for s in self.stages for f in s.items.reads))
        if not self.reads:
            object.__setattr__(self, "reads", needed)
        if not set(needed) <= set(self.reads):
            raise ValueError(f"recipe {self.name!r}: its stages read {sorted(set(needed) - set(self.reads))}, "
                             f"which are not in reads={self.reads}")
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name!r}: a recipe option is declared twice in {names}")

    def reads_for(self, options: RunOptions) -> tuple[str, ...]:
        """The features a run with these options reads: :attr:`reads`, narrowed where a stage's items
        depend on a recipe option (an item maker with ``reads_for(options)``)."""
        chosen = [f for s in self.stages
                  for f in (s.items.reads_for(options) if hasattr(s.items, "reads_for") else s.items.reads)]
        if not any(hasattr(s.items, "reads_for") for s in self.stages):
            return self.reads
        return tuple(f for f in self.reads if f in chosen)

    def resolve_choices(self, given: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
        """Every recipe option's value, the given ones parsed and checked, the others at their defaults.

        Raises
        ------
        ValueError
            Naming an option the recipe does not have (and those it has) or a bad value.
        """
        declared = {c.name: c for c in self.choices}
        values = {c.name: c.default for c in self.choices}
        for name, value in given:
            if name not in declared:
                known = ", ".join(declared) or "none"
                raise ValueError(f"model {self.name!r} has no recipe option {name!r} (its options: {known})")
            values[name] = declared[name].parse(value)
        return tuple(values.items())

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for run reports."""
        return {"name": self.name, "doi": self.doi, "reads": list(self.reads),
                "deviations": [vars(d) for d in self.deviations],
                "stages": [{"name": s.name, "items": type(s.items).__name__, "epochs": s.epochs,
                            "optimiser": vars(s.optimiser), "trains": s.trains,
                            "predict": s.predict.measured_on if s.predict is not None else None}
                           for s in self.stages]}
