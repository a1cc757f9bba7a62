"""What defines a training run: :class:`RunParams`, checked when made.

Kept apart from :mod:`mepipe.train.run` so that the plan
(:mod:`mepipe.train.plan`) and the run both read one definition.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mepipe.featurestore.cachekey import NOT_IN_KEY, fields_not_in_key
from mepipe.featurestore.errors import UsageError
from mepipe.featurestore.location import public_address

from .labels import LABEL_VERSIONS
from .models import get_recipe, list_models
from .protocols import PROTOCOLS
from .recipe import RunOptions
from .targets import parse_targets

__all__ = ["EXECUTION_FIELDS", "RunParams", "RunParamsError"]

class RunParamsError(UsageError, ValueError):
    """Run parameters that do not go together (a protocol without its datasets, an option the model lacks)."""


@dataclass(frozen=True)
class RunParams:
    """Everything that defines a run (recorded in ``report.json``).

    Fields tagged :data:`~mepipe.featurestore.cachekey.NOT_IN_KEY` (:data:`EXECUTION_FIELDS`) say how the run
    executes, not what it computes: a killed run resumes under other values of them, and ``mepipe runs
    compare`` leaves them out.

    Attributes
    ----------
    model : str
        Registered model name (``mepipe.train.models.list_models()``).
    store : str or tuple of str
        Feature stores (folder, zip or URL), one or several; kept as a tuple
        (see :attr:`stores`) of addresses as they may be recorded: URLs
        without user, password or query (credentials stay in memory, see
        :func:`mepipe.featurestore.location.locate`). Clips of several
        stores are named ``dataset/sample``.
    labels : str
        Label scheme (``mepipe.train.labels.list_schemes()``); ``megc-3`` for
        the ``megc2019`` protocol, whose list gives the labels. Or AU targets,
        ``au:`` and an AU set (``au:meb-cross``) or AU numbers (``au:4+12``):
        a model whose recipe cannot train them is refused
        (:mod:`mepipe.train.targets`).
    label_version : str, optional
        Relabel the stores' clips as an older version of their sheet gives
        them before the scheme maps them (``mepipe.train.labels.LABEL_VERSIONS``,
        e.g. ``casme2-2014``, the CASME II labels the papers used); None keeps
        the labels as stored. Not for ``megc2019``, whose list gives the labels.
    protocol : {"loso", "lovo", "megc2019", "cross", "lodo", "meb", "final"}
        ``meb``: leave one dataset out over MEB's corpora (those the stores hold).
        ``final`` trains one model on every clip (no test fold, no test figure) for later use
        (``mepipe predict``); ``val_subjects`` then chooses its epochs on held-out people.
    test_dataset : str, optional
        ``cross``: the dataset tested on.
    train_datasets : tuple of str
        ``cross``: the datasets trained on; default every other dataset.
    composite_list : str, optional
        ``megc2019``: a composite list file (``dataset,subject,clip,class``);
        default the official MEGC 2019 list shipped with mepipe.
    strict : bool
        Refuse to run when a clip the protocol names is missing, failed or
        lacks a feature (by default such clips are reported and left out).
    store_ids : tuple of str or None
        One per store: the store id its manifest must have (None: any).
    val_subjects : int, optional
        Hold out this many people of each fold's training side; each stage's
        epoch is the one with the best UF1 on their clips. None (default):
        fixed epochs. The test side never chooses anything.
    out : str
        Run folder.
    epochs, batch_size, lr, optimizer, weight_decay : optional
        Overrides of the first stage's settings (optimizer: "adam", "sgd" or "rmsprop").
    device : {"auto", "cpu", "cuda"}
    seed : int
        Seeds every fold (each fold restarts from the same seed).
    in_memory : bool
        Hold the needed features of the fold's clips in RAM.
    folds : int, optional
        Run only N folds (quick checks): the protocol's first N, taken in turn from each
        dataset when the folds test several, so each part of a composite is tested; the
        figures cover those.
    augment : bool
        On-the-fly augmentation of training items and batches.
    model_args : tuple of (str, value)
        Extra keyword arguments of the model factory (e.g. ``("n_maps", 32)``); they win over the
        sizes the recipe derives from the store.
    recipe_options : tuple of (str, value)
        The recipe's named options (``--recipe-option NAME=VALUE``, e.g. Kim's ``("means", "batch")`` or
        ``("terms", "E1,E2")``, STRCN-A's ``("mask", "global")``); unset ones take their default.
    temporal_epochs : int, optional
        Multi-stage models: epochs of the second (recurrent) stage.
    patience : int, optional
        Early stopping after this many epochs without improvement: of the
        validation UF1 with ``val_subjects``, else of the first stage's
        training loss. None (default) trains every epoch.
    workers : int
        DataLoader worker processes.
    progress : bool
        tqdm bar per fold.
    overwrite : bool
        Replace a finished or unfinished run in ``out`` instead of refusing or resuming.
    """

    model: str
    store: str | tuple[str, ...]
    labels: str
    label_version: str | None = None
    protocol: str = "loso"
    test_dataset: str | None = None
    train_datasets: tuple[str, ...] = ()
    composite_list: str | None = None
    strict: bool = False
    store_ids: tuple[str | None, ...] = ()
    val_subjects: int | None = None
    out: str = field(default="runs/run", metadata=NOT_IN_KEY)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    device: str = "auto"
    seed: int = 0
    in_memory: bool = field(default=False, metadata=NOT_IN_KEY)
    folds: int | None = None
    augment: bool = True
    model_args: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    recipe_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    temporal_epochs: int | None = None
    patience: int | None = None
    workers: int = field(default=0, metadata=NOT_IN_KEY)
    progress: bool = field(default=True, metadata=NOT_IN_KEY)
    overwrite: bool = field(default=False, metadata=NOT_IN_KEY)

    def __post_init__(self) -> None:
        stores = tuple(map(public_address, (self.store,) if isinstance(self.store, str) else self.store))
        object.__setattr__(self, "store", stores)
        object.__setattr__(self, "train_datasets", tuple(self.train_datasets))
        object.__setattr__(self, "store_ids", tuple(self.store_ids))
        if not stores:
            raise RunParamsError("a run needs at least one store")
        if self.store_ids and len(self.store_ids) != len(stores):
            raise RunParamsError(f"{len(self.store_ids)} store ids for {len(stores)} stores; give one per store, "
                                 "in the same order")
        if self.protocol not in PROTOCOLS:
            raise RunParamsError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "cross" and not self.test_dataset:
            raise RunParamsError("the cross protocol needs test_dataset (--test-dataset NAME)")
        if self.protocol != "cross" and (self.test_dataset or self.train_datasets):
            raise RunParamsError(f"test_dataset and train_datasets (--test-dataset, --train-dataset) belong to the "
                                 f"cross protocol, not {self.protocol!r}")
        if self.protocol == "megc2019" and self.labels != "megc-3":
            raise RunParamsError(f"the megc2019 protocol takes its labels from the composite list, in the megc-3 "
                                 f"classes; use --labels megc-3, not {self.labels!r}")
        if self.label_version is not None and self.label_version not in LABEL_VERSIONS:
            raise RunParamsError(f"unknown label version {self.label_version!r}; known: "
                                 f"{', '.join(sorted(LABEL_VERSIONS))}")
        if self.label_version is not None and self.protocol == "megc2019":
            raise RunParamsError("the megc2019 protocol takes its labels from the composite list; drop "
                                 f"--label-version {self.label_version}")
        if self.composite_list is not None and self.protocol != "megc2019":
            raise RunParamsError("composite_list (--composite-list) belongs to the megc2019 protocol")
        if self.val_subjects is not None and self.val_subjects < 1:
            raise RunParamsError(f"val_subjects must be >= 1, got {self.val_subjects}")
        if self.folds is not None and self.folds < 1:
            raise RunParamsError(f"folds must be >= 1, got {self.folds}")
        if self.protocol == "final" and self.folds is not None:
            raise RunParamsError("the final protocol trains one model on everyone; folds (--folds) does not apply")
        recipe = get_recipe(self.model)
        try:
            recipe.resolve_choices(self.recipe_options)
            targets = parse_targets(self.labels)
        except (KeyError, ValueError) as err:
            raise RunParamsError(str(err.args[0] if err.args else err)) from None
        refusal = recipe.refusal(targets.kind)
        if refusal:
            able = [m for m in list_models() if not get_recipe(m).refusal(targets.kind)]
            raise RunParamsError(f"model {self.model!r} cannot learn {targets.kind.upper()} targets "
                                 f"(--labels {self.labels}): {refusal}; models that can: {', '.join(able)}")
        if self.temporal_epochs is not None and (self.temporal_epochs < 1 or len(recipe.stages) < 2):
            raise RunParamsError(f"temporal_epochs must be >= 1 and is for models with a second stage; "
                                 f"{self.model!r} has {len(recipe.stages)}")

    @property
    def stores(self) -> tuple[str, ...]:
        """The store locations, in order."""
        return self.store  # type: ignore[return-value]

    def options(self) -> RunOptions:
        """What item makers and objectives see of this run."""
        return RunOptions(augment=self.augment, seed=self.seed, in_memory=self.in_memory, workers=self.workers,
                          choices=get_recipe(self.model).resolve_choices(self.recipe_options))

    def epoch_selection(self) -> str:
        """How each stage's epoch is chosen, in words (for reports): never on the test side."""
        if self.val_subjects is not None:
            stop = f"; stops after {self.patience} epochs without a higher one" if self.patience else ""
            return (f"validation: {self.val_subjects} people of each fold's training side held out; each stage "
                    f"keeps the epoch with the best UF1 on their clips{stop}")
        if self.patience is not None:
            return f"early stopping on the first stage's training loss (patience {self.patience})"
        return "fixed epochs"

    def defining(self) -> dict[str, Any]:
        """The fields that define what the run computes (all but :data:`EXECUTION_FIELDS`), JSON-able."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in EXECUTION_FIELDS}



EXECUTION_FIELDS = fields_not_in_key(RunParams)
"""Fields that change how a run executes, not what it computes (``out``, ``progress``, ``workers``, ...)."""
