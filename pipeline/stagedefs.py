"""The stage table: which kernel each stage runs and what it reads.

This is the only place that connects kernels (``stages/``) to store
features; what each stage writes, and at which sizes, is the feature table's
(:mod:`mepipe.featurestore.features`). ``graph.py`` turns it into per-clip
tasks.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mepipe.featurestore.errors import ConfigError, UnknownNameError
from mepipe.featurestore.features import FEATURES, produced_by
from mepipe.featurestore.fingerprint import ContentDigest
from mepipe.featurestore.views import time_normalise

from . import dataset_stages
from .config import replace_from_mapping
from .context import ClipContext
from .errors import ClipError
from .stages import align, apex, appearance, flow, frames, landmarks, lfm, magnify, subsets


SOURCE_DIGEST_ATTR = "source_sha256"
"""Attribute of a source-reading stage's outputs holding the content digest of the bytes it decoded."""


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


@dataclass(frozen=True)
class Placement:
    """How a stage's tasks are scheduled: the worker resources each task needs and the clips per task."""

    resources: Mapping[str, float] = field(default_factory=dict)
    clips_per_task: int = 1


@dataclass(frozen=True)
class StageDef:
    """One per-clip stage: its kernel wrapper, parameters, and the stages and features it reads.

    Its outputs are the features the feature table says it produces. A
    stage that ``reads_source`` finds the clip's decoded frames in its inputs
    under :data:`SOURCE_FRAMES` (the task decodes them, once per clip).
    ``compute_many`` (stages that batch clips) takes lists of contexts and
    inputs and returns, per clip, a StageOutput or the exception that clip
    raised. ``placement(params, cuda)`` says where the stage's tasks run when
    the build has (``cuda``) or has not a CUDA device; default: anywhere, one
    clip per task.
    """

    name: str
    version: str
    params_type: type
    upstream: tuple[str, ...]
    inputs: tuple[str, ...]
    reads_source: bool
    reads_truth: bool
    compute: Callable[[ClipContext, Mapping[str, np.ndarray], Any, Mapping[str, Any]], StageOutput]
    compute_many: Callable[..., list] | None = None
    placement: Callable[[Any, bool], Placement] | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        return produced_by(self.name)

    def place(self, params: Any, cuda: bool) -> Placement:
        return self.placement(params, cuda) if self.placement else Placement()


def load_frames(ctx: ClipContext, params: frames.FramesParams, digest: ContentDigest | None = None) -> np.ndarray:
    if ctx.video:
        return frames.read_video(ctx.video, ctx.frame_numbers, params, digest)
    return frames.read_frames(ctx.frame_files, params, digest)


SOURCE_FRAMES = "source_frames"
"""Key of a clip's decoded frames (a :class:`DecodedClip`) in the inputs of a stage that reads sources.

The task decodes the frames once and hands them to every source-reading
stage it runs for the clip (:func:`mepipe.pipeline.tasks.run_stage_chain`),
so a build decodes each frame once however many of those stages are stale.
"""


@dataclass(frozen=True)
class DecodedClip:
    """A clip's frames as decoded, and the content digest of the bytes they were decoded from."""

    frames: np.ndarray
    digest: str


def decode_clip(ctx: ClipContext, params: frames.FramesParams) -> DecodedClip:
    """Decode every frame of a clip once, hashing the bytes as they are read."""
    digest = ContentDigest()
    clip = load_frames(ctx, params, digest)
    return DecodedClip(clip, digest.hexdigest())


def _landmarks(ctx, inputs, params, shared):
    decoded = inputs[SOURCE_FRAMES]
    result = landmarks.track_landmarks(frames.to_grey(decoded.frames), params)
    return StageOutput({"frame": np.asarray(ctx.frame_numbers, dtype=np.int64), "landmarks": result.landmarks,
                        "face_found": result.face_found, "face_box": result.boxes},
                       result.events(), decoded.digest)


def _align(ctx, inputs, params, shared):
    result = align.align_clip(inputs[SOURCE_FRAMES].frames, inputs["landmarks"], params, ctx.fps)
    return StageOutput({"crops": result.crops, "landmarks_aligned": result.landmarks,
                        "transforms": result.transforms})


def _apex(ctx, inputs, params, shared):
    magnified = inputs["magnified"] if params.stddiff_on == "magnified" else None
    r = apex.estimate(inputs["crops"], ctx.truth, params, magnified)
    number = ctx.frame_numbers
    return StageOutput(
        {"stddiff": r.stddiff, "ncc": r.ncc, "intensity": r.intensity, "state": r.state,
         "state_index": r.state_index},
        {"apex_est": number[r.apex_est], "apex_ncc": number[r.apex_ncc], "onset_est": number[r.onset_est],
         "offset_est": number[r.offset_est], "apex_reference": number[r.apex_reference],
         "states_from": r.states_from})


def _onset_apex(ctx, inputs):
    """Onset and apex positions for the onset->apex flow: Kim's state frames 0 and 2."""
    idx = inputs["state_index"]
    onset, peak = int(idx[0]), int(idx[2])
    if peak <= onset:
        onset = 0
    if peak <= onset:
        raise ClipError(f"apex at the first frame (index {peak}); no onset->apex motion to measure")
    return onset, peak


def _flow_onset_apex_pairs(ctx, inputs, params):
    onset, peak = _onset_apex(ctx, inputs)
    grey = flow.onset_apex_crops(inputs["crops"], onset, peak, params)
    return grey, [(0, 1)], {"onset_index": onset, "apex_index": peak}


def _flow_first_each_pairs(ctx, inputs, params):
    grey = flow.prepare_crops(inputs["crops"], params, min_frames=2)
    return grey, flow.first_each_pairs(len(grey)), {}


def _flow_consecutive_pairs(ctx, inputs, params):
    """Pairs of frames that are neighbours in time; None (a NaN field) for pairs that straddle a gap.

    A pair across a gap in the frame numbers is frames two or more intervals
    apart; computing its flow would pass it off as one interval's motion, so
    it stays NaN (a reader that ignores it fails loudly instead of learning
    from it).
    """
    grey = flow.prepare_crops(inputs["crops"], params, min_frames=2)
    gaps = [int(b) for b in np.flatnonzero(np.diff(np.asarray(ctx.frame_numbers)) != 1)]
    pairs = [None if i in gaps else p for i, p in enumerate(flow.consecutive_pairs(len(grey)))]
    return grey, pairs, ({"gap_pairs": gaps} if gaps else {})


def _flow_stage(feature: str, pairs_of: Callable, one_field: bool = False):
    """``compute`` and ``compute_many`` of a flow stage: every pair of every clip in one solver call.

    ``pairs_of(ctx, inputs, params)`` gives a clip's prepared crops, its
    (from, to) pairs (None: no flow, a NaN field) and events. The events
    also record the backend, device and library that made the flow.
    """
    def compute_many(ctxs, inputs, params, shared):
        prepared: list = []
        for ctx, clip_inputs in zip(ctxs, inputs):
            try:
                prepared.append(pairs_of(ctx, clip_inputs, params))
            except Exception as e:  # this clip fails alone
                prepared.append(e)
        ready = [p for p in prepared if not isinstance(p, Exception)]
        fields = iter(flow.flows_of_clips([g for g, _, _ in ready],
                                          [[q for q in pairs if q is not None] for _, pairs, _ in ready], params))
        made_by = flow.backend_record(params.backend)
        outputs = []
        for p in prepared:
            if isinstance(p, Exception):
                outputs.append(p)
                continue
            fields_of_clip = _with_gaps(next(fields), p[1], params.size)
            outputs.append(StageOutput({feature: fields_of_clip[0] if one_field else fields_of_clip},
                                       {**p[2], **made_by}))
        return outputs

    def compute(ctx, inputs, params, shared):
        out = compute_many([ctx], [inputs], params, shared)[0]
        if isinstance(out, Exception):
            raise out
        return out

    return compute, compute_many


def _with_gaps(fields: np.ndarray, pairs: list, size: tuple[int, int]) -> np.ndarray:
    """Fields for every pair, NaN where the pair is None."""
    if all(q is not None for q in pairs):
        return fields
    out = np.full((len(pairs), 2, size[1], size[0]), np.nan, dtype=np.float32)
    out[[i for i, q in enumerate(pairs) if q is not None]] = fields
    return out


GPU_FLOW_CLIPS_PER_TASK = {"flow_onset_apex": 256, "flow_first_each": 32, "flow_consecutive": 32}
"""Clips per flow task on a GPU: about 250-2500 pairs per solver call (one H200 holds ~90,000 pairs of 112 x 112)."""


def _flow_placement(stage: str):
    def placement(params, cuda: bool) -> Placement:
        if flow.resolve_backend(params.backend, cuda) == "torch" and cuda:
            return Placement({"GPU": 1}, GPU_FLOW_CLIPS_PER_TASK[stage])
        return Placement()

    return placement


_flow_onset_apex, _flow_onset_apex_many = _flow_stage("flow_onset_apex", _flow_onset_apex_pairs, one_field=True)
_flow_first_each, _flow_first_each_many = _flow_stage("flow_first_each", _flow_first_each_pairs)
_flow_consecutive, _flow_consecutive_many = _flow_stage("flow_consecutive", _flow_consecutive_pairs)


def _squeezed(crops: np.ndarray) -> np.ndarray:
    """Crops (T, S, S, C) as the magnification kernels take them: greyscale without its channel axis."""
    return crops[..., 0] if crops.shape[-1] == 1 else crops


def _magnify(ctx, inputs, params, shared):
    crops = inputs["crops"]
    grey = crops.shape[-1] == 1
    small = magnify.magnify_sized(_squeezed(crops), params.small_size, params.alphas, params)
    test = magnify.magnify_sized(_squeezed(crops), params.size, (params.test_alpha,), params)[:, 0]
    return StageOutput({"magnified": test[..., None] if grey else test,
                        "magnified_small": small[..., None] if grey else small},
                       {"alphas": list(params.alphas), "test_alpha": params.test_alpha})


def _flow_onset_apex_magnified(ctx, inputs, params, shared):
    """Onset->apex flows of the clip magnified with every alpha, for the (onset, apex) pairs its frame subsets give.

    Xia et al. (2019) magnify the aligned clip, then compute STRCN-G's flow
    between its onset and apex frames resized to 300x245; frame subsets
    (their augmentation) change the pair when they drop either frame
    (:mod:`.stages.subsets`). Magnification runs at the crops' resolution,
    with the magnify stage's parameters and alpha list.
    """
    magnification = shared["magnify"]
    onset, peak = _onset_apex(ctx, inputs)
    crops = inputs["crops"]
    keep = subsets.draw_subsets(len(crops), params.subset_levels, subsets.subset_seed(ctx.sample, params.subset_seed))
    pairs, pair_of = subsets.subset_pairs(keep, onset, peak, inputs["stddiff"])
    frames_used = sorted(set(pairs.ravel().tolist()))
    position = {f: k for k, f in enumerate(frames_used)}
    magnified = magnify.magnify_frames(_squeezed(crops), magnification.alphas, frames_used, magnification)
    width, height = params.size
    fields = np.empty((len(magnification.alphas), len(pairs), 2, height, width), dtype=np.float32)
    for a, clip in enumerate(magnified):
        for k, (start, end) in enumerate(pairs):
            fields[a, k] = flow.flow_onset_apex(clip[[position[start], position[end]]], 0, 1, params)
    return StageOutput({"flow_onset_apex_magnified": fields, "onset_apex_pairs": pairs, "subset_frames": keep,
                        "subset_pair": pair_of},
                       {"onset_index": onset, "apex_index": peak, "n_pairs": len(pairs)})


def _lfm(ctx, inputs, params, shared):
    points = inputs["landmarks"]
    return StageOutput({"lfm": lfm.lfm68(points, ctx.fps, params), "clfm": lfm.lfm21(points, ctx.fps, params),
                        "sfem": np.float64(lfm.sfem(points, ctx.fps, params))},
                       {"lag": lfm.lag_from_fps(ctx.fps, params.lag_fps_divisor)})


def _appearance(ctx, inputs, params, shared):
    clip = inputs["magnified_small"][:, shared["magnify"].test_index].astype(np.float32)
    grey = clip.mean(axis=-1)
    return StageOutput({"heatmap": appearance.heatmap(grey),
                        "appearance_frames": time_normalise(clip, params.n_time)})


@dataclass(frozen=True)
class KimParams:
    """Sizes of Kim's inputs: every frame and the five state frames at ``size`` x ``size`` x 3 (Kim: 64).

    Attributes
    ----------
    size : int
        Side in pixels of the square ``frames_rgb`` and ``state_frames`` (Kim: 64).
    """

    size: int = 64

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"KimParams.size must be >= 1, got {self.size!r}")


def _kim(ctx, inputs, params, shared):
    import cv2

    crops = inputs["crops"]
    small = np.stack([cv2.resize(c, (params.size, params.size), interpolation=cv2.INTER_AREA) for c in crops])
    small = np.repeat(small[..., None], 3, axis=-1) if small.ndim == 3 else small
    return StageOutput({"frames_rgb": small, "state_frames": small[inputs["state_index"]]})


SHARED_PARAMS: dict[str, type] = {"frames": frames.FramesParams}
"""Parameters that are not a stage of their own but enter the key of every stage reading sources."""

DATASET_PARAMS: dict[str, type] = {dataset_stages.NAME: dataset_stages.AppearanceMaskParams}
"""Parameters of the stages that need every clip at once (run after a per-clip stage)."""

STAGES: dict[str, StageDef] = {}


def register_stage(stage: StageDef) -> StageDef:
    missing = [u for u in stage.upstream if u not in STAGES]
    if missing:
        raise ValueError(f"stage {stage.name!r} depends on unregistered stages {missing}")
    STAGES[stage.name] = stage
    return stage


register_stage(StageDef("landmarks", landmarks.VERSION, landmarks.LandmarkParams, (), (), True, False, _landmarks))
register_stage(StageDef("align", align.VERSION, align.AlignParams, ("landmarks",), ("landmarks",), True, False,
                        _align))
register_stage(StageDef("magnify", magnify.VERSION, magnify.MagnifyParams, ("align",), ("crops",), False, False,
                        _magnify))
register_stage(StageDef("apex", apex.VERSION, apex.ApexParams, ("align", "magnify"), ("crops", "magnified"), False,
                        True, _apex))
register_stage(StageDef("flow_onset_apex", flow.VERSION, flow.OnsetApexFlowParams, ("align", "apex"),
                        ("crops", "state_index"), False, False, _flow_onset_apex,
                        _flow_onset_apex_many, _flow_placement("flow_onset_apex")))
register_stage(StageDef("flow_onset_apex_magnified", flow.VERSION, flow.MagnifiedOnsetApexFlowParams,
                        ("align", "magnify", "apex"), ("crops", "state_index", "stddiff"), False, False,
                        _flow_onset_apex_magnified))
register_stage(StageDef("flow_first_each", flow.VERSION, flow.FirstEachFlowParams, ("align",), ("crops",),
                        False, False, _flow_first_each, _flow_first_each_many, _flow_placement("flow_first_each")))
register_stage(StageDef("flow_consecutive", flow.VERSION, flow.ConsecutiveFlowParams, ("align",), ("crops",),
                        False, False, _flow_consecutive, _flow_consecutive_many, _flow_placement("flow_consecutive")))
register_stage(StageDef("lfm", lfm.VERSION, lfm.LFMParams, ("landmarks",), ("landmarks",), False, True, _lfm))
register_stage(StageDef("appearance", appearance.VERSION, appearance.AppearanceParams, ("magnify",),
                        ("magnified_small",), False, False, _appearance))
register_stage(StageDef("kim", "1", KimParams, ("align", "apex"), ("crops", "state_index"), False, False, _kim))

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("apex",),
    "flow": ("flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each", "flow_consecutive"),
    "magnify": ("magnify",),
    "lfm": ("lfm",),
    "appearance": ("appearance",),
    "kim": ("kim",),
}
"""Names ``--features`` accepts besides stage and feature names."""


def stage_of(feature: str) -> str:
    """The per-clip stage to build for a feature (a dataset-level feature: the stage it runs after)."""
    stage = FEATURES[feature].stage
    return dataset_stages.AFTER if stage == dataset_stages.NAME else stage


def stages_for(names: list[str]) -> list[str]:
    """Stage names for a mix of group, stage and feature names (``--features``)."""
    out: list[str] = []
    for name in names:
        if name in FEATURE_GROUPS:
            out += FEATURE_GROUPS[name]
        elif name in STAGES:
            out.append(name)
        elif name in FEATURES:
            out.append(stage_of(name))
        else:
            raise UnknownNameError(f"unknown feature {name!r}; use a group ({', '.join(FEATURE_GROUPS)}), "
                           f"a stage ({', '.join(STAGES)}) or a feature name")
    return stage_order(out)


def stage_order(names: list[str] | None = None) -> list[str]:
    """Stages in dependency order; with ``names``, those and everything they need."""
    wanted = set(STAGES if names is None else names)
    unknown = wanted - set(STAGES)
    if unknown:
        raise UnknownNameError(f"unknown stages {sorted(unknown)}; known: {', '.join(STAGES)}")
    closure: set[str] = set()

    def visit(n):
        if n not in closure:
            closure.add(n)
            for u in STAGES[n].upstream:
                visit(u)

    for n in wanted:
        visit(n)
    return [n for n in STAGES if n in closure]


def descendants(name: str) -> set[str]:
    """A stage and every stage that reads from it, directly or not."""
    out = {name}
    for n, s in STAGES.items():
        if any(u in out for u in s.upstream):
            out.add(n)
    return out


def default_params() -> dict[str, Any]:
    """Default parameters of every stage and of the shared settings, by name."""
    return {**{n: t() for n, t in SHARED_PARAMS.items()}, **{n: s.params_type() for n, s in STAGES.items()},
            **{n: t() for n, t in DATASET_PARAMS.items()}}


def params_from_mapping(config: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Stage parameters from a config mapping, checked to the leaf (see :mod:`mepipe.pipeline.config`).

    Raises
    ------
    ConfigError
        An unknown stage or parameter (at any depth), a value of the wrong
        type, or one the parameter dataclass refuses; the message names its
        path, e.g. ``flow_first_each.tvl1.lamda``.
    """
    params = default_params()
    for stage, values in config.items():
        if stage not in params:
            raise ConfigError(f"{stage}: unknown stage; valid keys: {', '.join(params)}")
        params[stage] = replace_from_mapping(params[stage], values, stage)
    return params


def resolve_backends(params: Mapping[str, Any], cuda: bool) -> dict[str, Any]:
    """Parameters with every ``backend="auto"`` replaced by the backend it means for this build.

    Done before cache keys are computed, so keys and stored parameters name
    the backend that made each feature (``cuda``: the build has a CUDA device).
    """
    out = dict(params)
    for name, p in params.items():
        if dataclasses.is_dataclass(p) and getattr(p, "backend", None) == "auto":
            out[name] = dataclasses.replace(p, backend=flow.resolve_backend("auto", cuda))
    return out


def wants_cuda(params: Mapping[str, Any], stages: list[str]) -> bool:
    """Whether any of these stages could use a CUDA device (a backend other than OpenCV)."""
    return any(getattr(params[n], "backend", "opencv") != "opencv" for n in stages)
