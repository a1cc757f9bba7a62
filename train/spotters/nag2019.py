"""Spotter ``nag2019``: Nag et al. (2019)'s network slid over long videos, its per-step intensity as the curve.

The network is :class:`~mepipe.train.models.nag2019.Nag2019` as registered
(spatial and temporal CNNs, context contrast, GRU with a class head and an
intensity head), reading the store's per-frame 64x64 RGB crops
(``frames_rgb``) and the TV-L1 flow between consecutive frames
(``flow_consecutive``) of long videos, one step per frame pair. With
``flow=apart`` each step reads instead the store's ``flow_apart`` field
centred on its frame (from t - k // 2 to t + k - k // 2, k the spotting
baselines'), less its median vector: at 200 fps a micro-expression moves
the face between consecutive frames by less than TV-L1's noise, and on
demo-lv the network learns a held-out person only from that flow, with a
wider linear motion map (``--model-arg motion_channels=8``) and Adam on 8
windows a step (``optimizer=adam``, ``batch_size=8``):
``benchmarks/nag_demo_lv_heldout.py``.

- **Targets** (:func:`frame_targets`): each annotated interval gives its
  frames Nag's intensity shape, rising linearly from the onset to 1 at the
  apex and falling to the offset (the frames just outside are 0, the onset
  and offset frames ``1 / (rise + 1)`` and ``1 / (fall + 1)``; an interval
  without an apex peaks at its middle frame); every other frame is 0. The
  class head gets each step's kind: 0 outside any interval, 1 micro, 2 macro.
- **Training** (:class:`TrainingWindows`): windows of ``window`` steps (Nag:
  14), every ``stride`` steps over the fit videos. Each epoch takes every
  window that touches an interval and ``negatives`` times as many others,
  ``hard_share`` of them drawn in proportion to the window's mean flow
  magnitude so that unannotated motion (blinks, head movement) is among the
  negatives, the rest uniformly. Loss per step (eq. 4-5): cross-entropy of
  the kind plus the L1 distance of the intensity; RMSProp, lr 1e-4, weight
  decay 0.005, one window per batch (the recipe's settings); windows are
  not augmented (``augment="none"``). The recipe's affine grid is
  ``augment="grid"``, a random mirror alone ``augment="mirror"``: on the
  synthetic store of the learnability test the grid's rotations and zooms
  kept the network at the majority class at every learning rate tried
  (1e-4 to 1e-3), and mirroring halved what it learnt in the test's four
  epochs (micro F1 0.333 against 0.857 without; 0.500 after six).
- **Curve** (:func:`video_curve`): windows of ``window`` steps every
  ``stride`` steps cover the whole video (the last one ends at its last
  frame); a frame's value is the mean of the intensities predicted for it by
  the windows whose steps end at it (the first frame, which ends no pair, has
  none).
- **Intervals**: runs of frames above a threshold; micro when they last at
  most 0.5 s, else macro (:func:`~.intervals.spot_by_duration`). With
  ``smooth`` > 0 the curve is first the moving mean over that many seconds
  (:func:`~.intervals.moving_mean`); with ``relative`` the threshold is the
  MEGC baseline's, mean + t (max - mean) of each video's own curve
  (:func:`~.intervals.spot_relative_by_duration`): a network trained on a few
  people predicts a new person's intensities on its own scale. The epoch
  and the threshold are those with the best overall F1 on ``val_people``
  people held out of the fold's training side (:func:`~.selection.choose_settings`).
- **Initialisation**: He-uniform convolutions (:data:`SPOTTER_INIT`), not
  the paper's Xavier: the paper's CNNs start pre-trained; trained from
  scratch with Xavier, the input barely reaches the GRU and the spotter
  stays at the majority class.

References
----------
.. [1] Nag, Bhunia, Konwer, Roy, ICASSP 2019, https://doi.org/10.48550/arXiv.1902.03514 (the network and its
   choices: :mod:`mepipe.train.models.nag2019`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mepipe.featurestore.features import FLOW_APART, FLOW_CONSECUTIVE, FRAMES_RGB, frames_apart
from mepipe.featurestore.views import consecutive_runs, step_windows

from ..augment import AffineAugmentParams, affine_augment
from ..inputs.base import Standardiser, fit_standardiser, image
from ..inputs.batches import collate, stepwise
from ..inputs.sequences import SequenceItem
from ..loop import (EpochRecord, TrainParams, denormals_flushed, load_checkpoint, make_loader, save_checkpoint,
                    seed_everything, train_model)
from ..models import create_model
from ..models.nag2019 import NAG_DOI, RECIPE, SEQUENCE_LENGTH, WINDOW_STRIDE
from ..recipe import Deviation
from ..spotting_eval import OVERALL
from .base import FitContext, Fitted, Pass, Spotter, SpotterError, register_spotter
from .intervals import kind_by_duration, moving_mean, spot_by_duration, spot_relative_by_duration
from .selection import Choice, choose_settings

if TYPE_CHECKING:
    from .videos import VideoTable

__all__ = ["NAG2019", "NagSpotParams", "SpotItem", "TrainingWindows", "frame_targets", "video_curve"]

STEP_KINDS = ("none", "micro", "macro")
"""Classes of the class head, per step: the kind of interval the step's frame lies in."""

CURVE = "predicted_intensity"
"""Name of the spotter's curve: the per-frame predicted intensity (not the store's ``intensity`` feature)."""

SPOTTER_INIT = "he"
"""Initialisation of the network's convolutions when it spots (``--model-arg init=xavier`` gives the paper's):
trained from scratch, Xavier's lets almost nothing of the input reach the GRU (see the deviations)."""

AUGMENTS: dict[str, AffineAugmentParams | None] = {
    "none": None,
    "mirror": AffineAugmentParams(angles=(0.0,), shifts=((0.0, 0.0),), scales=(1.0,)),
    "grid": AffineAugmentParams(),
}
"""The spotter's augmentations of training windows: nothing, a random mirror, Kim's whole grid (the recipe's)."""

FLOWS = {"consecutive": FLOW_CONSECUTIVE.name, "apart": FLOW_APART.name}
"""The flow each step reads (``--param flow=NAME``): between the step's two frames (Nag's), or from k / 2 frames
before its frame to k - k / 2 after (the store's ``flow_apart``, centred on the step)."""

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Thresholds of the intensity curve chosen among (0.05 .. 0.95)."""


@dataclass(frozen=True)
class NagSpotParams:
    """Parameters of the ``nag2019`` spotter (see the module docstring).

    Attributes
    ----------
    window, stride : int
        Steps per window (Nag: 14) and steps between window starts.
    epochs, batch_size, lr, weight_decay
        Training (the recipe's RMSProp settings; epochs are not in the paper).
    negatives : float
        Windows outside every interval per window touching one, each epoch.
    hard_share : float
        Share of those drawn in proportion to their motion.
    threshold : float or None
        A fixed threshold of the curve; None (``chosen``) chooses it, with
        the epoch, on the held-out people.
    relative : bool
        Thresholds are fractions t of each video's curve range above its
        mean (mean + t (max - mean)), not intensities.
    smooth : float
        Seconds of the centred moving mean taken of the curve (0: none).
    thresholds : tuple of float
        The thresholds chosen among.
    val_people : int
        People of the fold's training side held out to choose on.
    patience : int or None
        Stop after this many epochs without a better validation F1.
    augment : {"none", "mirror", "grid"}
        Augmentation of the training windows (:data:`AUGMENTS`): none, a
        random mirror, or the recipe's whole affine grid.
    flow : {"consecutive", "apart"}
        The flow each step reads (:data:`FLOWS`); ``apart`` takes each
        field's median vector away (head motion left after alignment).
    optimizer : {"rmsprop", "adam", "sgd"}
        The recipe's RMSProp, or another of the training loop's.
    model_args : tuple of (str, value)
        Arguments of the network's factory (``--model-arg``: narrower layers).
    """

    window: int = SEQUENCE_LENGTH
    stride: int = WINDOW_STRIDE
    epochs: int = 30
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.005
    negatives: float = 1.0
    hard_share: float = 0.5
    threshold: float | None = None
    relative: bool = False
    smooth: float = 0.0
    thresholds: tuple[float, ...] = THRESHOLDS
    val_people: int = 1
    patience: int | None = None
    augment: str = "none"
    flow: str = "consecutive"
    optimizer: str = "rmsprop"
    model_args: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if min(self.window, self.stride, self.epochs, self.batch_size) < 1 or self.lr <= 0 \
                or self.weight_decay < 0 or self.negatives < 0 or not 0 <= self.hard_share <= 1 or self.smooth < 0:
            raise ValueError(f"invalid nag2019 spotter parameters: {self!r}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1) or chosen, got {self.threshold!r}")
        if not self.thresholds or not all(0 < t < 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be values in (0, 1), got {self.thresholds!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {', '.join(FLOWS)}, got {self.flow!r}")
        TrainParams(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer)
        if self.val_people < 0 or (self.patience is not None and self.patience < 1):
            raise ValueError(f"val_people must be >= 0 and patience >= 1, got {self.val_people}, {self.patience}")
        object.__setattr__(self, "model_args", tuple((str(k), tuple(v) if isinstance(v, list) else v)
                                                     for k, v in self.model_args))


# --- targets and windows ----------------------------------------------------------------------


def frame_targets(frame_numbers: Sequence[int], intervals: Sequence[dict], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame intensity target and step class of one video from its annotated intervals.

    Parameters
    ----------
    frame_numbers : sequence of int, shape (T,)
    intervals : sequence of mappings
        With ``onset``, ``offset`` (frame numbers), ``apex`` (or None/NA)
        and ``kind`` (``micro``, ``macro``, or another value: then the
        interval's length decides, :func:`~.intervals.kind_by_duration`).
    fps : float

    Returns
    -------
    intensity : ndarray, float32, (T,)
        The triangle of each interval (max where intervals overlap), 0 outside.
    kind : ndarray, int64, (T,)
        Index in :data:`STEP_KINDS` of the interval giving the frame its intensity; 0 outside.
    """
    numbers = np.asarray(frame_numbers, dtype=np.float64)
    intensity = np.zeros(numbers.shape, dtype=np.float32)
    kind = np.zeros(numbers.shape, dtype=np.int64)
    for interval in intervals:
        onset, offset = int(interval["onset"]), int(interval["offset"])
        apex = interval.get("apex")
        apex = (onset + offset) // 2 if apex is None or _missing(apex) or not onset <= int(apex) <= offset \
            else int(apex)
        rising = (numbers - onset + 1) / (apex - onset + 1)
        falling = (offset - numbers + 1) / (offset - apex + 1)
        shape = np.where(numbers <= apex, rising, falling)
        shape = np.where((numbers >= onset) & (numbers <= offset), shape, 0.0).astype(np.float32)
        label = interval.get("kind")
        if label not in STEP_KINDS[1:]:
            label = kind_by_duration(offset - onset + 1, fps)
        wins = shape > intensity
        intensity = np.where(wins, shape, intensity)
        kind = np.where(wins, STEP_KINDS.index(label), kind)
    return intensity, kind


def _missing(value: Any) -> bool:
    try:
        return bool(np.isnan(float(value)))
    except (TypeError, ValueError):
        return True


def video_windows(frame_numbers: Sequence[int], window: int, stride: int) -> list[tuple[int, int]]:
    """(first pair, steps) of the windows covering every pair of a video, cut within each run of consecutive
    frame numbers (no flow joins frames across a gap)."""
    return [(first + start, length) for first, last in consecutive_runs(frame_numbers) if last > first
            for start, length in step_windows(last - first, window, stride)]


@dataclass(kw_only=True)
class SpotItem(SequenceItem):
    """A window of frame pairs with the targets of the frames its steps end at.

    Attributes
    ----------
    intensity : Tensor, float32, (L,)
    kind : Tensor, int64, (L,)
        Index in :data:`STEP_KINDS`.
    """

    intensity: torch.Tensor = stepwise()
    kind: torch.Tensor = stepwise()


class TrainingWindows(Dataset):
    """Windows of long videos as :class:`SpotItem` (L, 8, H, W): frame t (channels 0-2), frame t+1 (3-5), both in
    [0, 1], and the flow between them (6-7), standardised per channel.

    Parameters
    ----------
    videos : VideoTable
    ids : sequence of str
        The videos drawn from.
    truth : pandas.DataFrame
        Their annotated intervals (frame numbers).
    params : NagSpotParams
    seed : int
        Seeds each epoch's draw of negative windows.
    """

    def __init__(self, videos: VideoTable, ids: Sequence[str], truth, params: NagSpotParams, seed: int = 0):
        self.videos, self.ids, self.params, self.seed = videos, list(ids), params, seed
        self.targets = []
        positives, negatives, motion = [], [], []
        for v, video in enumerate(self.ids):
            numbers = videos.frame_numbers(video)
            rows = truth[truth["video"].astype(str) == video].to_dict("records")
            intensity, kind = frame_targets(numbers, rows, float(videos.value(video, "fps")))
            self.targets.append((intensity, kind))
            energy = _pair_motion(videos, video, params.flow)
            for start, length in video_windows(numbers, params.window, params.stride):
                entry = (v, start, length)
                if kind[start + 1:start + length + 1].any():
                    positives.append(entry)
                else:
                    negatives.append(entry)
                    seen = energy[start:start + length]
                    motion.append(float(np.nanmean(seen)) if np.isfinite(seen).any() else 0.0)
        self.positives = np.array(positives, dtype=np.int64).reshape(-1, 3)
        self.negatives = np.array(negatives, dtype=np.int64).reshape(-1, 3)
        # Every negative keeps a little weight, so a draw of many among still windows stays possible.
        motion = np.nan_to_num(np.asarray(motion, dtype=np.float64)) + 1e-9
        self.motion = motion / motion.sum()
        self.windows = np.concatenate([self.positives, self.negatives])
        self.standardiser: Standardiser | None = None

    def draw(self, epoch: int) -> None:
        """This epoch's windows: every positive one, and negatives drawn as the parameters say."""
        rng = np.random.default_rng([self.seed, epoch])
        n = min(len(self.negatives), int(round(self.params.negatives * max(1, len(self.positives)))))
        hard = int(round(self.params.hard_share * n))
        chosen = rng.choice(len(self.negatives), size=hard, replace=False, p=self.motion) if hard else \
            np.empty(0, dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(self.negatives)), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=min(len(rest), n - hard), replace=False)])
        self.windows = np.concatenate([self.positives, self.negatives[np.sort(chosen).astype(np.int64)]])

    def __len__(self) -> int:
        return len(self.windows)

    def raw(self, i: int) -> np.ndarray:
        v, start, length = (int(x) for x in self.windows[i])
        return window_input(self.videos, self.ids[v], start, length, self.params.flow)

    def __getitem__(self, i: int) -> SpotItem:
        v, start, length = (int(x) for x in self.windows[i])
        x = self.raw(i)
        if self.standardiser is not None:
            x = self.standardiser(x)
        intensity, kind = self.targets[v]
        steps = slice(start + 1, start + length + 1)
        return SpotItem(x=torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))), y=int(kind[steps].max()),
                        clip=v, frame=start, length=length, intensity=torch.from_numpy(intensity[steps].copy()),
                        kind=torch.from_numpy(kind[steps].copy()))


def window_input(videos: VideoTable, video: str, start: int, length: int, flow: str = "consecutive") -> np.ndarray:
    """(8, L, H, W) float32 of the window of ``length`` pairs from pair ``start``: frames t, t+1 and the step's
    flow (:func:`step_fields`; NaN fields read as 0)."""
    frames = image(videos.read(FRAMES_RGB.name, video, start, start + length + 1))
    fields = step_fields(videos, video, start, length, flow)
    return np.concatenate([frames[:, :-1], frames[:, 1:], np.nan_to_num(np.moveaxis(fields, 1, 0))], axis=0)


def step_fields(videos: VideoTable, video: str, start: int, length: int, flow: str) -> np.ndarray:
    """(length, 2, H, W) float32: the flow (:data:`FLOWS`) each of pairs ``start`` .. ``start + length - 1``
    reads; NaN where it has none."""
    if flow == "consecutive":
        return videos.read(FLOW_CONSECUTIVE.name, video, start, start + length).astype(np.float32)
    return apart_fields(videos, video, start + 1 - apart_centre(videos, video), length)


def apart_centre(videos: VideoTable, video: str) -> int:
    """k // 2 of the video's ``flow_apart`` (its recorded k at the video's rate): the step ending at frame t reads
    the field from frame t - k // 2 to t + k - k // 2."""
    recorded = videos.stage_params(FLOW_APART.stage)
    return frames_apart(recorded["k"], recorded["k_seconds"], float(videos.value(video, "fps"))) // 2


def apart_fields(videos: VideoTable, video: str, first: int, length: int) -> np.ndarray:
    """(length, 2, H, W) float32: ``flow_apart`` fields ``first`` .. ``first + length - 1``, each less its median
    vector; NaN for positions outside the video and for the stored NaN fields."""
    shape = videos.shape(FLOW_APART.name, video)
    out = np.full((length, *shape[1:]), np.nan, dtype=np.float32)
    lo, hi = max(0, first), min(int(shape[0]), first + length)
    if hi > lo:
        out[lo - first:hi - first] = videos.read(FLOW_APART.name, video, lo, hi)
    finite = np.isfinite(out).all(axis=(1, 2, 3))
    if finite.any():
        out[finite] -= np.median(out[finite], axis=(2, 3), keepdims=True)
    return out


def _pair_motion(videos: VideoTable, video: str, flow: str) -> np.ndarray:
    """Mean magnitude of each pair's flow (:data:`FLOWS`) of a video (what draws hard negatives), a block at a
    time; NaN where the pair has none."""
    n = int(videos.value(video, "n_frames")) - 1
    out = np.zeros(max(0, n), dtype=np.float64)
    for start in range(0, n, 1024):
        stop = min(n, start + 1024)
        fields = step_fields(videos, video, start, stop - start, flow).astype(np.float64)
        out[start:stop] = np.sqrt((fields ** 2).sum(axis=1)).reshape(len(fields), -1).mean(axis=1)
    return out


# --- the curve of a video ---------------------------------------------------------------------


@torch.no_grad()
@denormals_flushed()
def video_curve(model: nn.Module, videos: VideoTable, video: str, standardiser: Standardiser, window: int,
                stride: int, device: torch.device, batch: int = 16, flow: str = "consecutive") -> np.ndarray:
    """Per-frame predicted intensity of one video: the mean over the windows whose steps end at each frame.

    Returns
    -------
    ndarray, float64, (T,)
        NaN for frames no step ends at (the first frame of each run of consecutive frames).
    """
    model.to(device).eval()
    numbers = videos.frame_numbers(video)
    total = np.zeros(len(numbers), dtype=np.float64)
    count = np.zeros(len(numbers), dtype=np.int64)
    spans = video_windows(numbers, window, stride)
    amp = device.type == "cuda"
    for first in range(0, len(spans), batch):
        group = spans[first:first + batch]
        items = [SpotItem(x=torch.from_numpy(np.ascontiguousarray(np.swapaxes(
                     standardiser(window_input(videos, video, start, length, flow)), 0, 1))), y=0, clip=0, frame=start,
                     length=length, intensity=torch.zeros(length), kind=torch.zeros(length, dtype=torch.int64))
                 for start, length in group]
        stacked = collate(items).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            out = model.sequence(stacked.x, stacked.length).intensity.float().cpu().numpy()
        for row, (start, length) in zip(out, group):
            total[start + 1:start + length + 1] += row[:length]
            count[start + 1:start + length + 1] += 1
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# --- training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotObjective:
    """Per step: cross-entropy of the step's kind (eq. 4, per step) plus the L1 intensity loss (eq. 5), on windows
    augmented by ``affine`` (None: as they are; the spotter passes its ``augment`` setting's, :data:`AUGMENTS`)."""

    affine: AffineAugmentParams | None

    def __call__(self, model: nn.Module, batch: SpotItem, generator: torch.Generator):
        x = batch.x
        if self.affine is not None:
            x = affine_augment(x, generator, self.affine, vector_channels=(x.shape[2] - 2, x.shape[2] - 1))
        out = model.sequence(x, batch.length)
        mask = torch.arange(x.shape[1], device=x.device)[None] < batch.length.to(x.device)[:, None]
        logits, kinds = out.step_logits[mask], batch.kind[mask]
        loss = F.cross_entropy(logits, kinds) + (out.intensity[mask] - batch.intensity[mask]).abs().mean()
        return loss, logits, kinds


class _Validation:
    """After each epoch: the validation videos' curves, the best threshold on them, and the best epoch's state."""

    def __init__(self, fitted: NagFitted, videos: VideoTable, ids: Sequence[str], truth, patience: int | None):
        self.fitted, self.videos, self.ids, self.truth, self.patience = fitted, videos, list(ids), truth, patience
        self.scores: list[dict[str, Any]] = []
        self.best: tuple[int, Choice] | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def __call__(self, record: EpochRecord) -> bool:
        curves = {v: self.fitted.curves(self.videos, v) for v in self.ids}
        choice = choose_settings(self.fitted.passes, curves, self.videos, self.truth)["all"]
        self.scores.append({"epoch": record.epoch, "val_f1": choice.counts.f1, "threshold": choice.setting})
        if self.best is None or choice.counts.f1 > self.best[1].counts.f1 + 1e-12:
            self.best = (record.epoch, choice)
            self.state = {k: v.detach().clone() for k, v in self.fitted.model.state_dict().items()}
        return self.patience is not None and record.epoch - self.best[0] >= self.patience


class NagFitted(Fitted):
    """Nag's network trained on one fold, with its standardisation and threshold."""

    def __init__(self, model: nn.Module, model_kwargs: dict[str, Any], standardiser: Standardiser,
                 params: NagSpotParams, device: torch.device, threshold: float | None):
        self.model, self.model_kwargs, self.standardiser = model, model_kwargs, standardiser
        self.params, self.device = params, device
        grid = (threshold,) if params.threshold is not None else tuple(params.thresholds)
        spot = spot_relative_by_duration if params.relative else spot_by_duration
        self.passes = (Pass("all", OVERALL, grid, spot, curve=CURVE),)
        self.settings = {"all": threshold} if threshold is not None else {}
        self.record: dict[str, Any] = {}

    def curves(self, videos: VideoTable, video: str) -> dict[str, np.ndarray]:
        curve = video_curve(self.model, videos, video, self.standardiser, self.params.window, self.params.stride,
                            self.device, flow=self.params.flow)
        frames = round(self.params.smooth * float(videos.value(video, "fps")))
        return {CURVE: moving_mean(curve, frames)}

    def describe(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "model_kwargs": self.model_kwargs,
                "standardiser": self.standardiser.to_dict(), **self.record}


def model_kwargs(videos: VideoTable, params: NagSpotParams) -> dict[str, Any]:
    """The network's factory arguments: its classes, the sizes of the stored crops, the run's ``model_args``."""
    shape = videos.feature_shape(FRAMES_RGB.name)
    name = FLOWS[params.flow]
    flow = videos.feature_shape(name)
    size, channels = int(shape[-2]), int(shape[-1])
    if tuple(shape[-3:-1]) != (size, size) or tuple(flow[-2:]) != (size, size) or size % 8:
        raise SpotterError(f"the nag2019 spotter takes square {FRAMES_RGB.name} and {name} of one size, a multiple "
                           f"of 8; the store has {tuple(shape[-3:-1])} and {tuple(flow[-2:])}")
    return {"num_classes": len(STEP_KINDS), "in_chans": 2 * channels + 2, "input_size": size, "init": SPOTTER_INIT,
            **dict(params.model_args)}


def fit(ctx: FitContext) -> NagFitted:
    """Train on ``ctx.fit``; choose the epoch and the threshold on ``ctx.validation`` (see the module docstring)."""
    params: NagSpotParams = ctx.params
    if params.threshold is None and not ctx.validation:
        raise SpotterError("the nag2019 spotter chooses its threshold on held-out people; give it val_people >= 1 "
                           "(--param val_people=N) or a fixed threshold (--param threshold=T)")
    seed_everything(ctx.seed)
    kwargs = model_kwargs(ctx.videos, params)
    model = create_model(RECIPE.name, **kwargs)
    train = TrainingWindows(ctx.videos, ctx.fit, ctx.truth, params, seed=ctx.seed)
    if not len(train.positives):
        raise SpotterError(f"{ctx.desc}: the training videos hold no annotated interval to learn from")
    train.standardiser = fit_standardiser(train, seed=ctx.seed)
    fitted = NagFitted(model, kwargs, train.standardiser, params, ctx.device, params.threshold)
    validation = _Validation(fitted, ctx.videos, ctx.validation, ctx.truth, params.patience) if ctx.validation \
        else None
    settings = TrainParams(epochs=params.epochs, batch_size=params.batch_size, lr=params.lr, optimizer=params.optimizer,
                           weight_decay=params.weight_decay, seed=ctx.seed, progress=ctx.progress)
    loader = make_loader(train, params.batch_size, shuffle=True, seed=ctx.seed, device=ctx.device)
    history = train_model(model, loader, settings, ctx.device, objective=SpotObjective(AUGMENTS[params.augment]),
                          desc=ctx.desc, before_epoch=train.draw, after_epoch=validation)
    record: dict[str, Any] = {"epochs": len(history), "n_positive_windows": int(len(train.positives)),
                              "n_negative_windows": int(len(train.negatives)),
                              "history": [dataclasses.asdict(h) for h in history]}
    if validation is not None:
        epoch, choice = validation.best
        model.load_state_dict(validation.state)
        for entry, score in zip(record["history"], validation.scores):
            entry.update(val_f1=score["val_f1"], threshold=score["threshold"])
        record["chosen_epoch"] = epoch
        if params.threshold is None:
            fitted.settings = {"all": choice.setting}
            record["choice"] = {"all": choice.describe()}
    record["checkpoint"] = str(save_checkpoint(model, ctx.checkpoint))
    fitted.record = record
    return fitted


def restore(params: NagSpotParams, described: dict[str, Any], folder: Path, device: torch.device) -> NagFitted:
    """The fitted spotter again from its record and checkpoint (``checkpoint`` relative to ``folder``)."""
    model = create_model(RECIPE.name, **described["model_kwargs"])
    load_checkpoint(model, Path(folder) / described["checkpoint"], device)
    fitted = NagFitted(model, described["model_kwargs"], Standardiser.from_dict(described["standardiser"]), params,
                       device, described["settings"]["all"])
    fitted.record = {k: v for k, v in described.items() if k not in ("settings", "model_kwargs", "standardiser")}
    return fitted


NAG2019 = register_spotter(Spotter(
    name=RECIPE.name,
    title="Nag et al. 2019 network over sliding windows (per-step intensity)",
    doi=NAG_DOI,
    reads=(FRAMES_RGB.name, FLOW_CONSECUTIVE.name),
    params=NagSpotParams(),
    fit=fit,
    restore=restore,
    reads_for=lambda params: (FRAMES_RGB.name, FLOWS[params.flow]),
    deviations=(
        Deviation("long videos", "spots within annotated clips (CASME II), frame-level ROC AUC",
                  "slides over whole long videos; intervals from runs of the per-frame intensity above a threshold, "
                  "scored by MEGC's interval F1",
                  "the MEGC spotting task (issue 20): whole videos and interval F1"),
        Deviation("class head", "one class label per clip at every step (eq. 4)",
                  "each step's class is the kind of interval its frame lies in (none, micro, macro)",
                  "a long video has no single class; the kind gives the head a spotting target"),
        Deviation("training windows", "sequences of 14 frames from randomly selected videos",
                  "every window touching an interval, plus as many others, half of them drawn by their motion",
                  "expression frames are a small share of a long video; unannotated motion (blinks, head movement) "
                  "must be seen as negative"),
        Deviation("initialisation", "Xavier for every convolution, the two CNNs pre-trained first",
                  "He-uniform for every convolution, all trained from scratch",
                  "from scratch, Xavier's variance halves at each of the CNNs' eight ReLU layers: the features "
                  "reaching the GRU hardly vary with the input and training stays at the majority class"),
        Deviation("threshold and epochs", "not stated",
                  "the epoch and threshold with the best overall F1 on held-out training people",
                  "never chosen on test people"),
        Deviation("motion input", "TV-L1 flow between consecutive frames",
                  "the same by default; --param flow=apart reads the flow from k / 2 frames before each step's frame "
                  "to k / 2 after, less its median vector",
                  "at 200 fps consecutive-frame flow of a micro-expression is below TV-L1's noise on 64-pixel crops "
                  "(benchmarks/nag_demo_lv_heldout.py)"),
        Deviation("curve to intervals", "not stated (a per-frame intensity)",
                  "runs above a threshold; --param smooth=S averages the curve over S seconds first and "
                  "--param relative=true thresholds mean + t (max - mean) of each video's curve",
                  "on demo-lv the raw curve of an unseen person ranks its frames well but breaks into many short "
                  "runs on its own scale"),
        Deviation("augmentation", "Kim's affine grid on frames and flow (mirror, rotate, shift, zoom)",
                  "none (--param augment=mirror or grid gives them)",
                  "on the synthetic store of the learnability test the grid kept the network at the majority "
                  "class at every learning rate tried and a mirror alone halved its micro F1 after four epochs"),
    ),
    quick=(("epochs", 3), ("model_args", dict(RECIPE.quick)["model_args"])),
))
"""The ``nag2019`` spotter."""
