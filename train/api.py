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
        fold.train[0]["x"].shape            # torch.Size([1, 16])
    report = api.train("data/stores/demo.zarr", model="curve", labels="samm-3", out="runs/curve")
"""
from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mepipe.featurestore.features import feature_def

from .clips import ClipTable, Geometry
from .data import StoreDataset, fit_standardiser
from .fold import FoldInputs, FoldStatistics
from .labels import apply_scheme
from .loop import make_loader
from .models import create_model, get_recipe, register_model
from .objectives import Classify
from .params import RunParams
from .plan import RunPlan, plan_run
from .recipe import Optimiser, Recipe, TrainingStage
from .rules import MeanLogits
from .run import model_kwargs, run_training

__all__ = ["FeatureDataset", "FeatureItems", "Fold", "folds", "item_channels", "register", "train"]

TIME_DIMS = ("frame", "pair", "map", "time")
"""Leading dims that run over a clip's time: resampled to ``length`` and put last, other dims become channels."""

Stores = str | os.PathLike | Sequence[str | os.PathLike] | ClipTable


def _clip_table(stores: Stores) -> ClipTable:
    if isinstance(stores, ClipTable):
        return stores
    if isinstance(stores, (str, os.PathLike)):
        return ClipTable.open([stores])
    return ClipTable.open(list(stores))


def _resample(array: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling of axis 0 to ``length`` samples (a clip of one frame is repeated)."""
    n = array.shape[0]
    if n == length:
        return array
    if n == 1:
        return np.repeat(array, length, axis=0)
    position = np.linspace(0, n - 1, length)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, n - 1)
    weight = (position - low).reshape((-1,) + (1,) * (array.ndim - 1))
    return array[low] * (1 - weight) + array[high] * weight


def feature_item(feature: str, array: np.ndarray, length: int | None) -> np.ndarray:
    """One stored feature of one clip as a channels-first float32 array.

    A feature over time (leading dim ``frame``, ``pair``, ``map`` or ``time``)
    becomes ``(channels, time)``: its other dims flattened into channels, its
    time resampled linearly to ``length`` when given. Any other feature keeps
    its shape, with a channel axis added when it has fewer than three dims
    (``heatmap`` (y, x) -> (1, y, x); ``sfem`` () -> (1,); ``flow_onset_apex``
    (uv, y, x) as stored).
    """
    x = np.asarray(array, dtype=np.float32)
    dims = feature_def(feature).dims
    if dims and dims[0] in TIME_DIMS:
        if length is not None:
            x = _resample(x, length)
        return np.ascontiguousarray(x.reshape(x.shape[0], -1).T)
    if x.ndim >= 3:
        return x
    return x[None] if x.ndim else x.reshape(1)


def item_channels(feature: str, sizes: dict[str, int]) -> int:
    """Channels a feature contributes to an item (see :func:`feature_item`), from its stored sizes."""
    dims = feature_def(feature).dims
    if dims and dims[0] in TIME_DIMS:
        return int(math.prod(sizes[d] for d in dims[1:]))
    return int(sizes[dims[0]]) if len(dims) >= 3 else 1


class FeatureDataset(StoreDataset):
    """One item per clip: the chosen store features as one float32 array, channels first.

    Each feature is made channels-first by :func:`feature_item` (a feature
    over time becomes ``(channels, length)``), and the features are
    concatenated along the channel axis, so they must agree on the other
    axes (e.g. several per-frame features with one ``length``).

    Parameters
    ----------
    stores : path, sequence of paths, or ClipTable
        One or several feature stores (folder, zip or URL); every read is
        checked against the store's manifest.
    features : sequence of str
        Store feature names (``mepipe.featurestore.feature_names()``).
    labels : str, optional
        A label scheme (``samm-3``, ``megc-3``, ...): clips it does not map
        and failed clips are left out, and :attr:`classes` names the classes.
        Without one, every built clip is kept with label -1.
    samples : sequence of str, optional
        Clip ids to keep (e.g. one side of a fold), with ``sample_labels``.
    sample_labels : sequence of int, optional
    length : int, optional
        Samples per feature over time (linear resampling); without it items
        of clips of different lengths differ in size.
    standardiser : Standardiser, optional
        Applied to every item (fit one with ``fit_standardiser`` on training
        clips only).

    Items are dicts ``{"x": tensor, "y": int, "clip": int, "frame": -1,
    "variant": -1}``; :attr:`samples` names the clip of each.
    """

    def __init__(self, stores: Stores, features: Sequence[str], *, labels: str | None = None,
                 samples: Sequence[str] | None = None, sample_labels: Sequence[int] | None = None,
                 length: int | None = None, standardiser=None, in_memory: bool = False, shared: dict | None = None):
        clips = _clip_table(stores)
        self.features = tuple(features)
        if not self.features:
            raise ValueError("a FeatureDataset needs at least one feature")
        for feature in self.features:
            feature_def(feature)  # unknown names raise, listing the known ones
        self.classes: list[str] = []
        if samples is None:
            samples, sample_labels = self._choose(clips, labels)
        elif sample_labels is None:
            sample_labels = [-1] * len(samples)
        super().__init__(clips, list(samples), list(sample_labels), standardiser=standardiser)
        from .data import ClipReader

        self.length = length
        self.readers = {f: ClipReader(self.clips, f, self.samples, in_memory=in_memory, shared=shared)
                        for f in self.features}

    def _choose(self, clips: ClipTable, labels: str | None) -> tuple[list[str], list[int]]:
        table = clips.samples
        ok = ~table["status"].astype(str).eq("failed") if "status" in table else np.ones(len(table), bool)
        has = np.array([all(clips.has(f, s) for f in self.features) for s in table["sample"]], dtype=bool)
        table = table[np.asarray(ok, dtype=bool) & has]
        if labels is None:
            return table["sample"].astype(str).tolist(), [-1] * len(table)
        kept, self.classes, _ = apply_scheme(table, labels)
        return table.loc[kept.index, "sample"].astype(str).tolist(), kept.astype(int).tolist()

    def raw(self, i: int) -> np.ndarray:
        sample = self.samples[i]
        parts = [feature_item(f, self.readers[f][sample], self.length) for f in self.features]
        try:
            return np.concatenate(parts, axis=0)
        except ValueError:
            shapes = ", ".join(f"{f} {p.shape}" for f, p in zip(self.features, parts))
            raise ValueError(f"{sample}: features {shapes} do not agree beyond the channel axis; give one length "
                             "for features over time, or read them in separate datasets") from None


@dataclass(frozen=True)
class FeatureItems:
    """Item maker of :func:`register`'s recipes: :class:`FeatureDataset` items, standardised per channel.

    The standardisation is fitted on the fold's training clips (never a test
    clip) and recorded in the fold's statistics; the test side reuses it.

    Attributes
    ----------
    reads : tuple of str
        The features of an item.
    length : int or None
        Samples per feature over time.
    center : bool
        Subtract the training mean (False: scale by the root mean square only,
        e.g. for flow, where zero means no motion).
    """

    reads: tuple[str, ...]
    length: int | None = None
    center: bool = True

    def datasets(self, fold: FoldInputs, model: nn.Module | None) -> tuple[Dataset, Dataset]:
        train = FeatureDataset(fold.clips, self.reads, samples=fold.train, sample_labels=fold.train_labels,
                               length=self.length, **fold.io)
        test = FeatureDataset(fold.clips, self.reads, samples=fold.test, sample_labels=fold.test_labels,
                              length=self.length, **fold.io)
        if fold.statistics.standardiser is None:
            fold.statistics.standardiser = fit_standardiser(train, center=self.center, seed=fold.options.seed)
        train.with_standardiser(fold.statistics.standardiser)
        test.with_standardiser(fold.statistics.standardiser)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return make_loader(dataset, batch_size, shuffle=train, seed=fold.options.seed, workers=fold.options.workers,
                           device=fold.device)


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
        name=name, doi=doi, reads=features,
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
    over_time = all(feature_def(f).dims and feature_def(f).dims[0] in TIME_DIMS for f in features)
    return (channels, length) if over_time and length else ()


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

