"""The stage table: which kernel each stage runs, what it reads and what it writes.

This is the only place that connects kernels (``stages/``) to store
features; ``graph.py`` turns it into per-clip tasks.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .context import ClipContext
from .stages import align, apex, frames, landmarks


@dataclass
class StageOutput:
    """Arrays to store (feature name -> array) and per-clip scalars for the sample table."""

    arrays: dict[str, np.ndarray]
    events: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageDef:
    name: str
    version: str
    params_type: type
    upstream: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    reads_source: bool
    reads_truth: bool
    compute: Callable[[ClipContext, Mapping[str, np.ndarray], Any, Mapping[str, Any]], StageOutput]


def load_frames(ctx: ClipContext, params: frames.FramesParams) -> np.ndarray:
    if ctx.video:
        return frames.read_video(ctx.video, ctx.frame_numbers, params)
    return frames.read_frames(ctx.frame_files, params)


def _landmarks(ctx, inputs, params, shared):
    clip = load_frames(ctx, shared["frames"])
    result = landmarks.track_landmarks(frames.to_grey(clip), params)
    return StageOutput({"frame": np.asarray(ctx.frame_numbers, dtype=np.int64), "landmarks": result.landmarks,
                        "face_found": result.face_found, "face_box": result.boxes},
                       {"frames_without_face": int((~result.face_found).sum())})


def _align(ctx, inputs, params, shared):
    clip = load_frames(ctx, shared["frames"])
    result = align.align_clip(clip, inputs["landmarks"], params, ctx.fps)
    return StageOutput({"crops": result.crops, "landmarks_aligned": result.landmarks,
                        "transforms": result.transforms})


def _apex(ctx, inputs, params, shared):
    r = apex.estimate(inputs["crops"], ctx.truth, params)
    number = ctx.frame_numbers
    return StageOutput(
        {"stddiff": r.stddiff, "ncc": r.ncc, "intensity": r.intensity, "state": r.state,
         "state_index": r.state_index},
        {"apex_est": number[r.apex_est], "apex_ncc": number[r.apex_ncc], "onset_est": number[r.onset_est],
         "offset_est": number[r.offset_est], "apex_reference": number[r.apex_reference],
         "states_from": r.states_from})


SHARED_PARAMS: dict[str, type] = {"frames": frames.FramesParams}
"""Parameters that are not a stage of their own but enter the key of every stage reading sources."""

STAGES: dict[str, StageDef] = {}


def register_stage(stage: StageDef) -> StageDef:
    missing = [u for u in stage.upstream if u not in STAGES]
    if missing:
        raise ValueError(f"stage {stage.name!r} depends on unregistered stages {missing}")
    STAGES[stage.name] = stage
    return stage


register_stage(StageDef("landmarks", landmarks.VERSION, landmarks.LandmarkParams, (), (),
                        ("frame", "landmarks", "face_found", "face_box"), True, False, _landmarks))
register_stage(StageDef("align", align.VERSION, align.AlignParams, ("landmarks",), ("landmarks",),
                        ("crops", "landmarks_aligned", "transforms"), True, False, _align))
register_stage(StageDef("apex", apex.VERSION, apex.ApexParams, ("align",), ("crops",),
                        ("stddiff", "ncc", "intensity", "state", "state_index"), False, True, _apex))


def stage_order(names: list[str] | None = None) -> list[str]:
    """Stages in dependency order; with ``names``, those and everything they need."""
    wanted = set(STAGES if names is None else names)
    unknown = wanted - set(STAGES)
    if unknown:
        raise KeyError(f"unknown stages {sorted(unknown)}; known: {', '.join(STAGES)}")
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
    return {**{n: t() for n, t in SHARED_PARAMS.items()}, **{n: s.params_type() for n, s in STAGES.items()}}


def params_from_mapping(config: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Stage parameters from a config mapping; unknown stages or fields are errors."""
    params = default_params()
    for stage, values in config.items():
        if stage not in params:
            raise KeyError(f"config names unknown stage {stage!r}; known: {', '.join(params)}")
        fields = {f.name: f for f in dataclasses.fields(params[stage])}
        unknown = set(values) - set(fields)
        if unknown:
            raise KeyError(f"config for stage {stage!r} has unknown parameters {sorted(unknown)}; "
                           f"known: {', '.join(fields)}")
        coerced = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        params[stage] = dataclasses.replace(params[stage], **coerced)
    return params
