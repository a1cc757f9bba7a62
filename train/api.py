"""Your own model on the store: a PyTorch dataset, the protocols' folds, and registering a network.

Three entry points, each a thin layer over what ``mepipe train`` itself runs:

- :class:`FeatureDataset`: one item per clip, chosen store features as one
  float32 array, over one or several stores (clips of several are named
  ``dataset/clip``), labelled by a label scheme.
- :func:`register`: make an ``nn.Module`` factory a registered model whose
  recipe reads those features, so ``mepipe train --model NAME`` (with
  ``--plugin MODULE``, or an entry point in the group ``mepipe.models``) and
  :func:`train` run it under every protocol (loso, lovo, megc2019, cross,
  lodo) with the published networks' reports.
- :func:`folds`: the folds of a protocol as ``(train, test)`` datasets of a
  registered model, built by its recipe's item maker exactly as a run builds
  them: every statistic (the standardisation here) is fitted on the fold's
  training clips only, and the test clips never shape their own input.

Example (the README's)::

    api.register("curve", CurveNet, features=("intensity",), length=16, epochs=3)
    for fold in api.folds("data/stores/demo.zarr", model="curve", labels="samm-3", protocol="loso"):
        fold.train[0].x.shape               # torch.Size([1, 16])
    report = api.train("data/stores/demo.zarr", model="curve", labels="samm-3", out="runs/curve")
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.features import feature_def

from .clips import Geometry
from .fold import FoldInputs, FoldStatistics
from .inputs.feature_arrays import FeatureDataset, FeatureItems, Stores, item_channels, over_time
from .models import create_model, get_recipe, register_model
from .objectives import Classify
from .params import RunParams
from .plan import RunPlan, plan_run
from .recipe import Optimiser, Recipe, TrainingStage
from .rules import MeanLogits
from .run import model_kwargs, run_training

__all__ = ["FeatureDataset", "FeatureItems", "Fold", "folds", "item_channels", "register", "train"]


def _channel_adapter(features: tuple[str, ...], takes_channels: bool) -> Callable[[Geometry], dict[str, Any]]:
    def adapt(geometry: Geometry) -> dict[str, Any]:
        if not takes_channels:
            return {}
        return {"in_channels": sum(item_channels(f, geometry.sizes[f]) for f in features)}

    return adapt


def register(name: str, factory: Callable[..., nn.Module], *, features: Sequence[str], length: int | None = None,
             epochs: int = 10, lr: float = 1e-3, batch_size: int = 8, optimizer: str = "adam",
             weight_decay: float = 0.0, center: bool = True, doi: str = "",
             input_shape: tuple[int, ...] | None = None) -> Recipe:
    """Register ``factory`` as model ``name``, trained on :class:`FeatureDataset` items of ``features``.

    The recipe has one stage: cross-entropy on the clip's class, the given
    optimiser settings (``mepipe train --epochs/--lr/--batch-size/...``
    override them), a clip predicted by the argmax of its logits. The
    factory is called with ``num_classes`` and, if it takes it,
    ``in_channels`` (the item's channels, from the stored sizes), plus any
    ``--model-arg``; it must take keyword arguments only by name (no
    ``**kwargs``), so a misspelt argument is an error.

    Parameters
    ----------
    name : str
        ``--model NAME``.
    factory : callable
        An ``nn.Module`` class or a function returning one.
    features : sequence of str
        Store features of an item (see :class:`FeatureDataset`).
    length : int, optional
        Samples per feature over time; needed to batch clips of different lengths.
    epochs, lr, batch_size, optimizer, weight_decay
        Training defaults.
    center : bool
        See :class:`FeatureItems`.
    doi : str
        The paper the network comes from, for reports.
    input_shape : tuple of int, optional
        An item's shape for the registry's shape checks; default from the
        features' fixed sizes (``(channels, length)`` for features over time).

    Returns
    -------
    Recipe
        The registered recipe (``mepipe.train.models.get_recipe(name)``).
    """
    features = tuple(features)
    takes = inspect.signature(factory).parameters
    if "num_classes" not in takes:
        raise TypeError(f"model {name!r}: its factory must take num_classes")
    items = FeatureItems(features, length, center)
    recipe = Recipe(
        name=name, doi=doi,
        stages=(TrainingStage(name="network", items=items, objective=Classify(),
                              optimiser=Optimiser(optimizer, lr=lr, weight_decay=weight_decay, batch_size=batch_size),
                              epochs=epochs, predict=MeanLogits()),),
        min_input_shape=input_shape or _default_shape(features, length),
        adapt=_channel_adapter(features, "in_channels" in takes))
    register_model(name, recipe=recipe)(factory)
    return recipe


def _default_shape(features: tuple[str, ...], length: int | None) -> tuple[int, ...]:
    """An item's shape from the features' fixed sizes; () when a size is only known from a store."""
    try:
        sizes = [{d: int(s) for d, s in feature_def(f).sizes.items()} for f in features]
        channels = sum(item_channels(f, s) for f, s in zip(features, sizes))
    except (KeyError, TypeError):
        return ()
    timed = all(over_time(feature_def(f)) for f in features)
    return (channels, length) if timed and length else ()


@dataclass
class Fold:
    """One fold of a protocol as datasets (see :func:`folds`).

    Attributes
    ----------
    name : str
        The protocol's fold name (``test 001``, ``test casme2``, ...).
    train, test : torch Dataset
        The fold's fit clips and its test clips, built by the model's recipe.
    validation : tuple of str
        Clips held out of the training side to choose epochs (``val_subjects``).
    classes : list of str
    statistics : FoldStatistics
        What was fitted on the training clips (the standardisation, a mask).
    """

    name: str
    train: Dataset
    test: Dataset
    validation: tuple[str, ...]
    classes: list[str]
    statistics: FoldStatistics


def folds(stores: Stores, *, model: str, labels: str, protocol: str = "loso", device: str = "cpu",
          **run: Any) -> Iterator[Fold]:
    """The folds of a protocol as datasets, built by ``model``'s recipe exactly as ``mepipe train`` builds them.

    Parameters
    ----------
    stores : path or sequence of paths
    model : str
        A registered model (its recipe says which features and how items are made).
    labels : str
        Label scheme (``megc-3`` for ``megc2019``).
    protocol : str
        ``loso``, ``lovo``, ``megc2019``, ``cross`` or ``lodo``.
    device : str
        Where a recipe's item maker may run the model (multi-stage recipes).
    **run
        Other :class:`~mepipe.train.params.RunParams` fields (``test_dataset``,
        ``val_subjects``, ``seed``, ``folds``, ...).

    Yields
    ------
    Fold
        In the protocol's order. The first stage's items: fit on the fold's
        training side (less ``val_subjects`` people), statistics fitted there only.
    """
    locations = (stores,) if isinstance(stores, (str, os.PathLike)) else tuple(str(s) for s in stores)
    params = RunParams(model=model, store=tuple(str(s) for s in locations), labels=labels, protocol=protocol,
                       progress=False, **run)
    plan: RunPlan = plan_run(params)
    recipe = get_recipe(model)
    label_of = plan.labels
    for sides in plan.folds:
        inputs = FoldInputs(plan.clips, list(sides.fit), [label_of[s] for s in sides.fit], list(sides.test),
                            [label_of[s] for s in sides.test], params.options(), torch.device(device))
        net = create_model(model, **model_kwargs(params, recipe, plan.clips, len(plan.classes)))
        train_set, test_set = recipe.stages[0].items.datasets(inputs, net)
        yield Fold(sides.fold.name, train_set, test_set, tuple(sides.validation), list(plan.classes),
                   inputs.statistics)


def train(stores: Stores, *, model: str, labels: str, protocol: str = "loso", out: str = "runs/run",
          **run: Any) -> dict[str, Any]:
    """Train and test ``model`` under a protocol, as ``mepipe train`` does; returns the report (``report.json``).

    ``**run`` takes the other :class:`~mepipe.train.params.RunParams` fields
    (``epochs``, ``val_subjects``, ``test_dataset``, ``overwrite``, ...).
    """
    locations = (stores,) if isinstance(stores, (str, os.PathLike)) else tuple(str(s) for s in stores)
    run = {"progress": False, **run}
    return run_training(RunParams(model=model, store=tuple(str(s) for s in locations), labels=labels,
                                  protocol=protocol, out=str(out), **run))

