"""Stage: the MEGC spotting baselines' features of a long video, per frame and facial region.

For every frame t of a long video, the TV-L1 flow from its aligned crop to
that of frame t + k (the flow stages' solver and backends, on crops resized
to ``size``, 128x128 as the baselines), then per region (brows, eyes, nose,
mouth corners: boxes around their landmarks in frame t, ``margin`` beyond
them) the mean flow magnitude and the mean optical strain. As in SOFTNet,
the mean flow of a small box on the nose bridge (landmark 29) is subtracted
first (what is left of head motion after alignment moves the whole face),
and the bridge's mean strain from the strain; strain is
sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2) with forward differences, the last
row and column repeating the one before.

k: the baselines take half the average length of the expressions sought.
SOFTNet's micro-expression k is 37 frames on SAMM Long Videos (200 fps) and
6 on CAS(ME)² (30 fps) (its ``Extraction_Preprocess`` notebook: k = int((N +
1) / 2), N the mean onset-to-offset length: 73 and 12 frames; macro: 174 and
18); both are round(0.185 s x fps), the default here (``k_seconds``). The
MEGC 2020 baseline (MDMD) uses 80 and 12 frames for micro, 260 and 39 for
macro (0.4 s and 1.3 s); MEAN uses fps x 0.1 s. Set ``k`` (frames) to
spot macro-expressions or to follow another baseline.

The last k frames of a video have no frame t + k: their rows are NaN.

References
----------
.. [1] G.-B. Liong, J. See, L.-K. Wong, "Shallow optical flow three-stream CNN
   for macro- and micro-expression spotting from long videos", ICIP 2021
   (SOFTNet; code: genbing99/SoftNet-SpotME). https://doi.org/10.48550/arXiv.2106.06489
.. [2] Y. He, S.-J. Wang, J. Li, M. H. Yap, "Spotting macro- and micro-expression
   intervals in long video sequences", FG 2020 (the MEGC 2020 baseline; code:
   HeyingGithub/Baseline-project-for-MEGC2020_spotting, ``MDMD_codes/cmd.m``).
   https://doi.org/10.1109/FG47880.2020.00036
.. [3] The MEAN spot-then-recognise code, genbing99/MEAN_Spot-then-recognize,
   ``load_label.set_k`` (k = fps x 0.1 s).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mepipe.featurestore import features
from mepipe.featurestore.features import ROI_REGIONS

from . import flow_tasks
from .flow import backend_record, flows_of_clips, prepare_crops
from .flow_apart import FlowApartParams
from .registry import StageOutput, register_stage
from .windows import Windowed

VERSION = "1"

REGION_POINTS: dict[str, tuple[int, ...]] = {
    "brow_left": (18, 19, 20, 21, 22),
    "brow_right": (23, 24, 25, 26, 27),
    "eye_left": (37, 38, 39, 40, 41, 42),
    "eye_right": (43, 44, 45, 46, 47, 48),
    "nose": (32, 33, 34, 35, 36),
    "mouth_left": (49,),
    "mouth_right": (55,),
}
"""1-based iBUG landmarks each region's box surrounds, for every name of :data:`ROI_REGIONS` (image left/right)."""

NOSE_BRIDGE = 29
"""1-based landmark at the centre of the box whose mean flow stands for the whole face's motion (SOFTNet's)."""


@dataclass(frozen=True)
class RoiMotionParams(FlowApartParams):
    """Spotting features: flow from frame t to t + k on small aligned crops, summed up per facial region.

    Attributes
    ----------
    size : tuple of int
        (W, H) the aligned crops are resized to before the flow (the baselines: 128x128).
    k, k_seconds
        Frames from t to t + k, as :class:`~.flow_apart.FlowApartParams`
        (0.185 s: SOFTNet's micro-expression k, see the module docstring).
    margin : float
        How far each region's box reaches beyond its landmarks, as a fraction
        of the crop side (SOFTNet: 12 px of 128).
    nose_box : float
        Side of the nose-bridge box, as a fraction of the crop side (SOFTNet: 11 px of 128).
    subtract_nose : bool
        Subtract the nose bridge's mean flow (and strain) before the regions
        are summed up, as SOFTNet does.
    """

    size: tuple[int, int] = (128, 128)
    margin: float = 12 / 128
    nose_box: float = 11 / 128
    subtract_nose: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not (0 <= self.margin < 0.5 and 0 < self.nose_box < 0.5):
            raise ValueError(f"RoiMotionParams.margin must be in [0, 0.5) and nose_box in (0, 0.5), got "
                             f"{self.margin!r} and {self.nose_box!r}")


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude (H, W) of a flow field (2, H, W): sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2).

    Forward differences; the last column (row) repeats the one before, as
    SOFTNet's forward fill does.
    """
    u, v = flow[0].astype(np.float64), flow[1].astype(np.float64)

    def dx(a):
        d = np.diff(a, axis=1)
        return np.concatenate([d, d[:, -1:]], axis=1)

    def dy(a):
        d = np.diff(a, axis=0)
        return np.concatenate([d, d[-1:]], axis=0)

    return np.sqrt(dx(u) ** 2 + dy(v) ** 2 + 0.5 * (dy(u) + dx(v)) ** 2)


def box_of(points: np.ndarray, pad: float, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the box around ``points`` (N, 2) x, y, ``pad`` pixels beyond them, inside ``shape``."""
    (x0, y0), (x1, y1) = points.min(axis=0) - pad, points.max(axis=0) + pad
    rows = slice(int(np.clip(np.floor(y0), 0, shape[0])), int(np.clip(np.ceil(y1) + 1, 0, shape[0])))
    cols = slice(int(np.clip(np.floor(x0), 0, shape[1])), int(np.clip(np.ceil(x1) + 1, 0, shape[1])))
    return rows, cols


def region_means(values: np.ndarray, points: np.ndarray, params: RoiMotionParams) -> np.ndarray:
    """Mean of ``values`` (H, W) in every region's box around its landmarks ``points`` (68, 2) in the same grid."""
    pad = params.margin * values.shape[1]
    out = np.full(len(ROI_REGIONS), np.nan)
    for i, region in enumerate(ROI_REGIONS):
        rows, cols = box_of(points[[p - 1 for p in REGION_POINTS[region]]], pad, values.shape)
        if rows.stop > rows.start and cols.stop > cols.start:
            out[i] = values[rows, cols].mean()
    return out


def frame_features(flow: np.ndarray, points: np.ndarray, params: RoiMotionParams) -> tuple[np.ndarray, np.ndarray]:
    """Mean magnitude and mean strain per region (each ``len(ROI_REGIONS)``) of one flow (2, H, W), landmarks (68,
    2) in flow-grid pixels."""
    flow = flow.astype(np.float64)
    strain = optical_strain(flow)
    if params.subtract_nose:
        half = params.nose_box * flow.shape[-1] / 2
        rows, cols = box_of(points[[NOSE_BRIDGE - 1]], half, flow.shape[1:])
        flow = flow - flow[:, rows, cols].mean(axis=(1, 2))[:, None, None]
        strain = strain - strain[rows, cols].mean()
    magnitude = np.hypot(flow[0], flow[1])
    return region_means(magnitude, points, params), region_means(strain, points, params)


def roi_motion(crops: np.ndarray, landmarks: np.ndarray, rows: int, k: int, params: RoiMotionParams,
               crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The spotting features of ``rows`` frames from aligned crops of them and the k frames after.

    Parameters
    ----------
    crops : (T, S, S[, C]) uint8
        Aligned crops of frames t0 .. t0 + T - 1 (T <= rows + k; fewer at the end of a video).
    landmarks : (>= rows, 68, 2)
        Their landmarks in crop pixels (``crop_size`` a side).
    rows : int
        Frames to describe (the first ``rows`` crops).
    k : int
        Frames from t to t + k.

    Returns
    -------
    magnitude, strain : (rows, len(ROI_REGIONS)) float32
        NaN for frames without a frame t + k among the crops.
    """
    grey = prepare_crops(crops, params)
    pairs = [(t, t + k) for t in range(rows) if t + k < len(grey)]
    magnitude = np.full((rows, len(ROI_REGIONS)), np.nan, np.float32)
    strain = np.full_like(magnitude, np.nan)
    if not pairs:
        return magnitude, strain
    fields = flows_of_clips([grey], [pairs], params)[0]
    scale = np.array(params.size, dtype=np.float64) / crop_size
    for (t, _), field in zip(pairs, fields):
        magnitude[t], strain[t] = frame_features(field, np.asarray(landmarks[t], np.float64) * scale, params)
    return magnitude, strain


def _window_kernel(ctx, inputs, params, read):
    rows = len(ctx.window)
    magnitude, strain = roi_motion(inputs[features.CROPS.name], inputs[features.LANDMARKS_ALIGNED.name], rows,
                                   params.frames_apart(ctx.fps), params, read["align"].size)
    return StageOutput({features.ROI_MAGNITUDE.name: magnitude, features.ROI_STRAIN.name: strain},
                       {"k": params.frames_apart(ctx.fps), **backend_record(params.backend)})


register_stage(
    name="roi_motion", version=VERSION, params=RoiMotionParams, kernel=None, group="spotting", reads=("align",),
    reads_truth=True, inputs=(features.CROPS, features.LANDMARKS_ALIGNED),
    writes=(features.ROI_MAGNITUDE, features.ROI_STRAIN), device=flow_tasks.BACKEND,
    placement=flow_tasks.GpuPlacement(1),
    window=Windowed(kernel=_window_kernel, after=lambda params, fps: params.frames_apart(fps)))
