"""The stage registry: each stage declares itself once, with keyword arguments, in its own module.

A stage module holds its kernel, its frozen parameter dataclass and its
``VERSION``, and ends with one :func:`register_stage` call that says
everything the build, the store and ``mepipe show`` need to know about it:
the features it writes (definitions of the feature table, or its own, which
are added to the table), the features it loads, the stages it reads (their
outputs or their parameters), whether it decodes the clip's sources or
reads its ground truth, its ``--features`` group, its figure, and how its
tasks are placed and choose a device. Nothing else in mepipe lists stages
or their groups, figures and placements: a plug-in stage is one file, and a
built-in one is its module, its line in this package's ``__init__`` and its
features in the feature table (which training reads without the pipeline),
as a model is one file on the training side (STYLE §14, §20).

A kernel sees exactly what its cache key covers. It is called as
``kernel(ctx, inputs, params, read)``: its own parameters, and a
:class:`ReadParams` holding the parameters of the stages it declares in
``reads`` (their keys are chained into its key); reading any other stage's
parameters raises :class:`UndeclaredRead` instead of missing rebuilds
silently. The key itself is made from the same declaration
(:meth:`Stage.key_params`, :meth:`Stage.upstream_keys`).

A stage that also runs on long videos declares its window form
(``window=Windowed(...)``, :mod:`.windows`); on a video store only those
stages are built, each in that form (:meth:`Stage.for_videos`).

A stage defined outside mepipe is a module that calls :func:`register_stage`
(``tests/toy_stage.py``); importing it registers the stage and its features.
Tasks carry their :class:`Stage`, so a build's worker processes import that
module when they unpickle its kernel, and register it there too.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, is_dataclass, replace
from typing import Any

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.errors import ConfigError, UnknownNameError
from mepipe.featurestore.features import FeatureDef

from ..config import replace_from_mapping
from ..context import ClipContext
from .cost import Cost
from .frames import FramesParams
from .windows import UNITS, WINDOW, WindowParams, Windowed

__all__ = ["SOURCE", "SOURCE_DIGEST_ATTR", "SOURCE_FRAMES", "STAGES", "ClipInputs", "Cost", "DatasetOutput", "Device",
           "Figure", "Placement", "ReadParams", "Stage", "StageOutput", "UndeclaredRead", "clip_stages",
           "dataset_stages_after", "default_params", "descendants", "figure", "figure_names", "get_stage", "groups",
           "params_from_mapping", "register_stage", "resolve_devices", "stage_order", "stages_for", "wants_cuda"]

SOURCE = "frames"
"""Name of the source decoding's parameters (:class:`FramesParams`): not a stage of its own, they enter the key
of every stage that decodes the clip's sources."""

SOURCE_FRAMES = "source_frames"
"""Key of a clip's decoded frames (a :class:`~.frames.DecodedClip`) in the inputs of a stage that reads sources.

The task decodes the frames once and hands them to every source-reading
stage it runs for the clip (:func:`mepipe.pipeline.tasks.run_stage_chain`),
so a build decodes each frame once however many of those stages are stale.
"""

SOURCE_DIGEST_ATTR = "source_sha256"
"""Attribute of a source-reading stage's outputs holding the content digest of the bytes it decoded."""


class UndeclaredRead(LookupError):
    """A kernel read the parameters of a stage it does not declare in ``reads`` (its key would not cover them)."""


@dataclass
class StageOutput:
    """Arrays to store (feature name -> array) and per-clip scalars for the sample table.

    ``source_digest`` is the content digest of the source bytes the stage
    decoded, recorded with its outputs so that ``--fingerprint content`` can
    tell whether the files on disk are still those bytes.
    """

    arrays: dict[str, np.ndarray]
    events: dict[str, Any] = field(default_factory=dict)
    source_digest: str | None = None


@dataclass
class DatasetOutput:
    """What a dataset-scope kernel returns: per-clip arrays, dataset arrays and the dataset arrays' attributes.

    ``per_clip`` yields ``(sample, {feature: array})`` lazily, so a stage
    over hundreds of clips holds one clip's arrays at a time.
    """

    per_clip: Iterator[tuple[str, dict[str, np.ndarray]]]
    dataset: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


class ClipInputs:
    """What a dataset-scope kernel reads: its clips, and their stored inputs one clip at a time.

    ``read(sample, feature)`` is limited to the features the stage declares
    in ``inputs``.
    """

    def __init__(self, stage: str, samples: list[str], inputs: tuple[FeatureDef, ...],
                 read: Callable[[str, str], np.ndarray]):
        self.stage = stage
        self.samples = list(samples)
        self._inputs = {f.name for f in inputs}
        self._read = read

    def read(self, sample: str, feature: FeatureDef) -> np.ndarray:
        if feature.name not in self._inputs:
            raise UndeclaredRead(f"stage {self.stage!r} read {feature.name!r}, which it does not declare in inputs")
        return self._read(sample, feature.name)


@dataclass(frozen=True)
class Placement:
    """How a stage's tasks are scheduled: the worker resources each task needs and the clips per task."""

    resources: Mapping[str, float] = field(default_factory=dict)
    clips_per_task: int = 1


@dataclass(frozen=True)
class Device:
    """How a stage's parameters choose a device (flows: ``backend``).

    Attributes
    ----------
    resolve : callable (params, cuda) -> params
        The parameters as a build with (``cuda``) or without a CUDA device
        runs them, e.g. ``backend="auto"`` replaced by the backend it means.
        The build applies it once, before any cache key, and everything after
        reads the resolved value.
    may_use_cuda : callable (params) -> bool
        Whether the (unresolved) parameters could use a CUDA device; the
        build asks its workers for one only then.
    """

    resolve: Callable[[Any, bool], Any]
    may_use_cuda: Callable[[Any], bool]


@dataclass(frozen=True)
class Figure:
    """A picture of a stage's output for ``mepipe show --feature NAME``: ``draw(store, sample)`` -> Figure."""

    name: str
    draw: Callable[..., Any]


class ReadParams(Mapping[str, Any]):
    """The parameters of the stages a kernel declares it reads; any other name raises :class:`UndeclaredRead`."""

    def __init__(self, stage: str, params: Mapping[str, Any]):
        self._stage = stage
        self._params = dict(params)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._params[name]
        except KeyError:
            declared = ", ".join(self._params) or "none"
            raise UndeclaredRead(
                f"stage {self._stage!r} read the parameters of {name!r}, which it does not declare "
                f"(reads: {declared}); add {name!r} to its reads= so its cache key covers them") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)


@dataclass(frozen=True)
class Stage:
    """One registered stage (see :func:`register_stage` for the meaning of each field).

    ``unit`` is ``"video"`` on the form :meth:`for_videos` gives: its key then
    also covers the window parameters.
    """

    name: str
    version: str
    params: type
    kernel: Callable[..., Any] | None
    writes: tuple[FeatureDef, ...]
    inputs: tuple[FeatureDef, ...] = ()
    reads: tuple[str, ...] = ()
    reads_source: bool = False
    reads_truth: bool = False
    group: str | None = None
    figure: Figure | None = None
    kernel_many: Callable[..., list] | None = None
    placement: Callable[[Any, bool], Placement] | None = None
    device: Device | None = None
    scope: str = "clip"
    cost: Cost | None = None
    window: Windowed | None = None
    unit: str = "clip"

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the features it writes."""
        return tuple(f.name for f in self.writes)

    @property
    def units(self) -> tuple[str, ...]:
        """What it runs on: annotated clips (it has a kernel), long videos (it declares a window form), or both."""
        return tuple(u for u, has in zip(UNITS, (self.kernel is not None, self.window is not None)) if has)

    def for_videos(self) -> Stage:
        """Its form on long videos: one window per call, with the reads, inputs and writes its window declares.

        Raises
        ------
        UnknownNameError
            It declares no window form.
        """
        if self.window is None:
            raise UnknownNameError(f"stage {self.name!r} does not run on long videos; those run: "
                                   f"{', '.join(n for n, s in STAGES.items() if s.window)}")
        if self.unit == "video":
            return self
        w = self.window
        return replace(self, kernel=w.kernel or self.kernel, reads=self.reads if w.reads is None else w.reads,
                       inputs=self.inputs if w.inputs is None else w.inputs,
                       writes=self.writes if w.writes is None else w.writes, kernel_many=None, unit="video")

    def in_unit(self, unit: str) -> Stage:
        """Its form for a store of ``unit`` (``clip`` or ``video``)."""
        return self.for_videos() if unit == "video" else self

    def kernel_params(self, params: Mapping[str, Any]) -> tuple[Any, ReadParams]:
        """Its own parameters and those of the stages it reads, out of every stage's: what its kernel receives."""
        return params[self.name], ReadParams(self.name, {n: params[n] for n in self.reads})

    def key_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters its cache key hashes directly: its own, and the source decoding's if it decodes.

        The parameters of the stages it reads enter through their keys
        (:meth:`upstream_keys`), which hash them.
        """
        return {"stage": params[self.name], **({SOURCE: params[SOURCE]} if self.reads_source else {}),
                **({WINDOW: params[WINDOW]} if self.unit == "video" else {})}

    def upstream_keys(self, keys: Mapping[str, str]) -> dict[str, str]:
        """The keys of the stages it reads, out of a clip's keys by stage."""
        return {n: keys[n] for n in self.reads}

    def place(self, params: Any, cuda: bool) -> Placement:
        """Where its tasks run under its (resolved) parameters; default: anywhere, one clip per task."""
        return self.placement(params, cuda) if self.placement else Placement()

    def run(self, ctx: ClipContext, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> StageOutput:
        """Its kernel on one clip, given every stage's parameters but shown only those it declares."""
        own, read = self.kernel_params(params)
        return self.kernel(ctx, inputs, own, read)

    def run_many(self, ctxs: list[ClipContext], inputs: list[Mapping[str, Any]],
                 params: Mapping[str, Any]) -> list[StageOutput | Exception]:
        """Its batched kernel on several clips (``kernel_many``), shown the same parameters as :meth:`run`."""
        own, read = self.kernel_params(params)
        return self.kernel_many(ctxs, inputs, own, read)


STAGES: dict[str, Stage] = {}
"""Every registered stage by name, in registration order (a dependency order: a stage reads only earlier ones)."""

SCOPES = ("clip", "dataset")
"""Values of ``scope``: a stage runs per clip, or once over every clip after the per-clip stages."""


def register_stage(*, name: str, version: str, params: type, kernel: Callable[..., Any] | None,
                   writes: tuple[FeatureDef, ...], inputs: tuple[FeatureDef, ...] = (), reads: tuple[str, ...] = (),
                   reads_source: bool = False, reads_truth: bool = False, group: str | None = None,
                   figure: Figure | None = None, kernel_many: Callable[..., list] | None = None,
                   placement: Callable[[Any, bool], Placement] | None = None, device: Device | None = None,
                   scope: str = "clip", cost: Cost | None = None, window: Windowed | None = None) -> Stage:
    """Register a stage; returns its :class:`Stage`.

    Parameters
    ----------
    name : str
        Stage name: its config section, ``--features`` name and the
        ``stage`` of every feature it writes.
    version : str
        Code version; bump it when the output changes for the same input.
    params : type
        Frozen parameter dataclass; its defaults are the stage's defaults.
    kernel : callable or None
        Per clip: ``kernel(ctx, inputs, params, read) -> StageOutput``, with
        ``inputs`` the loaded features by name (plus the decoded clip under
        :data:`SOURCE_FRAMES` if ``reads_source``), ``params`` its own
        parameters and ``read`` a :class:`ReadParams` of the stages in
        ``reads``. Dataset scope: ``kernel(clips, params, read) ->
        DatasetOutput``, ``clips`` reading its inputs per sample. None for a
        stage that runs on long videos only (it declares ``window``).
    writes : tuple of FeatureDef
        The features it writes; each one's ``stage`` must be ``name``.
        Definitions not in the feature table yet are added to it.
    inputs : tuple of FeatureDef
        The features it loads; each one's stage must be in ``reads``.
    reads : tuple of str
        Stages whose outputs or parameters it uses, all registered before
        it. Their keys are chained into its key, and its kernel sees their
        parameters (and no others).
    reads_source, reads_truth : bool
        Whether it decodes the clip's source frames (its key then covers
        their digest and the ``frames`` parameters) or reads the sheet's
        ground truth and fps (its key covers them).
    group : str, optional
        The ``--features`` group it belongs to.
    figure : Figure, optional
        Its picture for ``mepipe show``.
    kernel_many, placement, device : optional
        A batched kernel over several clips (``kernel_many(ctxs, inputs,
        params, read)``: per clip a StageOutput or the exception that clip
        raised), where its tasks run (``placement(params, cuda)``), and how
        its parameters choose a device (:class:`Device`).
    scope : {"clip", "dataset"}
        A dataset stage runs once over every clip after the per-clip stages,
        reading the outputs of the one stage in ``reads``.
    cost : Cost, optional
        How its work grows with a clip (per frame, per pair, ...), which the
        build's estimate scales a cost measured on one clip by
        (:mod:`.cost`); a per-clip stage without one is left out of the
        estimate, which says so.
    window : Windowed, optional
        Its form on long videos, window by window (:mod:`.windows`); a stage
        without one is not built on them.

    Raises
    ------
    ValueError
        The declaration contradicts itself or the registry: a name taken by
        another module's stage, an unregistered stage in ``reads``, an input
        from a stage it does not read, a feature of another stage, or a
        feature already defined differently.
    """
    stage = Stage(name=name, version=str(version), params=params, kernel=kernel, writes=tuple(writes),
                  inputs=tuple(inputs), reads=tuple(reads), reads_source=reads_source, reads_truth=reads_truth,
                  group=group, figure=figure, kernel_many=kernel_many, placement=placement, device=device,
                  scope=scope, cost=cost, window=window)
    _check(stage)
    if window is not None:
        _check_video_form(stage.for_videos())
    old = STAGES.get(name)
    if old is not None:
        if _origin(old) != _origin(stage):
            raise ValueError(f"stage name {name!r} is already registered by {_origin(old)}; "
                             f"pick another name for {_origin(stage)}")
        warnings.warn(f"stage {name!r} registered again by {_origin(stage)}; replacing it", stacklevel=2)
    features.register(*stage.writes)
    STAGES[name] = stage
    return stage


def _check(stage: Stage) -> None:
    where = f"stage {stage.name!r}"
    if stage.kernel is None and (stage.window is None or stage.scope != "clip"):
        raise ValueError(f"{where}: a stage without a clip kernel must declare its window form (window=)")
    if stage.scope not in SCOPES:
        raise ValueError(f"{where}: scope must be one of {', '.join(SCOPES)}, got {stage.scope!r}")
    if not (is_dataclass(stage.params) and stage.params.__dataclass_params__.frozen):
        raise ValueError(f"{where}: params must be a frozen dataclass, got {stage.params!r}")
    missing = [r for r in stage.reads if r not in STAGES or r == stage.name]
    if missing:
        raise ValueError(f"{where} reads {missing}, which are not registered before it")
    if stage.scope == "dataset" and (len(stage.reads) != 1 or STAGES[stage.reads[0]].scope != "clip"):
        raise ValueError(f"{where}: a dataset stage reads exactly one per-clip stage, got reads={stage.reads}")
    foreign = [f.name for f in stage.inputs if f.stage not in stage.reads]
    if foreign:
        raise ValueError(f"{where} loads {foreign}, written by stages it does not declare in reads")
    others = [f"{f.name} (stage {f.stage!r})" for f in stage.writes if f.stage != stage.name]
    if not stage.writes or others:
        raise ValueError(f"{where} must write features of its own, got {', '.join(others) or 'none'}")
    if stage.scope == "clip" and any(f.scope != "clip" for f in stage.writes):
        raise ValueError(f"{where}: a per-clip stage writes per-clip features only")
    clash = [n for n, s in STAGES.items() if s.figure and stage.figure and s.figure.name == stage.figure.name
             and n != stage.name]
    if clash:
        raise ValueError(f"{where}: figure {stage.figure.name!r} is already stage {clash[0]!r}'s")


def _check_video_form(stage: Stage) -> None:
    """Refuse a window form that reads stages without one, loads what it does not read or writes a whole-clip array."""
    where = f"stage {stage.name!r} on long videos"
    if stage.scope != "clip":
        raise ValueError(f"{where}: only per-clip stages run window by window")
    clip_only = [r for r in stage.reads if STAGES[r].window is None]
    if clip_only:
        raise ValueError(f"{where} reads {clip_only}, which do not run on long videos")
    foreign = [f.name for f in stage.inputs if f.stage not in stage.reads]
    if foreign:
        raise ValueError(f"{where} loads {foreign}, written by stages it does not declare in reads")
    whole = [f.name for f in stage.writes if f.stage != stage.name or not f.dims or f.dims[0] not in ("frame", "pair")]
    if not stage.writes or whole:
        raise ValueError(f"{where} must write its own per-frame features (frame or pair first), got "
                         f"{', '.join(whole) or 'none'}")


def _origin(stage: Stage) -> str:
    """Where a stage is defined, by its parameter class (a module reloaded defines the same one again)."""
    return f"{stage.params.__module__}.{stage.params.__qualname__}"


def get_stage(name: str) -> Stage:
    """A registered stage; an unknown name raises :class:`UnknownNameError` listing the known ones."""
    try:
        return STAGES[name]
    except KeyError:
        raise UnknownNameError(f"unknown stage {name!r}; known: {', '.join(STAGES)}") from None


def clip_stages(unit: str = "clip") -> list[str]:
    """Names of the per-clip stages that run on ``unit`` (clips, or long videos), in dependency order."""
    return [n for n, s in STAGES.items() if s.scope == "clip" and unit in s.units]


def dataset_stages_after(built: list[str]) -> list[Stage]:
    """The dataset stages whose per-clip stage a build with these stages runs."""
    return [s for s in STAGES.values() if s.scope == "dataset" and s.reads[0] in built]


def groups() -> dict[str, tuple[str, ...]]:
    """``--features`` groups: each group name and its stages, as the stages declare them."""
    out: dict[str, tuple[str, ...]] = {}
    for name, stage in STAGES.items():
        if stage.group:
            out[stage.group] = (*out.get(stage.group, ()), name)
    return out


def _clip_stage(name: str) -> str:
    """The per-clip stage to build for a stage name (a dataset stage: the stage it runs after)."""
    stage = STAGES[name]
    return stage.reads[0] if stage.scope == "dataset" else name


def stages_for(names: list[str] | None, unit: str = "clip") -> list[str]:
    """Per-clip stage names, in order, for a mix of group, stage and feature names (``--features``) on ``unit``.

    On long videos (``unit="video"``) a group means its stages that run on
    them; a stage or feature named explicitly that does not is refused with
    the reason. None means every stage of the unit.
    """
    if names is None:
        return stage_order(None, unit)
    table = groups()
    out: list[str] = []
    for name in names:
        if name in table:
            members = [_clip_stage(n) for n in table[name]]
            if unit == "video":
                members = [n for n in members if unit in STAGES[n].units]
                if not members:
                    raise UnknownNameError(f"no stage of group {name!r} runs on long videos; those that do: "
                                           f"{', '.join(clip_stages(unit))}")
            out += members
        elif name in STAGES:
            out.append(_clip_stage(name))
        elif name in features.FEATURES:
            out.append(_clip_stage(features.FEATURES[name].stage))
        else:
            raise UnknownNameError(f"unknown feature {name!r}; use a group ({', '.join(table)}), "
                                   f"a stage ({', '.join(STAGES)}) or a feature name")
    return stage_order(out, unit)


def stage_order(names: list[str] | None = None, unit: str = "clip") -> list[str]:
    """Per-clip stages of ``unit`` in dependency order; with ``names``, those and everything they read."""
    per_clip = clip_stages(unit)
    wanted = set(per_clip if names is None else names)
    elsewhere = sorted(n for n in wanted - set(per_clip) if n in STAGES and STAGES[n].scope == "clip")
    if elsewhere:
        what = ("work on annotated clips (onset, apex, offset), not on long videos" if unit == "video"
                else "run on long videos only")
        raise UnknownNameError(f"stages {', '.join(elsewhere)} {what}; the stages of this store: {', '.join(per_clip)}")
    unknown = wanted - set(per_clip)
    if unknown:
        raise UnknownNameError(f"unknown stages {sorted(unknown)}; known: {', '.join(per_clip)}")
    closure: set[str] = set()

    def visit(n):
        if n not in closure:
            closure.add(n)
            for u in STAGES[n].in_unit(unit).reads:
                visit(u)

    for n in wanted:
        visit(n)
    return [n for n in per_clip if n in closure]


def descendants(name: str, unit: str = "clip") -> set[str]:
    """A stage and every stage of ``unit`` that reads from it, directly or not."""
    out = {name}
    for n, s in STAGES.items():
        if unit in s.units and any(u in out for u in s.in_unit(unit).reads):
            out.add(n)
    return out


def default_params(unit: str = "clip") -> dict[str, Any]:
    """Default parameters of the source decoding, of the long videos' windows and of every stage, by name (per-clip
    stages first, those that run on long videos only after them); for ``unit="video"`` with the values the stages
    declare for long videos (:attr:`Windowed.defaults`)."""
    ordered = [*clip_stages(), *(n for n, s in STAGES.items() if s.scope == "clip" and s.kernel is None),
               *(n for n, s in STAGES.items() if s.scope == "dataset")]

    def params(stage: Stage) -> Any:
        changes = stage.window.defaults if unit == "video" and stage.window is not None else {}
        return replace(stage.params(), **changes)

    return {SOURCE: FramesParams(), WINDOW: WindowParams(), **{n: params(STAGES[n]) for n in ordered}}


def params_from_mapping(config: Mapping[str, Mapping[str, Any]], unit: str = "clip") -> dict[str, Any]:
    """Stage parameters from a config mapping, checked to the leaf (see :mod:`mepipe.pipeline.config`).

    Raises
    ------
    ConfigError
        An unknown stage or parameter (at any depth), a value of the wrong
        type, or one the parameter dataclass refuses; the message names its
        path, e.g. ``flow_first_each.tvl1.lamda``.
    """
    params = default_params(unit)
    for stage, values in config.items():
        if stage not in params:
            raise ConfigError(f"{stage}: unknown stage; valid keys: {', '.join(params)}")
        params[stage] = replace_from_mapping(params[stage], values, stage)
    return params


def wants_cuda(params: Mapping[str, Any], stages: list[str]) -> bool:
    """Whether any of these stages could use a CUDA device under its (unresolved) parameters."""
    return any(STAGES[n].device is not None and STAGES[n].device.may_use_cuda(params[n]) for n in stages)


def resolve_devices(params: Mapping[str, Any], cuda: bool) -> dict[str, Any]:
    """Every stage's parameters as this build runs them (``cuda``: the build has a CUDA device).

    The one place a device choice (``backend="auto"``) is resolved: the
    build does it before it computes cache keys, so keys and stored
    parameters name the backend that made each feature, and placement,
    kernels and records read the resolved value.
    """
    return {n: STAGES[n].device.resolve(p, cuda) if n in STAGES and STAGES[n].device else p
            for n, p in params.items()}


def figure_names() -> list[str]:
    """What ``mepipe show --feature`` can draw: every stage's figure name, sorted."""
    return sorted(s.figure.name for s in STAGES.values() if s.figure)


def figure(name: str) -> Figure:
    """The figure of that name; an unknown one raises :class:`UnknownNameError` listing the known ones."""
    for stage in STAGES.values():
        if stage.figure and stage.figure.name == name:
            return stage.figure
    raise UnknownNameError(f"no figure {name!r}; known: {', '.join(figure_names())}")
