"""Read-time views of stored features: what readers compute from the arrays, defined once.

The store keeps features losslessly (flow in pixels, whole clips, per-clip
heat maps); the papers' networks see transforms of them, made when reading:

- **Flow colour coding** (Miao et al. 2019, §III-C): :func:`flow_to_rgb`,
  :func:`code_flow`, HSI by default (:func:`hsi_to_rgb`), HSV on request.
- **Which frames a flow field joins**: :func:`field_frames`,
  :func:`field_ending_at`, :func:`apex_field`; STRCN-G's magnified field
  for an alpha and a frame subset, :func:`magnified_field`.
- **STRCN-A appearance matrices** (Xia et al. 2019, §III-C1): the mask of
  the top heat-map pixels (:func:`build_mask`, per fold or over all clips),
  time normalisation (:func:`time_normalise`) and the masked matrix
  (:func:`appearance_matrix`).
- **Choi's middle window** of landmark feature maps (:func:`middle_sequence`,
  :func:`map_window`).
- **Nag's windows** of consecutive steps (:func:`step_windows`) within the
  runs of consecutive frames (:func:`consecutive_runs`) and the spotting
  ground truth (:func:`onset_offset_span`).

``mepipe show``, the pipeline's dataset-level stage and training import
them from here, so that a picture, a stored matrix and a training item are
computed the same way. Window lengths are the papers' facts and belong to
the models that use them; they are arguments here.

References
----------
.. [1] S. Miao, H. Xu, Z. Han, Y. Zhu, "Recognizing facial expressions using a
   shallow convolutional neural network", IEEE Access 7, 2019.
   https://doi.org/10.1109/ACCESS.2019.2921220
.. [2] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, "Spatiotemporal recurrent
   convolutional networks for recognizing spontaneous micro-expressions",
   IEEE Trans. Multimedia 22(3), 2020. https://doi.org/10.1109/TMM.2019.2931351
.. [3] D. Y. Choi, B. C. Song, "Facial micro-expression recognition using
   two-dimensional landmark feature maps", IEEE Access 8, 2020.
   https://doi.org/10.1109/ACCESS.2020.3006958
.. [4] S. Nag, A. K. Bhunia, A. Konwer, P. P. Roy, "Facial micro-expression
   spotting and recognition using time contrasted feature with visual
   memory", ICASSP 2019. https://doi.org/10.48550/arXiv.1902.03514
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .features import FLOW_CONSECUTIVE, FLOW_FIRST_EACH

__all__ = ["FIELD_STARTS", "FLOW_CODINGS", "apex_field", "appearance_matrix", "build_mask", "code_flow",
           "consecutive_runs", "field_ending_at", "field_frames", "flow_to_rgb", "hsi_to_rgb", "magnified_field",
           "map_window", "middle_sequence", "onset_offset_span", "step_windows", "time_normalise"]


# --- flow colour coding ----------------------------------------------------------------------


FLOW_CODINGS = ("hsi", "hsv")
"""Colour codings of flow: ``hsi`` (Miao §III-C, the default) and ``hsv`` (mepipe's coding before issue 25)."""


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None, coding: str = "hsi") -> np.ndarray:
    """Colour-code flow fields as in Miao et al. 2019, §III-C.

    Hue is the flow angle ``atan2(v, u)`` in image coordinates (right = 0°
    red, down = 90°, left = 180° cyan, up = 270°), saturation is full and the
    magnitude, scaled to [0, 1], is the intensity of an HSI colour (Miao:
    "the hue component and the intensity component represent argument and
    magnitude ... Finally the HSI image is transformed into a RGB image"),
    converted to RGB by :func:`hsi_to_rgb`. ``coding="hsv"`` makes the
    magnitude the value of an HSV colour instead (OpenCV's HSV2RGB).

    The two differ in brightness: an HSI colour's channels average its
    intensity I (before clipping), an HSV colour's between V/3 and 2V/3
    (V/2 averaged over the hues), so the HSI image is about twice as bright;
    at full saturation HSI reaches the RGB gamut's edge at I = 1/3 (pure
    red, green or blue) to 2/3 (their mixtures) and brighter colours clip
    to 255 in the largest channel.

    Parameters
    ----------
    flow : ndarray, shape (..., 2, H, W)
        One field or a stack of fields, (u, v) along axis -3.
    max_magnitude : float, optional
        Magnitude mapped to full intensity (value); larger magnitudes saturate.
        By default each field is scaled by its own maximum magnitude (zero
        flow stays black).
    coding : {"hsi", "hsv"}

    Returns
    -------
    ndarray, shape (..., H, W, 3), uint8
        RGB images.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim < 3 or flow.shape[-3] != 2:
        raise ValueError(f"flow must have shape (..., 2, H, W), got {flow.shape}")
    if max_magnitude is not None and not max_magnitude > 0:
        raise ValueError(f"max_magnitude must be > 0, got {max_magnitude!r}")
    if coding not in FLOW_CODINGS:
        raise ValueError(f"coding must be one of {', '.join(FLOW_CODINGS)}, got {coding!r}")
    u, v = flow[..., 0, :, :], flow[..., 1, :, :]
    magnitude = np.hypot(u, v)
    scale = max_magnitude if max_magnitude is not None else magnitude.max(axis=(-2, -1), keepdims=True)
    level = np.clip(np.divide(magnitude, scale, out=np.zeros_like(magnitude), where=np.asarray(scale) > 0), 0.0, 1.0)
    hue = np.degrees(np.arctan2(v, u))
    hue += np.float32(360.0) * (hue < 0)  # [0, 360); cheaper than % on floats
    if coding == "hsi":
        rgb = hsi_to_rgb(hue, np.ones_like(hue), level)
    else:
        import cv2

        hsv = np.stack([hue, np.ones_like(hue), level], axis=-1).astype(np.float32)
        rgb = cv2.cvtColor(hsv.reshape(-1, hsv.shape[-2], 3), cv2.COLOR_HSV2RGB).reshape(hsv.shape)
    return np.rint(rgb * 255.0).astype(np.uint8)


def hsi_to_rgb(hue: np.ndarray, saturation: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of HSI colours (Gonzalez and Woods, §6.2.3), clipped to the RGB cube.

    In each 120° sector of the hue H (degrees, measured from the sector's
    first primary), with S and I in [0, 1]: the sector's missing primary is
    ``I (1 - S)``, its first primary ``I (1 + S cos H / cos(60° - H))`` and
    its second primary ``3 I`` minus the other two, so that the three
    channels average I. Sectors: 0-120° red, green (blue missing);
    120-240° green, blue (red missing); 240-360° blue, red (green missing).

    Parameters
    ----------
    hue : ndarray
        Degrees, any real value (taken modulo 360).
    saturation, intensity : ndarray
        Same shape as ``hue``, in [0, 1].

    Returns
    -------
    ndarray, shape hue.shape + (3,), float32

    References
    ----------
    .. [1] R. C. Gonzalez, R. E. Woods, *Digital Image Processing*, 3rd ed.,
       Pearson 2008, §6.2.3 "Converting colors from HSI to RGB".
    """
    hue = np.asarray(hue, dtype=np.float32)
    hue = hue - np.float32(360.0) * np.floor(hue / np.float32(360.0))
    s = np.asarray(saturation, dtype=np.float32)
    i = np.asarray(intensity, dtype=np.float32)
    sector = (hue >= 120).astype(np.float32) + (hue >= 240)  # 360 itself lands in sector 2, where it equals 0
    angle = np.radians(hue - np.float32(120.0) * sector)
    missing = i * (1 - s)
    first = i * (1 + s * np.cos(angle) / np.cos(np.float32(np.pi / 3) - angle))
    second = 3 * i - missing - first
    in_rg, in_gb = sector == 0, sector == 1
    rgb = np.stack([np.where(in_rg, first, np.where(in_gb, missing, second)),
                    np.where(in_rg, second, np.where(in_gb, first, missing)),
                    np.where(in_rg, missing, np.where(in_gb, second, first))], axis=-1)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def code_flow(field: np.ndarray, max_magnitude: float | None = None, coding: str = "hsi") -> np.ndarray:
    """One (2, H, W) flow field as a (3, H, W) float32 RGB image in [0, 1] (Miao's coding, channels first)."""
    return flow_to_rgb(field, max_magnitude, coding).astype(np.float32).transpose(2, 0, 1) / 255.0


# --- which frames a flow field joins ---------------------------------------------------------

FIELD_STARTS = {FLOW_FIRST_EACH.name: "first", FLOW_CONSECUTIVE.name: "previous"}
"""Where each per-pair flow feature's field t starts: at frame 0 (``first``) or at frame t (``previous``).
Either way field t ends at frame t + 1 (0-based frame indices of the clip)."""


def field_frames(feature: str, field: int) -> tuple[int, int]:
    """(from, to) frame indices that field ``field`` of a per-pair flow feature joins.

    ``flow_first_each`` field t is the flow from frame 0 to frame t + 1;
    ``flow_consecutive`` field t from frame t to frame t + 1.
    """
    try:
        start = FIELD_STARTS[feature]
    except KeyError:
        raise KeyError(f"{feature!r} is not a per-pair flow feature; known: {', '.join(FIELD_STARTS)}") from None
    if field < 0:
        raise ValueError(f"field index must be >= 0, got {field}")
    return (0 if start == "first" else field), field + 1


def field_ending_at(frame_index: int, n_fields: int) -> int:
    """The field that ends at 0-based frame ``frame_index`` (frame 0 ends none: field 0 is used), clipped."""
    if n_fields < 1:
        raise ValueError(f"a clip with {n_fields} flow fields has no field to pick")
    return int(min(max(frame_index - 1, 0), n_fields - 1))


def apex_field(frame_numbers: Sequence[int], apex_numbers: Sequence[int | None], n_fields: int) -> int:
    """The field ending at the clip's apex frame; the middle field when no apex is on the clip's frames.

    Parameters
    ----------
    frame_numbers : sequence of int
        The clip's source frame numbers (the ``frame`` feature).
    apex_numbers : sequence of int or None
        Candidate apex frame numbers in order of preference (the sheet's
        apex, then the estimate); None or missing values are skipped.
    n_fields : int
        Fields of the clip.
    """
    if n_fields < 1:
        return 0
    numbers = np.asarray(frame_numbers)
    for value in apex_numbers:
        if value is None:
            continue
        hits = np.flatnonzero(numbers == int(value))
        if hits.size:
            return field_ending_at(int(hits[0]), n_fields)
    return max(0, (n_fields - 1) // 2)


def magnified_field(fields: np.ndarray, subset_pair: np.ndarray, alpha_index: int, subset: int = 0) -> np.ndarray:
    """STRCN-G's input for one magnification factor and one of Xia's frame subsets.

    Parameters
    ----------
    fields : ndarray, shape (A, P, 2, H, W)
        ``flow_onset_apex_magnified``: per alpha of ``magnify.alphas``, the flow of
        each (onset, apex) pair of ``onset_apex_pairs``.
    subset_pair : ndarray, shape (S,), int
        ``subset_pair``: the pair each stored frame subset gives.
    alpha_index : int
        Position along ``magnify.alphas``; test inputs use
        :func:`mepipe.featurestore.features.test_alpha_index` (Xia: alpha 8).
    subset : int
        Stored subset (``subset_frames`` row, level ``subset_levels[subset]``);
        subset 0 keeps every frame (level 1.0) and so gives pair 0, the clip's
        own onset and apex: the test input.

    Returns
    -------
    ndarray, shape (2, H, W)
    """
    fields = np.asarray(fields)
    if fields.ndim != 5 or fields.shape[2] != 2:
        raise ValueError(f"fields must have shape (alpha, pair, 2, H, W), got {fields.shape}")
    if not 0 <= alpha_index < fields.shape[0]:
        raise IndexError(f"alpha index {alpha_index} is outside the {fields.shape[0]} stored alphas")
    pair = int(np.asarray(subset_pair)[subset])
    if not 0 <= pair < fields.shape[1]:
        raise ValueError(f"subset {subset} names pair {pair}, but {fields.shape[1]} pairs are stored")
    return fields[alpha_index, pair]


# --- STRCN-A appearance matrices -------------------------------------------------------------


def _float_clip(clip: np.ndarray, name: str = "clip") -> np.ndarray:
    arr = np.asarray(clip)
    if arr.ndim not in (3, 4) or arr.shape[0] == 0:
        raise ValueError(f"{name} must have shape (T, H, W) or (T, H, W, C) with T >= 1, got {arr.shape}")
    # uint8 differences would wrap around; work in float64.
    return arr.astype(np.float64, copy=False)


def build_mask(heatmaps: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Binary mask of the top ``keep_fraction`` of the summed heat maps (Xia §III-C1).

    Exactly ``k = round(p * H * W)`` pixels are kept (halves round up; at least
    one). Pixels are ranked by ``sum_i E_i`` in descending order; equal values
    are ranked by row-major position, earlier first, so ties at the cut keep
    the pixels nearest the top-left. Pass one fold's training clips for a
    leak-free mask, or every clip for the paper's.

    Parameters
    ----------
    heatmaps : ndarray, shape (N, H, W)
        Per-clip heat maps (the ``heatmap`` feature), or a single (H, W) map.
    keep_fraction : float
        Fraction p in (0, 1] (Xia: 0.30, the ``appearance_mask.keep_fraction`` parameter).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"heatmaps must have shape (N, H, W) with N >= 1, got {maps.shape}")
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
    total = maps.sum(axis=0)
    if not np.all(np.isfinite(total)):
        raise ValueError("heatmaps contain NaN or infinite values")
    n_pixels = total.size
    k = min(n_pixels, max(1, math.floor(keep_fraction * n_pixels + 0.5)))
    order = np.argsort(-total.ravel(), kind="stable")
    mask = np.zeros(n_pixels, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(total.shape)


def time_normalise(clip: np.ndarray, n_time: int) -> np.ndarray:
    """Resample a clip to ``n_time`` frames by linear interpolation along time.

    Output frame k samples time ``k * (T - 1) / (n_time - 1)``, so the first and
    last frames are kept exactly; a one-frame clip is repeated.

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C)
        Frames, uint8 or float.
    n_time : int
        Output length, >= 2 (Xia: 30, the ``appearance.n_time`` parameter).

    Returns
    -------
    ndarray, shape (n_time, H, W[, C]), float32
    """
    frames = _float_clip(clip)
    if n_time < 2:
        raise ValueError(f"n_time must be >= 2, got {n_time!r}")
    n = frames.shape[0]
    if n == 1:
        return np.repeat(frames, n_time, axis=0).astype(np.float32)
    position = np.arange(n_time) * (n - 1) / (n_time - 1)
    lower = np.minimum(np.floor(position).astype(int), n - 2)
    weight = (position - lower).reshape((-1,) + (1,) * (frames.ndim - 1))
    out = (1.0 - weight) * frames[lower] + weight * frames[lower + 1]
    return out.astype(np.float32)


def appearance_matrix(clip: np.ndarray, mask: np.ndarray, n_time: int) -> np.ndarray:
    """Masked, time-normalised appearance matrix of one clip (Xia §III-C1).

    Parameters
    ----------
    clip : ndarray, shape (T, H, W) or (T, H, W, C)
        Magnified frames (or the stored ``appearance_frames``), uint8 or float.
    mask : ndarray, shape (H, W), bool
        From :func:`build_mask`.
    n_time : int
        Output length; a clip already of that length is taken as it is.

    Returns
    -------
    ndarray, shape (d2, n_time, C), float32
        ``d2 = mask.sum()``; rows are the masked pixels in row-major order,
        C = 1 for greyscale clips.
    """
    frames = _float_clip(clip)
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != frames.shape[1:3]:
        raise ValueError(f"mask must be a bool array of the clip's (H, W) = {frames.shape[1:3]}, "
                         f"got dtype {mask.dtype} shape {mask.shape}")
    if frames.ndim == 3:
        frames = frames[..., None]
    resampled = time_normalise(frames, n_time)
    return np.ascontiguousarray(resampled[:, mask, :].transpose(1, 0, 2))


# --- Choi's middle window --------------------------------------------------------------------


def middle_sequence(maps: np.ndarray, length: int) -> np.ndarray:
    """The middle ``length`` maps of a clip, edge-repeated when it is shorter (Choi §V-A).

    Longer inputs drop ``(F - length) // 2`` maps at the start and the rest at
    the end. Shorter inputs repeat the first map ``(length - F) // 2`` times in
    front and the last map for the remainder behind ("repetitive padding ...
    to both ends").

    Parameters
    ----------
    maps : ndarray, shape (F, ...)
        F >= 1 maps of any shape and dtype.
    length : int
        Output length (Choi: 24).

    Returns
    -------
    ndarray, shape (length, ...), same dtype
    """
    arr = np.asarray(maps)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length!r}")
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"maps must have shape (F, ...) with F >= 1, got {arr.shape}")
    n = arr.shape[0]
    if n >= length:
        start = (n - length) // 2
        return arr[start:start + length].copy()
    before = (length - n) // 2
    index = np.clip(np.arange(length) - before, 0, n - 1)
    return arr[index]


def map_window(n_maps: int, length: int) -> np.ndarray:
    """Indices of the distinct maps inside a clip's middle-``length`` window (each once, in order)."""
    return np.unique(middle_sequence(np.arange(n_maps), length))


# --- Nag's windows and the spotting ground truth ---------------------------------------------


def step_windows(n_steps: int, length: int | None, stride: int = 1) -> list[tuple[int, int]]:
    """(start, length) of the windows of ``length`` consecutive steps of a clip with ``n_steps`` steps.

    Windows start every ``stride`` steps while a full window fits, plus the
    last full window, so every step is covered; a clip shorter than
    ``length`` gives one shorter window. ``length=None`` gives the whole clip
    as one window.
    """
    if n_steps < 1:
        raise ValueError(f"a clip needs at least one step, got {n_steps}")
    if length is None:
        return [(0, n_steps)]
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    size = min(length, n_steps)
    starts = sorted({*range(0, n_steps - size + 1, stride), n_steps - size})
    return [(start, size) for start in starts]


def consecutive_runs(frame_numbers: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) 0-based indices of each run of consecutive frame numbers of a clip.

    A clip whose source lacks frames (numbers 102, 105) has a gap there;
    ``flow_consecutive`` is not computed across it (NaN), so a sequence of
    consecutive frame pairs (Nag's windows) lives within one run. A run of
    one frame has no pair.
    """
    numbers = np.asarray(frame_numbers)
    if numbers.ndim != 1 or numbers.size == 0:
        raise ValueError(f"frame_numbers must be a non-empty 1-D sequence, got shape {numbers.shape}")
    breaks = np.flatnonzero(np.diff(numbers) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [numbers.size - 1]])
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def onset_offset_span(frame_numbers: Sequence[int], onset: int | None, offset: int | None) -> np.ndarray:
    """1.0 for the frames whose number lies in onset..offset, else 0.0; all 0 without both marks.

    The spotting ground truth of Nag et al.: a frame is inside the
    expression when the sheet's onset and offset enclose it.
    """
    numbers = np.asarray(frame_numbers)
    out = np.zeros(numbers.shape, dtype=np.float32)
    if onset is None or offset is None:
        return out
    out[(numbers >= int(onset)) & (numbers <= int(offset))] = 1.0
    return out
