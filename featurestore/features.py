"""The feature table: one definition per stored feature.

Every array a store holds is declared here once, with the stage that
produces it, its generic dims (``frame``, ``pair``, ``uv``, ``y``, ``x``,
``channel``, ...), its dtype, CF-style ``units`` and ``long_name``, and how
the size of each fixed dim follows from the stage parameters recorded in
the store. Each stage module declares the definitions it writes and loads
(the built-in ones are named constants here, ``CROPS``, ``FLOW_FIRST_EACH``,
...; a plug-in stage's own are added with :func:`register`), the writer
checks every array against them, and training reads sizes and names from
them; nothing else restates a feature's name, dims or sizes.

A size that follows from a parameter is a :class:`Param`, e.g. the ``x``
of ``flow_first_each`` is ``flow_first_each.size[0]``: configure the stage
at 32×32 and the stored array is 32×32, and a network that cannot take it
names that parameter. Dims without a rule vary per clip (``frame``,
``pair``, ``map``, ``pixel``) or with the source (``channel`` of crops).

Also here, because the store's arrays are defined by them: the expression
states of the ``state`` feature (Kim et al. 2017, eq. 1) and the iBUG
68-point landmark count.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

class State(IntEnum):
    """The five expression states (Kim et al. 2017, eq. 1); the value is the stored ``state`` code."""

    ONSET = 0
    ONSET_TO_APEX = 1
    APEX = 2
    APEX_TO_OFFSET = 3
    OFFSET = 4


STATE_NAMES: tuple[str, ...] = tuple(s.name.lower() for s in State)
"""Names of the expression states, in the order of the ``state`` codes 0..4."""

APEX_STATE = int(State.APEX)
"""Code of the apex state (2)."""

N_LANDMARKS = 68
"""Points of the iBUG 68-point landmark model (dlib's shape predictor)."""

ROI_REGIONS: tuple[str, ...] = ("brow_left", "brow_right", "eye_left", "eye_right", "nose", "mouth_left",
                                "mouth_right")
"""Regions of the spotting features (the MEGC baselines' landmark regions); left and right as the image shows
them (``brow_left`` is the brow on the image's left, the person's right), as the landmark numbering does."""

DIMS: dict[str, str] = {
    "frame": "frames of the clip, in frame-number order",
    "pair": "flow fields of the clip (see mepipe.featurestore.views for which frames each joins)",
    "uv": "flow components: u (along x, + right) and v (along y, + down)",
    "y": "image rows",
    "x": "image columns",
    "channel": "colour channels (1 for greyscale sources)",
    "alpha": "magnification factors, in the order of magnify.alphas",
    "subset": "random frame subsets (Xia's augmentation), in the order of flow_onset_apex_magnified.subset_levels",
    "end": "the two frames a flow joins: onset, apex",
    "map": "landmark feature maps; map k compares frame k + lag with frame k",
    "i": "landmark index (rows of a distance map)",
    "j": "landmark index (columns of a distance map)",
    "landmark": "iBUG-68 landmark, 0-based",
    "xy": "point coordinates: x, y",
    "box": "face box: left, top, right, bottom",
    "row": "rows of a 2x3 affine matrix",
    "col": "columns of a 2x3 affine matrix",
    "state": "expression states, in the order of STATE_NAMES",
    "time": "time-normalised frames",
    "pixel": "pixels kept by the STRCN-A mask, row-major",
    "region": "facial regions of the spotting features, in the order of ROI_REGIONS",
}
"""Every dim name a feature may use, with its meaning."""


@dataclass(frozen=True)
class Param:
    """A size given by a stage parameter: ``params[stage][field]``, an item of it, or its length.

    Attributes
    ----------
    stage : str
        The stage whose recorded parameters hold the value.
    field : str
        Parameter name.
    index : int, optional
        Item of a tuple parameter, e.g. 0 for W and 1 for H of a ``(W, H)`` size.
    length : bool
        The size is ``len(params[stage][field])``.
    """

    stage: str
    field: str
    index: int | None = None
    length: bool = False

    def resolve(self, stage_params: Mapping[str, Mapping[str, Any]]) -> int:
        """The size under the parameters of every stage (canonical mappings, as the store records them)."""
        try:
            value = stage_params[self.stage][self.field]
        except KeyError:
            raise KeyError(f"no recorded parameter {self.stage}.{self.field}") from None
        if self.length:
            return len(value)
        return int(value if self.index is None else value[self.index])

    def __str__(self) -> str:
        name = f"{self.stage}.{self.field}"
        if self.length:
            return f"len({name})"
        return name if self.index is None else f"{name}[{self.index}]"


Size = int | Param


@dataclass(frozen=True)
class FeatureDef:
    """One stored feature.

    Attributes
    ----------
    name : str
        Public, stable name: the Zarr group ``clips/<sample>/<name>`` (or
        ``dataset/<name>``) and the array inside it.
    stage : str
        The stage that writes it.
    dims : tuple of str
        Dim names (keys of :data:`DIMS`), written as Zarr ``dimension_names``.
    dtype : str
        Stored dtype; the writer casts to it.
    units, long_name : str
        CF-style attributes written on the array.
    description : str
        What the array holds and why; written as the CF ``comment``.
    sizes : mapping of str to int or Param
        Size of each fixed dim; dims not listed vary per clip or source.
    scope : {"clip", "dataset"}
        One array per clip, or one for the whole store under ``dataset/``.
    flags : tuple of str
        For categorical integer features: the meaning of codes 0, 1, ...
        (written as CF ``flag_values`` / ``flag_meanings``).
    nan_fills : tuple of str
        For a float feature that marks a missing item with NaN by design,
        the dims one such item spans (``flow_consecutive``: a pair across a
        gap in the frame numbers is a NaN ``(uv, y, x)`` field). Empty (the
        rule): the feature never holds NaN or infinity, so a build refuses
        to write one and a read of one is a damaged store
        (:mod:`.finite`). Declared here, not read from the store, so a
        store cannot excuse its own NaN.
    labels : mapping of str to tuple of str
        Names along a dim (the spotting features' regions), stored as that
        dim's coordinate array beside the feature, so xarray labels it.
    """

    name: str
    stage: str
    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str
    description: str
    sizes: Mapping[str, Size] = field(default_factory=dict)
    scope: str = "clip"
    flags: tuple[str, ...] = ()
    nan_fills: tuple[str, ...] = ()
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [d for d in (*self.dims, *self.sizes) if d not in DIMS]
        if unknown or not set(self.sizes) <= set(self.dims):
            raise ValueError(f"feature {self.name!r}: dims {unknown or sorted(set(self.sizes) - set(self.dims))} "
                             f"are not among its dims {self.dims} or not in DIMS")
        if not set(self.nan_fills) <= set(self.dims[1:]) or (self.nan_fills and self.dtype[0] != "f"):
            raise ValueError(f"feature {self.name!r}: nan_fills {self.nan_fills} must be dims after the first of a "
                             f"float feature; it has dims {self.dims} and dtype {self.dtype}")
        unsized = [d for d, names in self.labels.items() if self.sizes.get(d) != len(names)]
        if unsized:
            raise ValueError(f"feature {self.name!r}: labelled dims {unsized} need a size equal to their labels")

    @property
    def frame_indexed(self) -> bool:
        """Whether axis 0 runs over the clip's frames (the store then adds a ``frame`` coordinate)."""
        return bool(self.dims) and self.dims[0] == "frame"

    def expected_sizes(self, stage_params: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Size of every fixed dim under recorded stage parameters (canonical mappings by stage name)."""
        return {dim: rule if isinstance(rule, int) else rule.resolve(stage_params) for dim, rule in self.sizes.items()}

    def source(self, dim: str) -> str:
        """What sets the size of ``dim``: a parameter (``flow_first_each.size[0]``), a constant, or the data."""
        rule = self.sizes.get(dim)
        if rule is None:
            return f"the data ({dim} of {self.name} varies per clip)"
        return str(rule) if isinstance(rule, Param) else f"fixed at {rule}"

    def check(self, array: np.ndarray, stage_params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Raise ``ValueError`` unless ``array`` has this feature's rank (and, given parameters, its sizes)."""
        shape = np.shape(array)
        if len(shape) != len(self.dims):
            raise ValueError(f"feature {self.name!r} has dims {self.dims}, got an array of shape {shape}")
        if stage_params is None:
            return
        got = dict(zip(self.dims, shape))
        wrong = {d: (n, got[d]) for d, n in self.expected_sizes(stage_params).items() if got[d] != n}
        if wrong:
            detail = ", ".join(f"{d} = {found} where {self.source(d)} = {n}" for d, (n, found) in wrong.items())
            raise ValueError(f"feature {self.name!r} came out with {detail}")

    def attrs(self) -> dict[str, Any]:
        """The CF attributes written on the stored array."""
        out: dict[str, Any] = {"units": self.units, "long_name": self.long_name, "comment": self.description}
        if self.flags:
            out["flag_values"] = list(range(len(self.flags)))
            out["flag_meanings"] = " ".join(self.flags)
        return out


def _size(stage: str, name: str = "size") -> dict[str, Param]:
    """y and x of a ``(W, H)`` size parameter."""
    return {"y": Param(stage, name, 1), "x": Param(stage, name, 0)}


def _square(stage: str, name: str = "size") -> dict[str, Param]:
    """y and x of a square ``size`` parameter."""
    return {"y": Param(stage, name), "x": Param(stage, name)}


_GREY = "1"
"""Units of 8-bit intensities and other dimensionless values (CF: "1")."""

FRAME = FeatureDef(
    "frame", "landmarks", ("frame",), "int64", _GREY, "source frame number",
    "the frame number of each frame in the source (file name or video position)")
LANDMARKS = FeatureDef(
    "landmarks", "landmarks", ("frame", "landmark", "xy"), "float32", "pixel",
    "facial landmark position in source pixels",
    "dlib iBUG 68-point landmarks (x, y) in source-frame pixels; interpolated where no face was found (in a "
    "long video, NaN for the frames of a window where no face was found at all)",
    {"landmark": N_LANDMARKS, "xy": 2}, nan_fills=("landmark", "xy"))
FACE_FOUND = FeatureDef(
    "face_found", "landmarks", ("frame",), "bool", _GREY, "face detected",
    "False where no face was found and the landmarks were interpolated from neighbouring frames")
FACE_BOX = FeatureDef(
    "face_box", "landmarks", ("frame", "box"), "float32", "pixel", "face box in source pixels",
    "face box the shape predictor used: left, top, right, bottom in source-frame pixels (NaN as the landmarks)",
    {"box": 4}, nan_fills=("box",))
CROPS = FeatureDef(
    "crops", "align", ("frame", "y", "x", "channel"), "uint8", _GREY, "aligned face crop intensity",
    "face crops aligned to the first frame's geometry (Xia eq. 1), canonical size, source channels",
    _square("align"))
LANDMARKS_ALIGNED = FeatureDef(
    "landmarks_aligned", "align", ("frame", "landmark", "xy"), "float32", "pixel",
    "facial landmark position in crop pixels", "the landmarks mapped into the aligned crop (NaN as the landmarks)",
    {"landmark": N_LANDMARKS, "xy": 2}, nan_fills=("landmark", "xy"))
TRANSFORMS = FeatureDef(
    "transforms", "align", ("frame", "row", "col"), "float32", _GREY,
    "affine from source pixels to crop pixels",
    "2x3 affine matrix per frame mapping source pixels to crop pixels", {"row": 2, "col": 3})
STDDIFF = FeatureDef(
    "stddiff", "apex", ("frame",), "float32", _GREY, "std of the difference to the first frame",
    "sigma(t) = std(I_t - I_0) in grey levels over the magnified clip (Xia eq. 5) or the crops, as "
    "apex.stddiff_on says; apex = argmax")
NCC = FeatureDef(
    "ncc", "apex", ("frame",), "float32", _GREY, "normalised cross-correlation with the apex",
    "zero-mean NCC of each frame with the reference apex frame (Kim 2017, §2.2.1)")
INTENSITY = FeatureDef(
    "intensity", "apex", ("frame",), "float32", _GREY, "expression intensity",
    "expression intensity in [0, 1]: NCC with the apex frame rescaled within the clip")
STATE = FeatureDef(
    "state", "apex", ("frame",), "int8", _GREY, "expression state",
    "expression state of each frame: the nearest representative state frame (Kim eq. 1)",
    flags=STATE_NAMES)
STATE_INDEX = FeatureDef(
    "state_index", "apex", ("state",), "int32", _GREY, "frame index of each expression state",
    "0-based frame index of the five representative state frames (Kim eq. 1)",
    {"state": len(STATE_NAMES)})
FLOW_ONSET_APEX = FeatureDef(
    "flow_onset_apex", "flow_onset_apex", ("uv", "y", "x"), "float16", "pixel",
    "optical flow from onset to apex in pixels of the flow grid",
    "TV-L1 flow (u, v) from the onset crop to the apex crop, crops resized to flow_onset_apex.size "
    "(STRCN-G; Xia: 245x300, their 300 x 245 read as H x W)", {"uv": 2, **_size("flow_onset_apex")})
FLOW_ONSET_APEX_MAGNIFIED = FeatureDef(
    "flow_onset_apex_magnified", "flow_onset_apex_magnified", ("alpha", "pair", "uv", "y", "x"), "float16",
    "pixel", "optical flow from onset to apex of the magnified clip in pixels of the flow grid",
    "TV-L1 flow (u, v) between two frames of the clip magnified with each alpha of magnify.alphas, resized "
    "to flow_onset_apex_magnified.size (STRCN-G; Xia: 245x300); pair k joins the frames "
    "onset_apex_pairs[k], pair 0 the clip's onset and apex",
    {"alpha": Param("magnify", "alphas", length=True), "uv": 2, **_size("flow_onset_apex_magnified")})
ONSET_APEX_PAIRS = FeatureDef(
    "onset_apex_pairs", "flow_onset_apex_magnified", ("pair", "end"), "int32", _GREY,
    "frame indices of each magnified flow's onset and apex",
    "0-based frame indices (onset, apex) of each pair of flow_onset_apex_magnified; row 0 is the clip's "
    "onset and apex (Kim's state frames 0 and 2), later rows those frame subsets give",
    {"end": 2})
SUBSET_FRAMES = FeatureDef(
    "subset_frames", "flow_onset_apex_magnified", ("subset", "frame"), "bool", _GREY,
    "frames kept by each frame subset",
    "Xia's frame-subset augmentation: subset k keeps a seeded random flow_onset_apex_magnified."
    "subset_levels[k] of the frames (True = kept)",
    {"subset": Param("flow_onset_apex_magnified", "subset_levels", length=True)})
SUBSET_PAIR = FeatureDef(
    "subset_pair", "flow_onset_apex_magnified", ("subset",), "int32", _GREY,
    "magnified flow pair of each frame subset",
    "index into onset_apex_pairs (and the pair dim of flow_onset_apex_magnified) of the onset->apex pair "
    "subset k gives STRCN-G: its first kept frame from the onset, its kept frame nearest the apex",
    {"subset": Param("flow_onset_apex_magnified", "subset_levels", length=True)})
FLOW_FIRST_EACH = FeatureDef(
    "flow_first_each", "flow_first_each", ("pair", "uv", "y", "x"), "float16", "pixel",
    "optical flow from the first frame in pixels of the flow grid",
    "TV-L1 flow (u, v) from the first crop to each later crop at flow_first_each.size (SHCNN; "
    "Miao: 112x112)", {"uv": 2, **_size("flow_first_each")})
FLOW_CONSECUTIVE = FeatureDef(
    "flow_consecutive", "flow_consecutive", ("pair", "uv", "y", "x"), "float16", "pixel",
    "optical flow between consecutive frames in pixels of the flow grid",
    "TV-L1 flow (u, v) from each crop to the next at flow_consecutive.size (Nag's temporal network; "
    "64x64)", {"uv": 2, **_size("flow_consecutive")}, nan_fills=("uv", "y", "x"))
MAGNIFIED = FeatureDef(
    "magnified", "magnify", ("frame", "y", "x", "channel"), "uint8", _GREY,
    "Eulerian-magnified face crop intensity",
    "aligned clip magnified with magnify.test_alpha (Wu et al. 2012; Xia: 8) at the crops' size and resized "
    "to magnify.size; the apex stage's std-diff input", _size("magnify"))
MAGNIFIED_SMALL = FeatureDef(
    "magnified_small", "magnify", ("frame", "alpha", "y", "x", "channel"), "uint8", _GREY,
    "Eulerian-magnified face crop intensity, STRCN-A size",
    "aligned clip magnified with each alpha at the crops' size and resized to magnify.small_size, the input "
    "of STRCN-A's appearance matrices (Xia: 48x64, their 64 x 48 read as H x W)", {"alpha": Param("magnify", "alphas", length=True),
                             **_size("magnify", "small_size")})
LFM = FeatureDef(
    "lfm", "lfm", ("map", "i", "j"), "uint8", _GREY, "landmark feature map",
    "change over lag T = fps / lfm.lag_fps_divisor of every pairwise distance of the 68 landmarks, "
    "signed-square-root coded to uint8, 127 = no change (Choi eq. 1-2)",
    {"i": N_LANDMARKS, "j": N_LANDMARKS})
CLFM = FeatureDef(
    "clfm", "lfm", ("map", "i", "j"), "uint8", _GREY, "compact landmark feature map",
    "as lfm over the landmarks of lfm.clfm_points (Choi: 21 points)",
    {"i": Param("lfm", "clfm_points", length=True), "j": Param("lfm", "clfm_points", length=True)})
SFEM = FeatureDef(
    "sfem", "lfm", (), "float64", "pixel-1", "simple facial expression metric",
    "sum of |LFM| over the clip's maps divided by the face size (Choi eq. 3; below 0.35 a "
    "micro-expression, §IV-B)")
HEATMAP = FeatureDef(
    "heatmap", "appearance", ("y", "x"), "float32", _GREY, "difference heat map",
    "sum_t |I(t) - I(0)| of the magnify.test_alpha magnified_small grey clip (Xia eq. 4)",
    _size("magnify", "small_size"))
APPEARANCE_FRAMES = FeatureDef(
    "appearance_frames", "appearance", ("time", "y", "x", "channel"), "float16", _GREY,
    "time-normalised magnified face crop intensity",
    "the magnify.test_alpha magnified_small clip resampled to appearance.n_time frames (Xia §III-C1)",
    {"time": Param("appearance", "n_time"), **_size("magnify", "small_size")})
APPEARANCE = FeatureDef(
    "appearance", "appearance_mask", ("pixel", "time", "channel"), "float16", _GREY,
    "masked appearance matrix",
    "appearance_frames under the dataset-level mask, masked pixels x time x channels (Xia §III-C1)",
    {"time": Param("appearance", "n_time")})
APPEARANCE_MASK = FeatureDef(
    "appearance_mask", "appearance_mask", ("y", "x"), "bool", _GREY, "STRCN-A appearance mask",
    "top appearance_mask.keep_fraction of the summed heat maps of the clips it lists (Xia §III-C1)",
    _size("magnify", "small_size"), scope="dataset")
FRAMES_RGB = FeatureDef(
    "frames_rgb", "kim", ("frame", "y", "x", "channel"), "uint8", _GREY, "face crop intensity, RGB",
    "every aligned frame resized to kim.size, grey sources replicated to 3 channels (Kim, Nag)",
    {"channel": 3, **_square("kim")})
STATE_FRAMES = FeatureDef(
    "state_frames", "kim", ("state", "y", "x", "channel"), "uint8", _GREY,
    "expression-state frame intensity, RGB",
    "Kim's five representative expression-state frames (the frames_rgb at state_index)",
    {"state": len(STATE_NAMES), "channel": 3, **_square("kim")})
FLOW_APART = FeatureDef(
    "flow_apart", "flow_apart", ("frame", "uv", "y", "x"), "float16", "pixel",
    "optical flow from frame t to frame t + k in pixels of the flow grid",
    "TV-L1 flow (u, v) from the aligned crop of frame t to that of frame t + k (flow_apart.k, the spotting "
    "baselines' k; frames_apart) at flow_apart.size; NaN for the last k frames, which have no frame t + k "
    "(the nag2019 spotter's motion input on long videos)", {"uv": 2, **_size("flow_apart")},
    nan_fills=("uv", "y", "x"))
_REGIONS = {"region": len(ROI_REGIONS)}
ROI_MAGNITUDE = FeatureDef(
    "roi_magnitude", "roi_motion", ("frame", "region"), "float32", "pixel",
    "mean optical-flow magnitude from frame t to t + k in each facial region",
    "TV-L1 flow from the aligned crop of frame t to that of frame t + k (roi_motion.k) at roi_motion.size, the "
    "nose bridge's mean flow subtracted (head motion), magnitude averaged over each region's box (MEGC "
    "spotting baselines); NaN for the last k frames, which have no frame t + k",
    _REGIONS, labels={"region": ROI_REGIONS}, nan_fills=("region",))
ROI_STRAIN = FeatureDef(
    "roi_strain", "roi_motion", ("frame", "region"), "float32", _GREY,
    "mean optical strain from frame t to t + k in each facial region",
    "optical strain magnitude sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2) of the same flow, the nose bridge's "
    "mean subtracted, averaged over each region's box; NaN for the last k frames",
    _REGIONS, labels={"region": ROI_REGIONS}, nan_fills=("region",))

FEATURES: dict[str, FeatureDef] = {f.name: f for f in (
    FRAME,
    LANDMARKS,
    FACE_FOUND,
    FACE_BOX,
    CROPS,
    LANDMARKS_ALIGNED,
    TRANSFORMS,
    STDDIFF,
    NCC,
    INTENSITY,
    STATE,
    STATE_INDEX,
    FLOW_ONSET_APEX,
    FLOW_ONSET_APEX_MAGNIFIED,
    ONSET_APEX_PAIRS,
    SUBSET_FRAMES,
    SUBSET_PAIR,
    FLOW_FIRST_EACH,
    FLOW_CONSECUTIVE,
    MAGNIFIED,
    MAGNIFIED_SMALL,
    LFM,
    CLFM,
    SFEM,
    HEATMAP,
    APPEARANCE_FRAMES,
    APPEARANCE,
    APPEARANCE_MASK,
    FRAMES_RGB,
    STATE_FRAMES,
    FLOW_APART,
    ROI_MAGNITUDE,
    ROI_STRAIN,
)}
"""Every feature, by name, in the order stages produce them; plug-in stages add theirs with :func:`register`."""


def frames_apart(k: int, k_seconds: float, fps: float) -> int:
    """Frames from t to t + k of the flows t -> t + k (``flow_apart``, ``roi_motion``): ``k`` when it is set, else
    ``k_seconds`` at ``fps``, rounded (at least 1). The stages compute with it and readers align by it."""
    return int(k) or max(1, round(float(k_seconds) * float(fps)))


def register(*defs: FeatureDef) -> None:
    """Add features to the table: a plug-in stage's own, or the table's own (a no-op).

    A name the table already holds with another definition is refused, so
    a plug-in cannot redefine what a built-in feature (or another plug-in's)
    means to the writer and to training.

    Raises
    ------
    ValueError
        A feature of that name is defined differently.
    """
    for spec in defs:
        known = FEATURES.get(spec.name)
        if known is not None and known != spec:
            raise ValueError(f"feature {spec.name!r} is already defined differently (written by stage "
                             f"{known.stage!r}); give the new feature another name")
    FEATURES.update((spec.name, spec) for spec in defs)


def test_alpha_index(stage_params: Mapping[str, Mapping[str, Any]]) -> int:
    """Position of ``magnify.test_alpha`` along the ``alpha`` dim, under recorded stage parameters.

    The test alpha (Xia: 8) is the one of heat maps, test inputs and the
    ``magnified`` clip; training samples the others.
    """
    magnify = stage_params["magnify"]
    return [float(a) for a in magnify["alphas"]].index(float(magnify["test_alpha"]))


def feature_def(name: str) -> FeatureDef:
    """The definition of a feature; unknown names raise ``KeyError`` listing the known ones."""
    try:
        return FEATURES[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}") from None


def feature_names(scope: str = "clip") -> list[str]:
    """Names of the features of one scope (``clip`` or ``dataset``), in table order."""
    return [f.name for f in FEATURES.values() if f.scope == scope]
