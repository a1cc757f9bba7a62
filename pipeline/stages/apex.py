"""Stage 2.4: apex, onset and offset estimates, intensity and expression states.

std-diff (Xia eq. 5): sigma(t) = std(I_t - I_0) over the aligned clip,
magnified as Xia do (``ApexParams.stddiff_on = "magnified"``, the clip the
magnify stage renders at its test alpha) or not (``"crops"``); the apex
estimate is argmax sigma. NCC (Kim §2.2.1): zero-mean normalised
cross-correlation of every frame with the reference apex. The project spec writes the
intensity as 1 - NCC rescaled, which is 0 at the apex; the onset/offset rule
("last frame before the apex whose intensity is below the threshold") needs
an intensity that peaks at the apex, so the intensity here is the NCC with
the apex rescaled to [0, 1] within the clip (1 at the apex, 0 at the frame
least like it). The reference apex is the ground truth where the sheet has a
valid one, else the std-diff estimate. ``apex_ncc`` is the frame least
correlated with the first frame.

References
----------
Kim et al. (2017), Multi-objective based spatio-temporal feature representation
learning robust to expression intensity variations for facial expression
recognition. https://doi.org/10.1109/TAFFC.2017.2699999
Xia et al. (2019). https://doi.org/10.1109/TMM.2019.2931351
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mepipe.featurestore import features

from .. import figures
from .cost import per_frame
from .registry import Figure, StageOutput, register_stage

VERSION = "1"

STDDIFF_ON = ("magnified", "crops")
"""Clips std-diff may run on (``ApexParams.stddiff_on``)."""


@dataclass(frozen=True)
class ApexParams:
    """Settings of the apex/onset estimators.

    Attributes
    ----------
    threshold : float
        Intensity below which a frame counts as outside the expression.
    size : int
        Side the aligned crops are resized to before estimation (speed; the
        estimates are averages over many pixels).
    blur_sigma : float
        Gaussian blur (pixels at ``size``) before differencing; 0 = none.
    stddiff_on : {"magnified", "crops"}
        The clip std-diff runs on: the Eulerian-magnified clip at the test
        alpha (Xia eq. 5 writes it on the magnified intensities; the
        default) or the aligned crops (mepipe before issue 14). NCC and
        intensity always use the crops (Kim).
    """

    threshold: float = 0.1
    size: int = 128
    blur_sigma: float = 0.0
    stddiff_on: str = "magnified"

    def __post_init__(self):
        if self.stddiff_on not in STDDIFF_ON:
            raise ValueError(f"ApexParams.stddiff_on must be one of {', '.join(STDDIFF_ON)}, "
                             f"got {self.stddiff_on!r}")


def std_diff(clip: np.ndarray) -> np.ndarray:
    """sigma(t) = std over pixels of (I_t - I_0); (T, ...) -> (T,) float64."""
    x = clip.reshape(len(clip), -1).astype(np.float64)
    return (x - x[0]).std(axis=1)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Zero-mean normalised cross-correlation of two equally shaped images."""
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else 1.0


def ncc_curve(clip: np.ndarray, reference: int) -> np.ndarray:
    """NCC of every frame with frame ``reference``; (T,) float64."""
    return np.array([ncc(frame, clip[reference]) for frame in clip])


def rescale_intensity(curve: np.ndarray, reference: int) -> np.ndarray:
    """Map an NCC curve to [0, 1]: 1 at the reference frame, 0 at the curve's minimum."""
    lo, hi = curve.min(), curve[reference]
    if hi - lo <= 0:
        return np.zeros_like(curve)
    return np.clip((curve - lo) / (hi - lo), 0.0, 1.0)


def onset_offset(intensity: np.ndarray, apex: int, threshold: float) -> tuple[int, int]:
    """Last frame before the apex and first after it whose intensity is below ``threshold``.

    The clip's ends are used when no frame falls below the threshold.
    """
    before = np.flatnonzero(intensity[:apex] < threshold)
    after = np.flatnonzero(intensity[apex + 1:] < threshold)
    onset = int(before[-1]) if before.size else 0
    offset = int(apex + 1 + after[0]) if after.size else len(intensity) - 1
    return onset, offset


def state_indices(onset: int, apex: int, offset: int) -> np.ndarray:
    """Kim eq. 1: frames t_on, (t_on + t_apex)/2, t_apex, (t_apex + t_off)/2, t_off (floored)."""
    return np.array([onset, (onset + apex) // 2, apex, (apex + offset) // 2, offset], dtype=np.int32)


def state_labels(n_frames: int, indices: np.ndarray) -> np.ndarray:
    """Per-frame state: the representative state frame nearest in time (ties to the earlier state)."""
    t = np.arange(n_frames)[:, None]
    return np.abs(t - np.asarray(indices)[None, :]).argmin(axis=1).astype(np.int8)


def prepare(crops: np.ndarray, params: ApexParams) -> np.ndarray:
    """Greyscale float32 clip at ``params.size``, optionally blurred."""
    grey = crops[..., 0] if crops.shape[-1] == 1 else np.stack(
        [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])
    out = np.stack([cv2.resize(f, (params.size, params.size), interpolation=cv2.INTER_AREA) for f in grey])
    out = out.astype(np.float32)
    if params.blur_sigma > 0:
        out = np.stack([cv2.GaussianBlur(f, (0, 0), params.blur_sigma) for f in out])
    return out


@dataclass
class ApexResult:
    stddiff: np.ndarray  # (T,) float32
    ncc: np.ndarray  # (T,) float32, NCC with the reference apex
    intensity: np.ndarray  # (T,) float32 in [0, 1]
    state: np.ndarray  # (T,) int8
    state_index: np.ndarray  # (5,) int32
    apex_est: int
    apex_ncc: int
    onset_est: int
    offset_est: int
    apex_reference: int
    states_from: str


def estimate(crops: np.ndarray, truth: tuple[int | None, int | None, int | None] = (None, None, None),
             params: ApexParams = ApexParams(), magnified: np.ndarray | None = None) -> ApexResult:
    """All estimates for one aligned clip.

    Parameters
    ----------
    crops : (T, S, S, C) uint8
        Aligned crops.
    truth : (onset, apex, offset) frame indices from the sheet, or None each.
    params : ApexParams
    magnified : (T, H, W) or (T, H, W, C) uint8, optional
        The magnified clip, needed when ``params.stddiff_on == "magnified"``.
    """
    clip = prepare(crops, params)
    if params.stddiff_on == "magnified":
        if magnified is None:
            raise ValueError("ApexParams.stddiff_on='magnified' needs the magnified clip; "
                             "pass it or set stddiff_on='crops'")
        magnified = np.asarray(magnified)
        if len(magnified) != len(crops):
            raise ValueError(f"{len(crops)} crops but {len(magnified)} magnified frames")
        sigma = std_diff(prepare(magnified if magnified.ndim == 4 else magnified[..., None], params))
    else:
        sigma = std_diff(clip)
    apex_est = int(np.argmax(sigma))
    apex_ncc = int(np.argmin(ncc_curve(clip, 0)))
    on_gt, apex_gt, off_gt = truth
    reference = apex_gt if apex_gt is not None else apex_est
    curve = ncc_curve(clip, reference)
    intensity = rescale_intensity(curve, reference)
    onset_est, offset_est = onset_offset(intensity, reference, params.threshold)
    if None not in truth:
        idx, source = state_indices(on_gt, apex_gt, off_gt), "ground truth"
    else:
        idx, source = state_indices(onset_est, reference, offset_est), "estimates"
    return ApexResult(sigma.astype(np.float32), curve.astype(np.float32), intensity.astype(np.float32),
                      state_labels(len(crops), idx), idx, apex_est, apex_ncc, onset_est, offset_est,
                      reference, source)


def _kernel(ctx, inputs, params, read):
    magnified = inputs[features.MAGNIFIED.name] if params.stddiff_on == "magnified" else None
    r = estimate(inputs[features.CROPS.name], ctx.truth, params, magnified)
    number = ctx.frame_numbers
    return StageOutput(
        {features.STDDIFF.name: r.stddiff, features.NCC.name: r.ncc, features.INTENSITY.name: r.intensity,
         features.STATE.name: r.state, features.STATE_INDEX.name: r.state_index},
        {"apex_est": number[r.apex_est], "apex_ncc": number[r.apex_ncc], "onset_est": number[r.onset_est],
         "offset_est": number[r.offset_est], "apex_reference": number[r.apex_reference],
         "states_from": r.states_from})


register_stage(
    name="apex", version=VERSION, params=ApexParams, kernel=_kernel, group="core", reads=("align", "magnify"),
    reads_truth=True, inputs=(features.CROPS, features.MAGNIFIED),
    writes=(features.STDDIFF, features.NCC, features.INTENSITY, features.STATE, features.STATE_INDEX),
    figure=Figure(features.INTENSITY.name, figures.intensity_figure), cost=per_frame())
