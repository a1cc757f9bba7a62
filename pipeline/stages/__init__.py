"""The stages: one module each, registered on import (:mod:`.registry`); the shared kernels beside them.

Stage modules: landmarks, align, magnify, apex, the four flow variants,
lfm, appearance, kim, the dataset stage appearance_mask and the long-video
stages flow_apart and roi_motion. Kernel libraries they share: frames (decoding), flow and
flow_tasks (TV-L1 and batching), tvl1_torch, lwm, subsets; windows (long
videos window by window).
"""
from . import (  # noqa: F401 -- importing a stage module registers it; the order is the dependency order
    landmarks,
    align,
    magnify,
    apex,
    flow_onset_apex,
    flow_onset_apex_magnified,
    flow_first_each,
    flow_consecutive,
    lfm,
    appearance,
    kim,
    appearance_mask,
    flow_apart,
    roi_motion,
)
from .registry import (
    SOURCE,
    SOURCE_DIGEST_ATTR,
    SOURCE_FRAMES,
    STAGES,
    Cost,
    DatasetOutput,
    Device,
    Figure,
    Placement,
    ReadParams,
    Stage,
    StageOutput,
    UndeclaredRead,
    clip_stages,
    dataset_stages_after,
    default_params,
    descendants,
    figure,
    figure_names,
    get_stage,
    groups,
    params_from_mapping,
    register_stage,
    resolve_devices,
    stage_order,
    stages_for,
    wants_cuda,
)
from .windows import SOURCE_VIDEO, WINDOW, UNITS, WindowParams, Windowed

__all__ = ["SOURCE", "SOURCE_DIGEST_ATTR", "SOURCE_FRAMES", "STAGES", "Cost", "DatasetOutput", "Device", "Figure",
           "Placement", "ReadParams", "Stage", "StageOutput", "UndeclaredRead", "clip_stages", "dataset_stages_after",
           "default_params", "descendants", "figure", "figure_names", "get_stage", "groups", "params_from_mapping",
           "register_stage", "resolve_devices", "stage_order", "stages_for", "wants_cuda", "SOURCE_VIDEO", "UNITS",
           "WINDOW", "WindowParams", "Windowed"]
