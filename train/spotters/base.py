"""What a spotter is: a declaration (:class:`Spotter`), what fitting it gives (:class:`Fitted`), and its passes.

A spotter turns a long video into per-frame curves, and each of its
:class:`Pass` es one curve into intervals with a setting (a threshold, or the ``p`` of
a relative one). Fitting a spotter on a fold's training side
(:attr:`Spotter.fit`, given a :class:`FitContext`) trains what it trains and
chooses each pass's setting on people held out of training (never on the
fold's test people, whom the context's videos do not hold); the
:class:`Fitted` result gives the curves of any video it is handed. The run code
(:mod:`mepipe.train.spotters.run`) is the same for every spotter, so a new
spotter is one module declaring one :class:`Spotter` and registering it
(:func:`register_spotter`), as a network is one module with its recipe.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from mepipe.featurestore.errors import UsageError

from ..recipe import Deviation
from ..spotting_eval import OVERALL
from .intervals import Spotted

if TYPE_CHECKING:
    from .videos import VideoTable

__all__ = ["FitContext", "Fitted", "Pass", "Spotter", "SpotterError", "get_spotter", "list_spotters",
           "register_spotter", "resolve_params"]


class SpotterError(UsageError, ValueError):
    """An unknown spotter, or a parameter it does not have or cannot take."""


@dataclass(frozen=True)
class Pass:
    """One curve of a spotter and how it becomes intervals.

    Attributes
    ----------
    name : str
        ``micro``, ``macro`` (a pass that spots one kind) or ``all``.
    chosen_by : {"micro", "macro", "overall"}
        The kind of the spotting table whose F1 chooses the pass's setting.
    settings : tuple of float
        The settings it may be given (chosen among on held-out people).
    spot : callable
        ``(curve, setting, fps) -> (threshold, spotted)``: the threshold
        drawn on the curve (None: nothing spotted) and the intervals.
    curve : str
        The curve it reads (:meth:`Fitted.curves`); passes may share one.
    """

    name: str
    chosen_by: str
    settings: tuple[float, ...]
    spot: Callable[[np.ndarray, float, float], tuple[float | None, list[Spotted]]]
    curve: str = "score"

    def __post_init__(self) -> None:
        if self.chosen_by not in ("micro", "macro", OVERALL):
            raise ValueError(f"pass {self.name!r}: chosen_by must be micro, macro or overall, got {self.chosen_by!r}")
        if not self.settings:
            raise ValueError(f"pass {self.name!r} has no setting to choose from")


@dataclass
class FitContext:
    """What a spotter may see while it is fitted on one fold: the fold's training side only.

    Attributes
    ----------
    videos : VideoTable
        Reads features and frame numbers; the run seals the fold's test
        videos while the spotter is fitted.
    fit : tuple of str
        Videos it may train on.
    validation : tuple of str
        Videos of people held out of training, on which settings and epochs
        are chosen (a training-free spotter may choose on ``fit`` too: it
        trains on nothing).
    validation_people : tuple of str
    truth : pandas.DataFrame
        The annotated intervals of ``fit`` and ``validation`` videos
        (``dataset, video, onset, apex, offset, kind``, frame numbers).
    params : dataclass instance
        The spotter's parameters (:attr:`Spotter.params` with the run's changes).
    seed : int
    device : torch.device
    checkpoint : Path
        Where a trained spotter saves its weights.
    progress : bool
    desc : str
        Label of progress output.
    """

    videos: VideoTable
    fit: tuple[str, ...]
    validation: tuple[str, ...]
    validation_people: tuple[str, ...]
    truth: pd.DataFrame
    params: Any
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    checkpoint: Path = Path("checkpoint.pt")
    progress: bool = False
    desc: str = "fit"


class Fitted(ABC):
    """A spotter fitted on one fold (or on everyone, ``--final``): curves of any video, and each pass's setting."""

    passes: tuple[Pass, ...]
    settings: dict[str, float]

    @abstractmethod
    def curves(self, videos: VideoTable, video: str) -> dict[str, np.ndarray]:
        """The float64 curves its passes read, by name, over the frames of ``video`` of ``videos`` (NaN where a
        curve has no value)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-able record of what was fitted and chosen, and on whom (the fold's report entry takes it)."""

    def pass_named(self, name: str) -> Pass:
        return next(p for p in self.passes if p.name == name)


@dataclass(frozen=True)
class Spotter:
    """A spotter, declared once in its module (the spotting counterpart of a network's recipe).

    Attributes
    ----------
    name : str
        ``--spotter NAME``.
    title : str
        What it is, in a few words, with its paper.
    doi : str
    reads : tuple of str
        Store features it reads under its default parameters; every store of a run must hold them.
    params : dataclass instance
        Default parameters (frozen dataclass); a run changes fields by name
        (``--param NAME=VALUE``, :func:`resolve_params`).
    fit : callable
        ``FitContext -> Fitted``.
    restore : callable
        ``(params, described, folder, device) -> Fitted``: a fitted
        spotter again from what its :meth:`Fitted.describe` recorded and the
        files it saved in ``folder`` (a ``--final`` run's, for later use).
    deviations : tuple of Deviation
        Where it departs from its paper, and why.
    quick : tuple of (str, value)
        Parameters ``mepipe reproduce --quick`` changes (fewer epochs, narrower layers).
    reads_for : callable, optional
        ``params -> tuple of str``: what it reads under other parameters
        (nag2019's ``flow`` picks its flow feature); default: ``reads``.
    """

    name: str
    title: str
    doi: str
    reads: tuple[str, ...]
    params: Any
    fit: Callable[[FitContext], Fitted]
    restore: Callable[..., Fitted]
    deviations: tuple[Deviation, ...] = ()
    quick: tuple[tuple[str, Any], ...] = ()
    reads_for: Callable[[Any], tuple[str, ...]] | None = None

    def features(self, params: Any) -> tuple[str, ...]:
        """The store features it reads under ``params``."""
        return tuple(self.reads_for(params)) if self.reads_for is not None else self.reads

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.params) or not self.params.__dataclass_params__.frozen:
            raise ValueError(f"spotter {self.name!r}: params must be a frozen dataclass instance")

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for run reports."""
        return {"name": self.name, "title": self.title, "doi": self.doi, "reads": list(self.reads),
                "deviations": [dataclasses.asdict(d) for d in self.deviations]}


_REGISTRY: dict[str, Spotter] = {}


def register_spotter(spotter: Spotter) -> Spotter:
    """Make ``spotter`` available by its name; a second spotter under a taken name raises ValueError."""
    old = _REGISTRY.get(spotter.name)
    if old is not None and old is not spotter and old.fit is not spotter.fit:
        raise ValueError(f"spotter name {spotter.name!r} is already registered")
    _REGISTRY[spotter.name] = spotter
    return spotter


def list_spotters() -> list[str]:
    """Registered spotter names, sorted."""
    from . import megc2020, nag2019  # noqa: F401  (the built-in spotters register on import)

    return sorted(_REGISTRY)


def get_spotter(name: str) -> Spotter:
    """The spotter registered as ``name``; :class:`SpotterError` listing the known ones otherwise."""
    known = list_spotters()
    if name not in _REGISTRY:
        raise SpotterError(f"unknown spotter {name!r}; known: {', '.join(known)}")
    return _REGISTRY[name]


def resolve_params(spotter: Spotter, given: Sequence[tuple[str, Any]] | Mapping[str, Any]) -> Any:
    """The spotter's parameters with the ``given`` fields changed, each value parsed from text by the field's type.

    A float field that may be None takes ``chosen`` (choose it on held-out
    people); tuples take JSON lists (``[8, 16, 32]``).

    Raises
    ------
    SpotterError
        Naming a field the spotter does not have (and those it has) or a value of the wrong kind.
    """
    params = spotter.params
    hints = typing.get_type_hints(type(params))
    names = [f.name for f in dataclasses.fields(params)]
    changes = {}
    for name, value in (given.items() if isinstance(given, Mapping) else given):
        if name not in names:
            raise SpotterError(f"spotter {spotter.name!r} has no parameter {name!r} (its parameters: "
                               f"{', '.join(names)})")
        changes[name] = _parse(hints[name], value, f"{spotter.name} parameter {name}")
    try:
        return dataclasses.replace(params, **changes)
    except (TypeError, ValueError) as err:
        raise SpotterError(f"spotter {spotter.name!r}: {err}") from None


def _parse(hint: Any, value: Any, what: str) -> Any:
    """``value`` (text from the command line, or already a value) as the type ``hint`` says."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    text = value.strip()
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional and text.lower() in ("chosen", "none"):
        return None
    base = next((a for a in args if a is not type(None)), hint) if args and typing.get_origin(hint) is not tuple \
        else hint
    try:
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if typing.get_origin(base) is tuple:
            parsed = json.loads(text)
            if not isinstance(parsed, list):
                raise ValueError
            return tuple(parsed)
        return text
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(base, "a JSON list")
        extra = " or 'chosen'" if optional else ""
        raise SpotterError(f"{what} takes {kind}{extra}, got {value!r}") from None
