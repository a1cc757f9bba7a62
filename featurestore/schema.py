"""The on-disk contract: schema version, feature names, their dims and dtypes.

Feature names are stable public names. A store records ``SCHEMA_VERSION``; a
reader refuses a store whose schema is newer than the one it understands and
names the mepipe version that writes it.
"""
from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1
"""Bump when the layout or the meaning of a stored array changes."""

READER_MIN_VERSION = {1: "0.1.0"}
"""For each schema version, the first mepipe release that reads it."""


@dataclass(frozen=True)
class FeatureSpec:
    """What one per-clip feature array looks like on disk.

    ``dims`` are the xarray dimension names written as Zarr v3
    ``dimension_names``; a dim that only exists at one size within a clip
    (e.g. ``y112``) is named for that size so that one clip group opens as a
    single xarray Dataset.
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    stage: str
    description: str


_FEATURES: dict[str, FeatureSpec] = {}


def register_feature(name: str, dims: tuple[str, ...], dtype: str, stage: str, description: str) -> FeatureSpec:
    """Declare a feature; a second declaration with a different spec is an error."""
    spec = FeatureSpec(name, tuple(dims), dtype, stage, description)
    if name in _FEATURES and _FEATURES[name] != spec:
        raise ValueError(f"feature {name!r} declared twice with different specs: {_FEATURES[name]} vs {spec}")
    _FEATURES[name] = spec
    return spec


def feature_spec(name: str) -> FeatureSpec:
    try:
        return _FEATURES[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(sorted(_FEATURES))}") from None


def feature_names() -> list[str]:
    return sorted(_FEATURES)


register_feature("frame", ("frame",), "int64", "landmarks", "source frame number of each frame")
register_feature("landmarks", ("frame", "landmark", "xy"), "float32", "landmarks",
                 "dlib 68-point landmarks in source pixels (x, y)")
register_feature("face_found", ("frame",), "bool", "landmarks",
                 "False where no face was found and landmarks were interpolated")
register_feature("face_box", ("frame", "box"), "float32", "landmarks",
                 "face box used for the shape predictor: left, top, right, bottom (source pixels)")
register_feature("crops", ("frame", "y", "x", "channel"), "uint8", "align",
                 "aligned face crops at the canonical size, source channels")
register_feature("landmarks_aligned", ("frame", "landmark", "xy"), "float32", "align",
                 "landmarks in crop pixels")
register_feature("transforms", ("frame", "row", "col"), "float32", "align",
                 "2x3 affine from source pixels to crop pixels")
register_feature("stddiff", ("frame",), "float32", "apex", "std(I_t - I_0) over the aligned clip (Xia eq. 5)")
register_feature("ncc", ("frame",), "float32", "apex", "zero-mean NCC of each frame with the reference apex frame")
register_feature("intensity", ("frame",), "float32", "apex",
                 "expression intensity in [0, 1]: NCC with the apex, rescaled within the clip")
register_feature("state", ("frame",), "int8", "apex",
                 "expression state per frame: 0 onset, 1 onset-apex, 2 apex, 3 apex-offset, 4 offset")
register_feature("state_index", ("expression_state",), "int32", "apex",
                 "frame index of the five representative state frames (Kim eq. 1)")

STATE_NAMES = ("onset", "onset_to_apex", "apex", "apex_to_offset", "offset")

SAMPLE_COLUMNS = (
    "sample", "dataset", "subject", "clip", "fps", "n_frames", "emotion", "objective_class", "action_units",
    "onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "apex_ncc", "flags", "status", "error",
)
"""Columns of the ``samples`` group, one row per clip. Frame columns hold source
frame numbers; missing values are -1 on disk and <NA> in ``store.samples``."""

FRAME_COLUMNS = ("onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "apex_ncc")

register_feature("flow_onset_apex", ("uv", "y245", "x300"), "float16", "flow_onset_apex",
                 "TV-L1 flow (u, v) from the onset crop to the apex crop at 300x245 (STRCN-G)")
register_feature("flow_first_each", ("pair", "uv", "y112", "x112"), "float16", "flow_first_each",
                 "TV-L1 flow from the first frame to each later frame at 112x112 (SHCNN)")
register_feature("flow_consecutive", ("pair", "uv", "y64", "x64"), "float16", "flow_consecutive",
                 "TV-L1 flow between consecutive frames at 64x64 (Nag's temporal network)")
register_feature("magnified", ("frame", "alpha", "y128", "x128", "channel"), "uint8", "magnify",
                 "Eulerian-magnified aligned clip at 128x128, one clip per amplification alpha")
register_feature("magnified64x48", ("frame", "alpha", "y48", "x64", "channel"), "uint8", "magnify",
                 "Eulerian-magnified aligned clip at 64x48 (W x H) for STRCN-A")
register_feature("lfm68", ("map", "i68", "j68"), "uint8", "lfm",
                 "landmark feature maps over all 68 points (Choi eq. 1-2), lag T = fps/25")
register_feature("lfm21", ("map", "i21", "j21"), "uint8", "lfm", "compact LFM over the 21 CLFM points")
register_feature("sfem", (), "float64", "lfm", "sum of facial expression movement (Choi eq. 3)")
register_feature("heatmap", ("y48", "x64"), "float32", "appearance",
                 "difference heat map sum_t |I(t) - I(0)| of the magnified 64x48 grey clip (Xia)")
register_feature("appearance_frames", ("time", "y48", "x64", "channel"), "float16", "appearance",
                 "magnified 64x48 clip time-normalised to T frames, from which masked matrices are cut")
register_feature("appearance", ("pixel", "time", "channel"), "float16", "appearance_mask",
                 "STRCN-A masked d2 x T x C matrix under the dataset-level mask")
register_feature("frames64", ("frame", "y64", "x64", "rgb"), "uint8", "kim",
                 "every aligned frame at 64x64x3 (grey sources replicated)")
register_feature("state_frames", ("expression_state", "y64", "x64", "rgb"), "uint8", "kim",
                 "Kim's five representative expression-state frames at 64x64x3")

DATASET_ARRAYS = {"appearance_mask": ("y48", "x64")}
"""Dataset-level arrays under ``dataset/``, each with the list of clips it was built from."""
