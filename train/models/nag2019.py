"""Nag et al. (2019): time-contrasted spatial features, a motion network and a GRU with class and intensity heads.

Each step t of a sequence sees two consecutive aligned frames I_t, I_{t+1}
(64x64x3) and the optical flow between them. Per step:

1. **Spatial network** (:class:`SpatialNet`), shared by both frames: a small
   dilated CNN standing in for DeepLab-LargeFOV (a documented substitution) —
   three [3x3 conv, ReLU, 3x3 conv, ReLU, 2x2 max-pool] blocks to w/8, then a
   dilated 3x3 "fc6" layer (LargeFOV's atrous fc6, dilation 2 here since the
   map is only 8x8), then the paper's two 1x1 convolutions interleaved with
   tanh that reduce the features to 128: ``FM`` of shape (128, 8, 8).
2. **Temporal network** (:class:`MotionNet`): an MPNet-like encoder–decoder
   on the 2-channel flow with one skip connection; a sigmoid gives the
   per-pixel motion likelihood at w/4 (1, 16, 16), average-pooled by 2 to
   (1, 8, 8) to match the spatial maps (the paper: "downsampled by a factor 2").
3. **Context contrast** (:class:`ContextContrast`, eq. 1-3): local features
   ``M_l`` and context features ``M_c`` of both frames' maps, differenced
   across time: ``[M_l(FM_t) - M_c(FM_t+1), M_l(FM_t) - M_l(FM_t+1),
   M_l(FM_t+1) - M_c(FM_t)]`` (3 x 128 channels).
4. **Fusion**: the three difference maps are stacked with the spatial maps of
   both frames and the motion map (5 x 128 + 1 channels), reduced by one 1x1
   convolution (+ ReLU) to 256, flattened (256 x 8 x 8) and mapped by two
   fully connected layers (+ ReLU) to a 256-vector.
5. **Memory**: a one-layer unidirectional GRU (256 units) over the steps, then
   two heads per step: class (FC 256 + ReLU -> FC num_classes, softmax /
   cross-entropy) and intensity (FC 256 + ReLU -> FC 1 -> sigmoid, L1 loss).

Choices where the paper is vague or inconsistent
------------------------------------------------
- *M_l and M_c* follow the cited context-contrasted local (CCL) block of Ding
  et al. (CVPR 2018): local = 3x3 convolution, context = 3x3 convolution with
  a large dilation, both without bias, one pair shared by the two frames (the
  same functions M_l, M_c appear in eq. 1-3). Ding's maps are dozens of
  pixels wide; on our 8x8 maps dilation 3 (``context_dilation``) lets the
  context kernel span 7x7 of the map, nearly all of it. The differences are
  kept signed as eq. 1-3 write them (CCL applies a ReLU; here the fusion
  convolution's ReLU follows instead).
- *"stacked and fused to the existing feature maps"*: read as channel
  concatenation followed by the single 1x1 convolution to 256 "preceding the
  memory module" — so the layers trained with the GRU are the paper's list
  (the spatial net's two 1x1 reductions, one 1x1 fusion, two FC, GRU, heads)
  plus M_l and M_c.
- *"The entire GRU module uses 7x7 convolutions"* contradicts the flattened
  256-vector the GRU reads; the sentence (like the 1x1 + tanh reduction, the
  RMSProp settings and "batch size 14") comes from the visual-memory ConvGRU
  of Tokmakov et al. (ICCV 2017) that this design follows. A plain GRU is
  used, as the vector input requires.
- *"binary cross-entropy"* in §3 vs. eq. 4's softmax cross-entropy over 5
  classes: eq. 4 (categorical cross-entropy at every step against the clip's
  label) is used.
- *Initialisation*: Xavier-uniform weights and zero biases for every
  convolution (the paper: "all the convolutional layers, except for those
  inside the GRU"); linear layers and the GRU keep PyTorch's defaults.
  ``init="he"`` uses He et al. (2015)'s uniform initialisation for ReLU
  layers instead: the paper's CNNs start pre-trained, and trained from
  scratch Xavier's variance halves at each of their eight ReLU layers, so
  what reaches the GRU hardly depends on the input (the long-video spotter
  uses it: :mod:`mepipe.train.spotters.nag2019`).
- *No normalisation layers*: DeepLab-LargeFOV and MPNet have none, and
  batch statistics over padded steps would make a sequence's output depend
  on its batch.
- *Pre-training*: the paper trains the two CNNs separately first (on
  segmentation / motion targets that the corpora lack); here everything is
  trained end to end from scratch.
- *Gaps*: a clip whose frame numbers skip frames (a frame missing from the
  source) has no flow across the gap (the store leaves it NaN); its windows
  are cut within each run of consecutive frames and each run is one test
  sequence (the clip's class is its longest run's last step), rather than
  refusing the clip or pairing frames that are not consecutive.
- *Batch size*: "batch size 14 where a sequence of 14 frames is chosen after
  randomly selecting a video" is Tokmakov's setting: one mini-batch is ONE
  sequence of 14 frames. One item of ours is one 14-step window, so the
  paper's batch is ``batch_size = 1`` item (:data:`RECIPE`); 14 windows per
  batch would be 14 times the paper's batch.

References
----------
.. [1] S. Nag, A. K. Bhunia, A. Konwer, P. P. Roy, "Facial micro-expression
   spotting and recognition using time contrasted feature with visual
   memory", ICASSP 2019, pp. 2022-2026; arXiv:1902.03514.
   https://doi.org/10.48550/arXiv.1902.03514
.. [2] H. Ding, X. Jiang, B. Shuai, A. Q. Liu, G. Wang, "Context contrasted
   feature and gated multi-scale aggregation for scene segmentation", CVPR
   2018, pp. 2393-2402 (Nag's [14]).
.. [3] P. Tokmakov, K. Alahari, C. Schmid, "Learning video object segmentation
   with visual memory", ICCV 2017 (the design and training setup Nag follows).
.. [4] P. Tokmakov, K. Alahari, C. Schmid, "Learning motion patterns in
   videos" (MPNet), CVPR 2017, pp. 531-539 (Nag's [13]).
.. [5] L.-C. Chen, G. Papandreou, I. Kokkinos, K. Murphy, A. L. Yuille,
   "Semantic image segmentation with deep convolutional nets and fully
   connected CRFs" (DeepLab-LargeFOV), arXiv:1412.7062 (Nag's [12]).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mepipe.featurestore.features import FLOW_CONSECUTIVE, FRAMES_RGB, INTENSITY, State

from .. import metrics
from ..augment import AffineAugmentParams, affine_augment
from ..inputs.batches import collate
from ..loop import Objective
from ..published import Published
from ..recipe import Deviation, Optimiser, Recipe, TrainingStage
from ..rules import ClipPredictions
from .nag2019_windows import PairWindows, WindowItem
from .registry import register_model
from .sequence import last_valid

if TYPE_CHECKING:
    from ..fold import FoldInputs
    from ..targets import Targets

__all__ = [
    "RECIPE",
    "SEQUENCE_LENGTH",
    "ContextContrast",
    "MotionNet",
    "Nag2019",
    "NagObjective",
    "NagOutput",
    "SpatialNet",
    "Spotting",
    "StateParams",
    "context_contrast",
    "intensity_states",
    "nag2019",
    "nag_loss",
]

NAG_DOI = "10.48550/arXiv.1902.03514"
"""arXiv DOI of the paper; the ICASSP 2019 version (pp. 2022-2026) has an IEEE
DOI that could not be verified here, so the arXiv one is given."""

SEQUENCE_LENGTH = 14
"""Steps per training sequence (§3: "a sequence of 14 frames")."""

WINDOW_STRIDE = 7
"""Steps between the starts of training windows (half a window: every step is seen twice)."""


@dataclass(frozen=True)
class StateParams:
    """Thresholds that cut an intensity curve into the five expression states of Fig. 2.

    Attributes
    ----------
    apex_level : float
        Frames at or above this (relative) intensity are "apex".
    onset_level : float
        Frames below this (relative) intensity are "onset" before the peak and
        "offset" after it; frames in between are "onset-apex" / "apex-offset".
    relative : bool
        Compare ``intensity / max(intensity)`` (True: a predicted curve that
        peaks below 1 still has an apex) or the raw values (False).
    min_peak : float
        A curve whose maximum is at most this has no expression: every frame
        is "onset" (the neutral state before any movement).
    """

    apex_level: float = 0.9
    onset_level: float = 0.2
    relative: bool = True
    min_peak: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.onset_level < self.apex_level <= 1 or not 0 <= self.min_peak < 1:
            raise ValueError(f"need 0 <= onset_level < apex_level <= 1 and 0 <= min_peak < 1, got {self!r}")


@dataclass(frozen=True)
class NagObjective:
    """Class cross-entropy at every step plus the L1 intensity loss (eq. 4-5), under Kim's affine augmentation.

    The frames and the flow between them get the same transform, the flow
    channels (the last two of a step) as vectors (:func:`~mepipe.train.augment.affine_augment`).
    The step's logits counted for the training accuracy are the last valid step's.
    """

    augment: AffineAugmentParams = field(default_factory=AffineAugmentParams)

    def __call__(self, fold: FoldInputs) -> Objective:
        augment = fold.options.augment

        def step(model: nn.Module, batch: WindowItem, generator: torch.Generator):
            x = batch.x
            if augment:
                flow = (x.shape[2] - 2, x.shape[2] - 1)
                x = affine_augment(x, generator, self.augment, vector_channels=flow)
            output = model.sequence(x, batch.length)
            loss, _ = nag_loss(output, batch.y, batch.intensity, lengths=batch.length)
            last = batch.length.to(output.step_logits.device) - 1
            logits = output.step_logits[torch.arange(len(last), device=last.device), last]
            return loss, logits, batch.y

        return step


@dataclass(frozen=True)
class Spotting:
    """Nag's test: whole clips; the class of the last step, and the per-frame intensity as spotting.

    Each test item is one run of consecutive frames of a clip (the whole
    clip unless its frame numbers have a gap). A clip's class is the last
    step's of its longest run. Its prediction row gets the predicted
    ``intensity`` of frames 1..T-1 (the frame each step ends at; None for
    the first frame of a run after a gap, which ends no pair), the sheet's
    ``span`` (1 inside onset..offset) and the expression ``states`` of the
    curve (Fig. 2, :func:`intensity_states`); the fold gets the ROC AUC of
    the intensity against the span over every predicted frame, inside and
    outside onset..offset (None when there is no frame outside, with the
    reason in ``spotting``), and the intervals spotted on each curve, scored
    as in MEGC (:func:`~mepipe.train.metrics.spotting_report`).

    Attributes
    ----------
    states : StateParams
    threshold : float
        ``p`` of the spotted intervals' threshold ``mean + p (max - mean)``.
    """

    states: StateParams = field(default_factory=StateParams)
    threshold: float = 0.5
    measured_on: str = "the last step of the clip's (longest run of) frames"

    @torch.no_grad()
    def __call__(self, model: nn.Module, loader, dataset, n_clips: int, device: torch.device,
                 targets: Targets) -> ClipPredictions:
        model.to(device).eval()
        amp = device.type == "cuda"
        runs: list[list[tuple[int, np.ndarray, int]]] = [[] for _ in range(n_clips)]
        for i in range(len(dataset)):
            batch = collate([dataset[i]]).to(device)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                output = model.sequence(batch.x, batch.length)
            clip, start = dataset.locate(i)
            runs[clip].append((start, output.intensity[0].float().cpu().numpy(),
                               int(output.step_logits[0, -1].float().argmax())))
        pred, rows, curves, spans = [], [], [], []
        for clip, parts in enumerate(runs):
            if not parts:
                raise ValueError(f"test clip {clip} has no sequence to predict from")
            span = np.asarray(dataset.spans[clip][1:], dtype=np.float64)  # frames 1..T-1, as the steps end
            curve = np.full(len(span), np.nan)
            for start, values, _ in parts:
                curve[start:start + len(values)] = values
            n_steps = len(curve)
            pred.append(max(parts, key=lambda part: len(part[1]))[2])
            known = np.isfinite(curve)
            states = np.full(n_steps, -1, dtype=np.int64)
            states[known] = intensity_states(curve[known], self.states)
            curves.append(curve)
            spans.append(span)
            rows.append({INTENSITY.name: [float(v) if k else None for v, k in zip(curve, known)],
                         "span": [int(v) for v in span], "states": states.tolist()})
        report = metrics.spotting_report(curves, spans, p=self.threshold)
        return ClipPredictions(np.array(pred, dtype=np.int64), rows,
                               {"spotting_auc": report["auc"], "spotting": report})


def _adapt(geometry) -> dict:
    """Nag's network takes square frames and flow of one size, a multiple of 8 (three 2x2 pools)."""
    frames = (geometry.size(FRAMES_RGB, "y"), geometry.size(FRAMES_RGB, "x"))
    flow = (geometry.size(FLOW_CONSECUTIVE, "y"), geometry.size(FLOW_CONSECUTIVE, "x"))
    if frames != flow or frames[0] != frames[1] or frames[0] % 8:
        raise geometry.refuse("Nag's network takes frames and flow of one square size, a multiple of 8",
                              (FRAMES_RGB, "y"), (FRAMES_RGB, "x"), (FLOW_CONSECUTIVE, "y"), (FLOW_CONSECUTIVE, "x"))
    return {"input_size": frames[0], "in_chans": 2 * geometry.size(FRAMES_RGB, "channel") + 2}


DEVIATIONS = (
    Deviation(
        "spatial network",
        "DeepLab-LargeFOV, trained on CASME II first (§2)",
        "a small dilated CNN (three conv-conv-pool blocks to w/8 and a dilated fc6), trained with the rest",
        "no segmentation targets exist for the corpora to pre-train DeepLab on, and its 1024-channel fc6 is far "
        "larger than the data can train from scratch"),
    Deviation(
        "temporal network",
        "MPNet, pre-trained for motion segmentation and trained on CASME II first (§2)",
        "a small MPNet-like encoder-decoder on the flow, one skip connection, trained with the rest",
        "the corpora have no motion-segmentation targets to pre-train it on"),
    Deviation(
        "pre-training",
        "the spatial and temporal networks are trained separately, then the memory module on their weights (§3)",
        "everything trained end to end from scratch in one stage",
        "the separate stages' targets (segmentation, motion) are not in any micro-expression corpus"),
    Deviation(
        "context contrast and memory",
        "local and context features M_l, M_c (eq. 1-3, after Ding et al.); 'the entire GRU module uses 7x7 "
        "convolutions'",
        "M_l a 3x3 convolution, M_c a 3x3 convolution of dilation 3, shared by both frames; a plain GRU of 256 "
        "units on the flattened 256-vector",
        "the paper gives no sizes for M_l and M_c; a convolutional GRU cannot read the 256-vector the paper feeds "
        "it (module docstring)"),
    Deviation(
        "class loss",
        "'binary cross-entropy' for the class head (§3) and a softmax over 5 classes (eq. 4)",
        "categorical cross-entropy at every step against the clip's class (eq. 4)",
        "five classes need the categorical form; eq. 4 writes it"),
    Deviation(
        "epochs",
        "no epoch count",
        "30 epochs of 14-step windows, one window per batch (Tokmakov's 'batch size 14': one 14-frame sequence)",
        "the paper does not say"),
    Deviation(
        "augmentation",
        "150 augmented copies of every training sequence (rotation, scale, translation; §3)",
        "one random variant of Kim's 150-variant grid per window and epoch, drawn on the fly",
        "the same grid without storing 150 copies; an epoch sees each window once"),
)
"""Where Nag et al. leave the network or its training open, and the choices made here (module docstring)."""

RECIPE = Recipe(
    name="nag2019",
    doi=NAG_DOI,
    stages=(TrainingStage(
        name="network",
        items=PairWindows(SEQUENCE_LENGTH, stride=WINDOW_STRIDE),
        objective=NagObjective(),
        # §3: RMSProp, lr 1e-4, weight decay 0.005. "Batch size 14" = one sequence of
        # 14 frames from one video (Tokmakov 2017), i.e. ONE of our 14-step windows.
        optimiser=Optimiser("rmsprop", lr=1e-4, weight_decay=0.005, batch_size=1),
        epochs=30,  # not in the paper: DEVIATIONS
        predict=Spotting(),
    ),),
    adapt=_adapt,
    deviations=DEVIATIONS,
    min_input_shape=(1, 8, 64, 64),
    # Nag et al. 2019, CASME II: recognition (Table 2) and spotting (Table 1).
    published=(Published("casme2", "casme2-5", "loso", (("accuracy", 0.8146), ("spotting_auc", 0.9424)),
                         "Nag et al. 2019, Tables 1-2",
                         note="the paper states a 70/30 split and leave-one-out cross validation and not its "
                              "classes (247 clips, 5 classes); mepipe runs LOSO on casme2-5",
                         label_version="casme2-2014"),),
    quick=(("epochs", 3), ("model_args", (("widths", (8, 16, 32)), ("fc6", 32), ("feature_channels", 16),
                                          ("fused", 16), ("fc", 64), ("hidden", 64)))),
)
"""Nag 2019 reads, per item, a window of L steps (L, 8, S, S): frame t (channels 0-2), frame t+1 (3-5),
both standardised RGB (``frames_rgb``), and the TV-L1 flow t -> t+1 (6-7, ``flow_consecutive``), plus the
per-step intensity target (``intensity``) and ``frame`` for the sheet's onset..offset span."""


INITS = ("xavier", "he")
"""Initialisations of the convolutions: Xavier-uniform (the paper's), He-uniform for ReLU layers (from scratch)."""


def _init_convolutions(module: nn.Module, init: str) -> None:
    """Xavier- or He-uniform weights, zero biases, for every (transposed) convolution in ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if init == "he":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# --- context contrast (eq. 1-3) --------------------------------------------------------------

FeatureMap = Callable[[torch.Tensor], torch.Tensor]


def context_contrast(fm_t: torch.Tensor, fm_t1: torch.Tensor, local: FeatureMap, context: FeatureMap) -> torch.Tensor:
    """Time-contrasted features of two frames' feature maps (Nag eq. 1-3), stacked along channels.

    Parameters
    ----------
    fm_t, fm_t1 : torch.Tensor, shape (N, C, H, W)
        Feature maps FM_t and FM_{t+1} of frames t and t+1.
    local, context : nn.Module or callable
        M_l and M_c: maps (N, C, H, W) -> (N, C', H, W) computing local and
        context features; each is applied to both frames.

    Returns
    -------
    torch.Tensor, shape (N, 3 C', H, W)
        ``[F_L1-C2, F_L1-L2, F_L2-C1]`` with
        ``F_L1-C2 = M_l(FM_t) - M_c(FM_t+1)`` (eq. 1),
        ``F_L1-L2 = M_l(FM_t) - M_l(FM_t+1)`` (eq. 2),
        ``F_L2-C1 = M_l(FM_t+1) - M_c(FM_t)`` (eq. 3).
    """
    if fm_t.shape != fm_t1.shape or fm_t.ndim != 4:
        raise ValueError(f"fm_t and fm_t1 must be equal-shaped (N, C, H, W) maps, got {tuple(fm_t.shape)} "
                         f"and {tuple(fm_t1.shape)}")
    local_t, local_t1 = local(fm_t), local(fm_t1)
    context_t, context_t1 = context(fm_t), context(fm_t1)
    return torch.cat([local_t - context_t1, local_t - local_t1, local_t1 - context_t], dim=1)


class ContextContrast(nn.Module):
    """Eq. 1-3 with Ding et al.'s CCL functions: M_l a 3x3 convolution, M_c a dilated 3x3 convolution.

    Parameters
    ----------
    channels : int
        Channels C of the input maps (and of M_l, M_c outputs).
    context_dilation : int
        Dilation of M_c; its kernel spans ``2 * context_dilation + 1`` pixels.

    Notes
    -----
    ``forward(fm_t, fm_t1)``: two (N, C, H, W) maps -> (N, 3C, H, W).
    Both convolutions are bias-free (as in CCL) and zero-padded to keep H, W.
    """

    def __init__(self, channels: int, context_dilation: int = 3) -> None:
        super().__init__()
        if channels < 1 or context_dilation < 1:
            raise ValueError(f"need channels >= 1 and context_dilation >= 1, got {channels} and {context_dilation}")
        self.local = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.context = nn.Conv2d(channels, channels, 3, padding=context_dilation, dilation=context_dilation,
                                 bias=False)

    def forward(self, fm_t: torch.Tensor, fm_t1: torch.Tensor) -> torch.Tensor:
        return context_contrast(fm_t, fm_t1, self.local, self.context)


# --- the two CNNs ----------------------------------------------------------------------------


class SpatialNet(nn.Module):
    """Small dilated CNN for one frame: (N, in_chans, 64, 64) -> FM (N, out_channels, 8, 8).

    Three VGG-style blocks [3x3 conv, ReLU, 3x3 conv, ReLU, 2x2 max-pool]
    bring the frame to w/8; a dilated 3x3 "fc6" layer (+ ReLU) widens the
    field of view as DeepLab-LargeFOV's does; two 1x1 convolutions
    interleaved with tanh (conv, tanh, conv, tanh) reduce it to
    ``out_channels`` (§2.1: 1024 -> 128 in the paper).

    Parameters
    ----------
    in_chans : int
        Channels of one frame (3 for RGB).
    widths : sequence of three int
        Channels of the three blocks.
    fc6 : int
        Channels of the dilated fc6 layer.
    fc6_dilation : int
        Its dilation.
    out_channels : int
        Channels of FM (128 in the paper).
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (32, 64, 128), fc6: int = 256,
                 fc6_dilation: int = 2, out_channels: int = 128) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1 or in_chans < 1 or fc6 < 1 or out_channels < 1:
            raise ValueError(f"need three positive widths and positive channels, got widths={widths}, "
                             f"in_chans={in_chans}, fc6={fc6}, out_channels={out_channels}")
        layers: list[nn.Module] = []
        channels = in_chans
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        layers += [nn.Conv2d(channels, fc6, 3, padding=fc6_dilation, dilation=fc6_dilation), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.reduce = nn.Sequential(nn.Conv2d(fc6, out_channels, 1), nn.Tanh(),
                                    nn.Conv2d(out_channels, out_channels, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.features(x))


class MotionNet(nn.Module):
    """MPNet-like encoder-decoder on flow: (N, 2, 64, 64) -> motion likelihood (N, 1, 16, 16) in (0, 1).

    Encoder: [3x3 conv, ReLU, 2x2 max-pool] x 3 (64 -> 8) and a 3x3 conv at
    w/8; decoder: a 2x2 stride-2 transposed convolution back to w/4, joined
    with the encoder's w/4 features (skip connection, as MPNet's decoder
    uses), a 3x3 conv and a 1x1 conv to one channel, then a sigmoid. With
    ``out_channels`` > 1, the 1x1 conv gives that many channels and no sigmoid
    follows (a motion map, not a likelihood; see :class:`Nag2019`).

    Parameters
    ----------
    in_chans : int
        Flow channels (u, v).
    widths : sequence of three int
        Encoder channels; the decoder uses the middle one.
    out_channels : int
        1: the paper's motion likelihood; more: a linear motion map of that many channels.
    """

    def __init__(self, in_chans: int = 2, widths: Sequence[int] = (32, 64, 128), out_channels: int = 1) -> None:
        super().__init__()
        w1, w2, w3 = (int(w) for w in widths)
        if min(w1, w2, w3, in_chans, out_channels) < 1:
            raise ValueError(f"need positive channels, got in_chans={in_chans}, widths={tuple(widths)}, "
                             f"out_channels={out_channels}")
        self.likelihood = out_channels == 1
        self.down1 = nn.Sequential(nn.Conv2d(in_chans, w1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))  # w/2
        self.down2 = nn.Sequential(nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))  # w/4
        self.down3 = nn.Sequential(nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # w/8
                                   nn.Conv2d(w3, w3, 3, padding=1), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(w3, w2, 2, stride=2), nn.ReLU())  # back to w/4
        self.decode = nn.Sequential(nn.Conv2d(2 * w2, w2, 3, padding=1), nn.ReLU(), nn.Conv2d(w2, out_channels, 1))

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        skip = self.down2(self.down1(flow))
        out = self.decode(torch.cat([self.up(self.down3(skip)), skip], dim=1))
        return torch.sigmoid(out) if self.likelihood else out


# --- the network -----------------------------------------------------------------------------


class NagOutput(NamedTuple):
    """Per-step outputs of :meth:`Nag2019.sequence`.

    Attributes
    ----------
    step_logits : torch.Tensor, shape (B, L, C)
        Class logits at every step (softmax gives eq. 4's y_pred). Steps past
        a sequence's length hold the heads' response to a zero GRU output
        and carry no meaning.
    intensity : torch.Tensor, shape (B, L)
        Predicted expression intensity in (0, 1) at every step.
    """

    step_logits: torch.Tensor
    intensity: torch.Tensor


class Nag2019(nn.Module):
    """Spatial + temporal CNNs, context contrast, GRU with class and intensity heads (see module doc).

    Parameters
    ----------
    num_classes : int
        C (5 for CASME II in the paper).
    in_chans : int
        Channels per step: two frames of ``(in_chans - 2) / 2`` channels each,
        then the 2 flow channels (8 for RGB frames).
    hidden : int
        GRU units and width of the two heads' hidden FC layers (256).
    widths : sequence of three int
        Block channels of the spatial and temporal CNNs.
    fc6 : int
        Channels of the spatial CNN's dilated fc6 layer.
    feature_channels : int
        Channels of each frame's feature map FM (128 in the paper).
    fused : int
        Channels of the 1x1 fusion convolution (256 in the paper).
    fc : int
        Width of the two FC layers that feed the GRU (256 in the paper).
    context_dilation : int
        Dilation of M_c (:class:`ContextContrast`).
    input_size : int
        Side of the square frames and flow (64 in the paper); a multiple of 8.
    init : {"xavier", "he"}
        Initialisation of the convolutions (:data:`INITS`; the paper's is Xavier).
    motion_channels : int
        Channels of the temporal network's output: 1 is the paper's motion
        likelihood (a sigmoid); more give a linear map of that many channels.
        Trained from scratch (the paper's MPNet is pre-trained), the single
        sigmoid channel passes almost nothing of the flow: on demo-lv's
        t -> t + 33 flow a CNN behind it fits its own training frames at AUC
        0.52-0.59 against 0.92 without it, and the spotter's network learns the
        held-out person only with a wider map
        (``benchmarks/nag_demo_lv_blockers.py``, ``benchmarks/README.md``).

    Notes
    -----
    Input x: float (B, L, in_chans, input_size, input_size), L >= 1; optional ``lengths``
    (B,) ints in 1..L for right-padded sequences. :meth:`sequence` gives the
    per-step :class:`NagOutput`, :meth:`forward` the clip logits (B, C) at
    each sequence's last valid step.
    """

    AUX_PREFIXES: tuple[str, ...] = ("intensity_head.",)
    """Parameter-name prefixes trained only by the intensity loss (not reached by the class logits)."""

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: int = 8,
        hidden: int = 256,
        widths: Sequence[int] = (32, 64, 128),
        fc6: int = 256,
        feature_channels: int = 128,
        fused: int = 256,
        fc: int = 256,
        context_dilation: int = 3,
        input_size: int = 64,
        init: str = "xavier",
        motion_channels: int = 1,
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if in_chans < 4 or in_chans % 2:
            raise ValueError(f"in_chans must be 2 * frame channels + 2 flow channels (even, >= 4), got {in_chans}")
        if input_size < 8 or input_size % 8:
            raise ValueError(f"input_size must be a positive multiple of 8 (three 2x2 pools), got {input_size}")
        if num_classes < 2 or min(hidden, fused, fc, feature_channels) < 1:
            raise ValueError(f"need num_classes >= 2 and positive widths, got num_classes={num_classes}, "
                             f"hidden={hidden}, fused={fused}, fc={fc}, feature_channels={feature_channels}")
        self.in_chans, self.frame_chans = in_chans, (in_chans - 2) // 2
        self.spatial = SpatialNet(self.frame_chans, widths, fc6, out_channels=feature_channels)
        self.temporal = MotionNet(2, widths, out_channels=motion_channels)
        self.contrast = ContextContrast(feature_channels, context_dilation)
        self.input_size = input_size
        side = input_size // 8
        # FM_t, FM_t+1, three contrast maps and the motion map, stacked along channels.
        self.fuse = nn.Sequential(nn.Conv2d(5 * feature_channels + motion_channels, fused, 1), nn.ReLU())
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(fused * side * side, fc), nn.ReLU(),
                                   nn.Linear(fc, fc), nn.ReLU())
        self.gru = nn.GRU(fc, hidden, num_layers=1, batch_first=True)
        self.class_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.intensity_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        _init_convolutions(self, init)

    def step_features(self, x: torch.Tensor) -> torch.Tensor:
        """GRU inputs of independent steps: (N, in_chans, 64, 64) -> (N, fc)."""
        c = self.frame_chans
        frames = torch.cat([x[:, :c], x[:, c:2 * c]], dim=0)  # both frames through one pass
        fm_t, fm_t1 = self.spatial(frames).chunk(2, dim=0)
        motion = F.avg_pool2d(self.temporal(x[:, 2 * c:]), 2)  # w/4 -> w/8
        stacked = torch.cat([fm_t, fm_t1, self.contrast(fm_t, fm_t1), motion], dim=1)
        return self.embed(self.fuse(stacked))

    def sequence(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> NagOutput:
        """Per-step class logits and intensities of a batch of sequences.

        Parameters
        ----------
        x : torch.Tensor, shape (B, L, in_chans, 64, 64)
        lengths : LongTensor (B,), optional
            True lengths of right-padded sequences; padded steps never reach
            the GRU state of valid steps.

        Returns
        -------
        NagOutput
            ``step_logits`` (B, L, C), ``intensity`` (B, L) in (0, 1).
        """
        expected = (self.in_chans, self.input_size, self.input_size)
        if x.ndim != 5 or tuple(x.shape[2:]) != expected or x.shape[1] < 1:
            raise ValueError(f"Nag2019 expects input (B, L >= 1, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        batch, steps = x.shape[:2]
        features = self.step_features(x.flatten(0, 1)).unflatten(0, (batch, steps))
        if lengths is None:
            out = self.gru(features)[0]
        else:
            lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
            if lengths.shape != (batch,) or bool((lengths < 1).any()) or bool((lengths > steps).any()):
                raise ValueError(f"lengths must be (B,) = ({batch},) ints in 1..{steps}, got {lengths.tolist()}")
            packed = pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
            out = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=steps)[0]
        return NagOutput(self.class_head(out), torch.sigmoid(self.intensity_head(out)).squeeze(-1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Clip logits (B, C): the step logits at each sequence's last valid step."""
        return last_valid(self.sequence(x, lengths).step_logits, lengths)


@register_model("nag2019", recipe=RECIPE)
def nag2019(num_classes: int = 5, in_chans: int = 8, hidden: int = 256, widths: tuple[int, ...] = (32, 64, 128),
            fc6: int = 256, feature_channels: int = 128, fused: int = 256, fc: int = 256,
            input_size: int = 64, init: str = "xavier", motion_channels: int = 1) -> Nag2019:
    """Nag et al. 2019 (see :class:`Nag2019`); input (B, L, 8, 64, 64), L = 14 in training.

    ``widths`` … ``fc`` size the CNNs and fusion layers (smaller for quick checks on a CPU); ``init`` picks
    the convolutions' initialisation (:data:`INITS`); ``motion_channels`` the temporal network's output (1: the
    paper's likelihood).
    """
    return Nag2019(num_classes, in_chans, hidden, tuple(widths), fc6, feature_channels, fused, fc,
                   input_size=input_size, init=init, motion_channels=motion_channels)


# --- loss ------------------------------------------------------------------------------------


def _step_mask(lengths: torch.Tensor | None, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """(B, L) bool, True at the valid steps."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)
    if lengths.shape != (batch,) or bool((lengths < 1).any()) or bool((lengths > steps).any()):
        raise ValueError(f"lengths must be (B,) = ({batch},) ints in 1..{steps}, got {lengths.tolist()}")
    return torch.arange(steps, device=device)[None] < lengths[:, None]


def nag_loss(
    output: NagOutput,
    y: torch.Tensor,
    intensity_target: torch.Tensor,
    intensity_weight: float = 1.0,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Nag's two losses summed over the valid steps of a batch (eq. 4 and 5).

    ``L = L_class + intensity_weight * L_reg`` with L_class the softmax
    cross-entropy of every valid step's logits against its clip's label
    (eq. 4; the paper trains both heads "at each timestep") and L_reg the L1
    distance between predicted and target intensity (eq. 5), each averaged
    over the valid steps of all sequences.

    Parameters
    ----------
    output : NagOutput
        ``step_logits`` (B, L, C) and ``intensity`` (B, L).
    y : LongTensor, shape (B,)
        Clip labels in 0..C-1.
    intensity_target : torch.Tensor, shape (B, L)
        Target intensity per step in [0, 1] (the dataset uses the intensity of
        frame t+1, the newer frame of step t's pair).
    intensity_weight : float
        Weight of the intensity loss (the paper adds the two unweighted).
    lengths : LongTensor (B,), optional
        True lengths; steps past them are left out of both losses.

    Returns
    -------
    total : torch.Tensor
        Scalar loss to back-propagate.
    parts : dict of str to float
        ``{"class": L_class, "reg": L_reg, "total": L}`` as floats.
    """
    logits, intensity = output.step_logits, output.intensity
    if logits.ndim != 3 or intensity.shape != logits.shape[:2]:
        raise ValueError(f"need step_logits (B, L, C) and intensity (B, L), got {tuple(logits.shape)} "
                         f"and {tuple(intensity.shape)}")
    batch, steps, n_classes = logits.shape
    y = torch.as_tensor(y, device=logits.device).long()
    if y.shape != (batch,):
        raise ValueError(f"y must hold one label per sequence, shape ({batch},), got {tuple(y.shape)}")
    if bool(((y < 0) | (y >= n_classes)).any()):
        raise ValueError(f"y must lie in 0..{n_classes - 1}, got {y.tolist()}")
    target = torch.as_tensor(intensity_target, dtype=intensity.dtype, device=intensity.device)
    if target.shape != intensity.shape:
        raise ValueError(f"intensity_target must be (B, L) = {tuple(intensity.shape)}, got {tuple(target.shape)}")
    if intensity_weight < 0:
        raise ValueError(f"intensity_weight must be >= 0, got {intensity_weight}")
    mask = _step_mask(lengths, batch, steps, logits.device)
    labels = y[:, None].expand(batch, steps)
    class_loss = F.cross_entropy(logits[mask], labels[mask])
    intensity_loss = (intensity[mask] - target[mask]).abs().mean()
    total = class_loss + intensity_weight * intensity_loss
    # One host sync for the three logged numbers instead of three.
    values = torch.stack([class_loss, intensity_loss, total]).detach().tolist()
    parts = dict(zip(("class", "reg", "total"), values))
    return total, parts


# --- expression states (Fig. 2) --------------------------------------------------------------


def intensity_states(intensity: np.ndarray, params: StateParams = StateParams()) -> np.ndarray:
    """Expression state of every frame from an intensity curve (Nag Fig. 2).

    The rule: the peak frame p (the first maximum) splits the curve into a
    rising side (t <= p) and a falling side (t > p). With v the intensity
    (divided by its maximum when ``params.relative``), frame t is

    - ``State.APEX`` where ``v[t] >= apex_level`` (either side; always the peak),
    - ``ONSET`` / ``OFFSET`` where ``v[t] < onset_level`` on the rising / falling side,
    - ``ONSET_TO_APEX`` / ``APEX_TO_OFFSET`` otherwise, on the rising / falling side.

    A curve whose maximum is ``<= params.min_peak`` is all onset.

    Parameters
    ----------
    intensity : array-like of float, shape (L,)
        Per-frame intensity, e.g. the store's ``intensity`` or the network's
        predicted one.
    params : StateParams

    Returns
    -------
    ndarray of int64, shape (L,)
        :class:`~mepipe.featurestore.features.State` codes 0..4.
    """
    curve = np.asarray(intensity, dtype=np.float64)
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"intensity must be a non-empty 1-D curve, got shape {curve.shape}")
    if not np.isfinite(curve).all():
        raise ValueError(f"intensity holds non-finite values at frames {np.flatnonzero(~np.isfinite(curve)).tolist()}")
    peak = int(np.argmax(curve))
    if curve[peak] <= params.min_peak:
        return np.full(curve.size, State.ONSET, dtype=np.int64)
    v = curve / curve[peak] if params.relative else curve
    falling = np.arange(curve.size) > peak
    states = np.where(v < params.onset_level, np.where(falling, State.OFFSET, State.ONSET),
                      np.where(falling, State.APEX_TO_OFFSET, State.ONSET_TO_APEX))
    return np.where(v >= params.apex_level, State.APEX, states).astype(np.int64)
