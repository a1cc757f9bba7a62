"""Kim et al. (2017): expression-state CNN (Table 1) plus a 3-layer LSTM (Table 2).

Training has two stages (§2.2, §2.3, §3.1):

1. **CNN** (:class:`KimCNN`) on the five representative expression-state frames of
   every clip (onset, onset->apex, apex, apex->offset, offset; store variable
   ``state_frames``), minimising E1 + ... + E5 (eq. 2-11, see
   :mod:`mepipe.train.models.kim2017_loss`). Two heads are trained in this stage
   only: Fc (expression class) and Fp (expression state). Their parameter
   names start with :attr:`Kim2017.AUX_PREFIXES`.
2. **LSTM** (:class:`~mepipe.train.models.sequence.SequenceHead`, 3 layers of
   512) over the F5 features of *all* frames of a clip (``frames_rgb``),
   classified from the last valid step (layer F9 of Table 2).

Table 1, as implemented (input 64x64xC)::

    C1  conv 3x3 / 32, stride 1, no padding, ReLU   -> 62x62x32
    S1  max pool 3x3, stride 2                      -> 31x31x32
    C2  conv 3x3 / 64, ReLU                         -> 29x29x64
    S2  max pool 3x3, stride 2                      -> 14x14x64
    C3  conv 3x3 / 64, ReLU                         -> 12x12x64
    S3  max pool 3x3, stride 2                      -> 6x6x64
    F4  fully connected 2304 -> 512, ReLU
    F5  fully connected 512 -> 512, ReLU            (the spatial feature)
    Fc  fully connected 512 -> N_c                  (class logits, stage 1 only)
    Fp  fully connected 512 -> N_p                  (state logits, stage 1 only)

The pools' sizes 62 -> 31 and 12 -> 6 of Table 1 are what a 3x3/2 pool without
padding gives when the output size is rounded *up* (the Caffe convention;
rounding down would give 30 and 5), so the pools use ``ceil_mode=True``.
"ReLU was used as the activation function" (§3.1), and eq. 5 differentiates
through sigma(h^(F5)), so F4 and F5 are followed by ReLU and the feature is
the activated F5 output. Neither Table 1 nor the text mentions dropout or
normalisation layers: there are none. Weights are Xavier-initialised (the
paper's §3.3 initialises its re-trained layers that way) with zero biases;
the LSTM keeps torch's initialisation.

What the paper does not state, and the choices made here (:data:`RECIPE`):

- Optimiser: ConvNet [2] (the paper's CNN toolbox) trains by mini-batch SGD
  with optional momentum (its defaults: batch 128, momentum 0); the paper
  gives only the initial learning rate (0.01 for
  CASME II, 0.08 for MMI). Chosen for the CNN: SGD, momentum 0.9, no weight
  decay, no learning-rate decay. The LSTM was trained in Keras with an
  unnamed optimiser; its stage uses Adam at 1e-3 (Keras' default setting)
  and a batch of 16 sequences.
- Batch size: 5 clips, i.e. 25 state frames per CNN batch, kept to whole
  clips (the same clip under the same variant) so that every batch holds all
  five states of its clips.
- Epochs: 40 for the CNN and 50 for the LSTM (§3.1), the stages' defaults.

What the paper states, as implemented (issue 14):

- Augmentation (§3.1): 150 variants of every training sequence (flips x
  rotations -10..10 step 5 x shifts (0, 0), (+-2, +-2) x scales 0.9/1.0/1.1),
  one transform for all frames of a sequence; the CNN is trained on the
  five state frames of each augmented sequence and the LSTM on all frames
  of the augmented sequences. The variants are drawn on the fly, and an
  epoch is every training clip under every variant (the paper's epoch over
  its augmented set; ``--recipe-option variants=N`` shortens it to N
  variants per clip, drawn anew each epoch). ``augmentation=per-frame``
  keeps the earlier draws (a variant per state frame, one pass per epoch;
  four fixed copies per sequence for the LSTM).
- E2, E4, E5 use the training set's class and state means and radii (eq.
  4-11), refreshed before each epoch (:class:`KimStep`); ``means=batch``
  keeps the batch statistics. :data:`DEVIATIONS` lists what still differs.

References
----------
.. [1] D. H. Kim, W. J. Baddar, J. Jang, Y. M. Ro, "Multi-objective based
   spatio-temporal feature representation learning robust to expression
   intensity variations for facial expression recognition", IEEE Trans.
   Affective Computing, 2017.
   https://doi.org/10.1109/TAFFC.2017.2699999
.. [2] S. Demyanov, ConvNet, https://github.com/sdemyanov/ConvNet
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from torch.utils.data import Dataset

from mepipe.featurestore.features import FRAMES_RGB, STATE_FRAMES, State

from ..augment import VARIANTS, AffineAugmentParams, AugmentedEpochs, affine_augment, grid_transform
from ..inputs.sequences import EncodedSequences
from ..inputs.state_frames import StateFrames, StateItem
from ..loop import make_loader
from ..objectives import Classify, frame_logits, sequence_logits
from ..published import Published
from ..recipe import Deviation, Optimiser, Recipe, RecipeOption, TrainingStage
from ..rules import ItemAt, MeanLogits
from .kim2017_loss import KimLossParams, KimMeans, kim_objective, training_set_means
from .registry import register_model
from .sequence import SequenceHead

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["AUGMENTATION", "GRID", "KIM_DOI", "MEANS", "RECIPE", "TERMS", "Kim2017", "KimCNN", "KimOutput",
           "KimStateObjective", "KimStep", "kim2017"]

KIM_DOI = "10.1109/TAFFC.2017.2699999"

_KERNEL = 3
"""Kernel of every convolution and pool in Table 1 (convs stride 1, pools stride 2, no padding)."""

_MIN_SIDE = 26
"""Smallest input side three 3x3 conv + 3x3/2 pool blocks leave a pixel of."""


MEANS = RecipeOption(
    "means", "training-set", values=("training-set", "batch"),
    help="where E2, E4 and E5 take their class and state means: training-set (eq. 4-11: every training state "
         "frame, refreshed before each epoch) or batch (the 5 clips of each batch, the behaviour before issue 14)")

def _terms(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """Objective terms from ``"E1,E2"`` or a tuple, checked and in the paper's order (:class:`KimLossParams`)."""
    return KimLossParams(terms=value).terms


TERMS = RecipeOption(
    "terms", KimLossParams().terms, parser=_terms,
    help="objective terms of the CNN stage, e.g. E1,E2 (Table 6; E1 required): default all five, E1..E5")

AUGMENTATION = RecipeOption(
    "augmentation", "grid", values=("grid", "per-frame"),
    help="grid (§3.1): one variant of the 150-variant grid per sequence, the same for all its frames, and "
         "epochs over every clip under every variant (see variants); per-frame (before issue 14): stage 1 "
         "draws a variant for each state frame, one pass over the clips per epoch, and stage 2 adds 4 "
         "augmented copies of each sequence, drawn once")

GRID = AffineAugmentParams()
"""Kim's §3.1 grid: flips x rotations -10..10 step 5 x shifts (0, 0), (+-2, +-2) x scales 0.9/1.0/1.1."""

GRID_EPOCHS = AugmentedEpochs(switch=AUGMENTATION, on="grid")
"""Augmented epochs over :data:`GRID` (both stages), unless ``augmentation=per-frame``."""

LEGACY_COPIES = 4
"""Augmented copies of each training sequence in stage 2 under ``augmentation=per-frame``."""


class KimStep:
    """One stage-1 training step (E1 + ... + E5 on the batch) and the epoch statistics it holds.

    Before each epoch (:meth:`start_epoch`) it computes the class and state
    means of the training set's F5 features (:func:`~.kim2017_loss.training_set_means`),
    unless the run asks for batch means.
    """

    def __init__(self, loss: KimLossParams, grid: AffineAugmentParams, per_frame: bool, training_set: bool,
                 copies: int):
        self.loss, self.grid, self.per_frame = loss, grid, per_frame
        self.training_set, self.copies = training_set, copies
        self.means: KimMeans | None = None

    @torch.no_grad()
    def start_epoch(self, model: nn.Module, dataset: Dataset, device: torch.device, epoch: int) -> None:
        """Means of the F5 features of every (un-augmented) training state frame, by the current network."""
        if not self.training_set:
            return
        cnn = model.cnn
        cnn.eval()
        features, labels, states = [], [], []
        for batch in make_loader(dataset, 256):
            features.append(cnn.features(batch.x.to(device)).float())
            labels.append(batch.y)
            states.append(batch.state)
        self.means = training_set_means(torch.cat(features), torch.cat(labels).to(device),
                                        torch.cat(states).to(device), cnn.class_head.out_features,
                                        cnn.state_head.out_features, self.copies)

    def __call__(self, model: nn.Module, batch: StateItem, generator: torch.Generator):
        x = batch.x
        if self.per_frame:
            x = affine_augment(x, generator, self.grid)
        else:
            x = grid_transform(x, batch.variant, self.grid)
        output = model.cnn(x)
        loss, _ = kim_objective(output, batch.y, batch.state, self.loss, self.means if self.training_set else None)
        return loss, output.class_logits, batch.y


@dataclass(frozen=True)
class KimStateObjective:
    """Stage 1: E1 + ... + E5 (eq. 2-11) of the CNN on state frames, under Kim's affine augmentation.

    The run's :data:`TERMS` option chooses the terms (Kim Table 6; default
    all five); its ``means`` option where E2, E4 and E5 take their means; its
    ``augmentation`` option whether each batch item carries its variant of
    the grid (one per sequence, drawn by the item maker's augmented epochs)
    or each frame draws its own.
    """

    grid: AffineAugmentParams = GRID
    epochs: AugmentedEpochs = GRID_EPOCHS

    def __call__(self, fold: FoldInputs) -> KimStep:
        options = fold.options
        loss = KimLossParams(terms=options.choice(TERMS))
        per_clip = self.epochs.per_clip(options, self.grid.n_variants)  # 0: no grid epochs
        return KimStep(loss, self.grid, per_frame=options.augment and not per_clip,
                       training_set=options.choice(MEANS) == "training-set", copies=max(per_clip, 1))


DEVIATIONS = (
    Deviation(
        "Kim E2/E4/E5 means",
        "class and state means over the training set, whose 150 augmented copies of every clip it counts",
        "means of the F5 features of every un-augmented training state frame, refreshed before each epoch; "
        "N_{c,p} of eq. 11 counts each frame as often as an epoch trains on it (150 variants; N with variants=N; "
        "once per epoch under augmentation=per-frame or without augmentation)",
        "a network trained on the grid gives a frame and its variants nearly the same features; computing them "
        "on every variant would cost a forward pass over 150 times the training set per epoch"),
)


def _adapt(geometry) -> dict:
    """Kim's CNN takes the stored frames' (square) side."""
    height, width = geometry.size(STATE_FRAMES, "y"), geometry.size(STATE_FRAMES, "x")
    if height != width or height < _MIN_SIDE:
        raise geometry.refuse(f"Kim's CNN takes square frames of at least {_MIN_SIDE}x{_MIN_SIDE}",
                              (STATE_FRAMES, "y"), (STATE_FRAMES, "x"))
    return {"input_size": height}


RECIPE = Recipe(
    name="kim2017",
    doi=KIM_DOI,
    stages=(
        TrainingStage(
            name="cnn",
            items=StateFrames(grid=GRID, epochs=GRID_EPOCHS),
            objective=KimStateObjective(),
            # §3.1 gives only the initial lr (CASME II: 0.01); SGD + momentum 0.9 and 5 clips per batch
            # are this implementation's choices (module docstring).
            optimiser=Optimiser("sgd", lr=0.01, momentum=0.9, batch_size=5),
            epochs=40,
            trains="cnn",
            predict=ItemAt(State.APEX, forward=frame_logits, measured_on="Fc on the apex frame"),
        ),
        TrainingStage(
            name="sequence",
            items=EncodedSequences(FRAMES_RGB, copies=LEGACY_COPIES, grid=GRID, epochs=GRID_EPOCHS),
            objective=Classify(forward=sequence_logits),
            optimiser=Optimiser("adam", lr=1e-3, batch_size=16),
            epochs=50,
            trains="temporal",
            predict=MeanLogits(forward=sequence_logits, measured_on="the LSTM over every frame"),
        ),
    ),
    adapt=_adapt,
    min_input_shape=(1, 3, 64, 64),
    choices=(TERMS, MEANS, AUGMENTATION, VARIANTS),
    deviations=DEVIATIONS,
    # Kim et al. 2017, CASME II, five classes, LOSO: Table 4(a), the spatio-temporal representation.
    published=(Published("casme2", "casme2-5", "loso", (("accuracy", 0.6098),), "Kim et al. 2017, Table 4(a)"),),
    # lr 0.003: the paper's 0.01 with momentum 0.9 diverges on the narrow quick network (demo-casme2, epoch 3).
    quick=(("epochs", 10), ("temporal_epochs", 20), ("lr", 0.003), ("recipe_options", (("variants", 2),)),
           ("model_args", (("conv_widths", (16, 32, 32)), ("fc_widths", (128, 128)), ("hidden", 64),
                           ("lstm_layers", 1)))),
)
"""Kim 2017 reads ``state_frames`` (5, S, S, 3) for the CNN stage and ``frames_rgb`` (T, S, S, 3) for
the LSTM stage; the network takes a clip as (T, 3, S, S), S = 64 in the paper (``kim.size``)."""


class KimOutput(NamedTuple):
    """Outputs of :class:`KimCNN` for N frames.

    Attributes
    ----------
    features : Tensor, shape (N, 512)
        F5, the spatial feature representation (after ReLU).
    class_logits : Tensor, shape (N, num_classes)
        Fc, expression-class logits.
    state_logits : Tensor, shape (N, n_states)
        Fp, expression-state logits.
    """

    features: torch.Tensor
    class_logits: torch.Tensor
    state_logits: torch.Tensor


def _conv_pool_side(side: int) -> int:
    """Side after one valid 3x3 convolution and one 3x3/2 max pool with ceil rounding."""
    conv = side - (_KERNEL - 1)
    if conv < _KERNEL:
        return 0
    return -(-(conv - _KERNEL) // 2) + 1


class KimCNN(nn.Module):
    """The CNN of Kim et al. Table 1: three conv/pool blocks, F4, F5 and the heads Fc and Fp.

    Parameters
    ----------
    num_classes : int
        N_c, outputs of the expression-class head Fc (5 for CASME II).
    in_chans : int
        Input channels (3: colour crops; grey sources are replicated in the store).
    n_states : int
        N_p, outputs of the expression-state head Fp (5).
    conv_widths : sequence of 3 int
        Filters of C1, C2, C3 (32, 64, 64).
    fc_widths : sequence of 2 int
        Units of F4 and F5 (512, 512); F5's width is the feature size.
    input_size : int
        Height and width of the square input (64).

    Notes
    -----
    Input: float tensor (N, in_chans, input_size, input_size).
    Output: :class:`KimOutput` with features (N, F5), class logits (N, num_classes)
    and state logits (N, n_states).
    """

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: int = 3,
        n_states: int = len(State),
        conv_widths: Sequence[int] = (32, 64, 64),
        fc_widths: Sequence[int] = (512, 512),
        input_size: int = 64,
    ) -> None:
        super().__init__()
        conv_widths = tuple(int(w) for w in conv_widths)
        fc_widths = tuple(int(w) for w in fc_widths)
        if len(conv_widths) != 3 or len(fc_widths) != 2 or min(conv_widths + fc_widths) < 1:
            raise ValueError(
                f"need three positive conv widths (C1-C3) and two positive FC widths (F4, F5); "
                f"got conv_widths={conv_widths}, fc_widths={fc_widths}"
            )
        if num_classes < 2 or n_states < 2 or in_chans < 1:
            raise ValueError(f"need num_classes >= 2, n_states >= 2, in_chans >= 1; got {num_classes}, "
                             f"{n_states}, {in_chans}")
        side = input_size
        for _ in conv_widths:
            side = _conv_pool_side(side)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for three 3x3 conv + 3x3/2 pool blocks; "
                             f"use at least 26 (the paper uses 64)")
        self.in_chans, self.input_size, self.feature_dim = in_chans, input_size, fc_widths[1]
        self.c1 = nn.Conv2d(in_chans, conv_widths[0], _KERNEL)
        self.c2 = nn.Conv2d(conv_widths[0], conv_widths[1], _KERNEL)
        self.c3 = nn.Conv2d(conv_widths[1], conv_widths[2], _KERNEL)
        self.pool = nn.MaxPool2d(_KERNEL, stride=2, ceil_mode=True)
        self.f4 = nn.Linear(conv_widths[2] * side * side, fc_widths[0])
        self.f5 = nn.Linear(fc_widths[0], fc_widths[1])
        self.class_head = nn.Linear(fc_widths[1], num_classes)
        self.state_head = nn.Linear(fc_widths[1], n_states)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F5 features (N, F5 width) of frames x (N, in_chans, input_size, input_size)."""
        expected = (self.in_chans, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"KimCNN expects frames (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        h = self.pool(F.relu(self.c1(x)))
        h = self.pool(F.relu(self.c2(h)))
        h = self.pool(F.relu(self.c3(h)))
        h = F.relu(self.f4(h.flatten(1)))
        return F.relu(self.f5(h))

    def forward(self, x: torch.Tensor) -> KimOutput:
        feats = self.features(x)
        return KimOutput(feats, self.class_head(feats), self.state_head(feats))


class Kim2017(nn.Module):
    """Kim et al.'s spatio-temporal network: :class:`KimCNN` F5 features of every frame -> 3-layer LSTM.

    Parameters
    ----------
    num_classes : int
        Expression classes (5 for CASME II); size of Fc and of the LSTM classifier F9.
    in_chans : int
        Channels of each frame.
    n_states : int
        Expression states (5), size of Fp.
    hidden : int
        Units per LSTM layer (512, Table 2).
    lstm_layers : int
        Stacked LSTM layers (3: L6-L8).
    conv_widths, fc_widths : sequence of int
        Widths of C1-C3 and F4-F5 (see :class:`KimCNN`).
    input_size : int
        Side of the square frames (64).

    Attributes
    ----------
    cnn : KimCNN
        Stage-1 network; its heads Fc and Fp are not on the path of :meth:`forward`.
    temporal : SequenceHead
        Stage-2 LSTM and classifier over (B, T, F5 width) feature sequences.
    """

    AUX_PREFIXES: tuple[str, ...] = ("cnn.class_head", "cnn.state_head")
    """Prefixes of the parameter names trained in stage 1 only (Fc and Fp)."""

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: int = 3,
        n_states: int = len(State),
        hidden: int = 512,
        lstm_layers: int = 3,
        conv_widths: Sequence[int] = (32, 64, 64),
        fc_widths: Sequence[int] = (512, 512),
        input_size: int = 64,
    ) -> None:
        super().__init__()
        self.cnn = KimCNN(num_classes, in_chans, n_states, conv_widths, fc_widths, input_size)
        self.temporal = SequenceHead(self.cnn.feature_dim, hidden, lstm_layers, num_classes, cell="lstm")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """F5 features (N, F5 width) of frames x (N, C, H, W)."""
        return self.cnn.features(x)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Fc class logits (N, num_classes) of frames x (N, C, H, W): the stage-1 per-frame classifier."""
        return self.cnn(x).class_logits

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, num_classes) of clips x (B, T, C, H, W).

        ``lengths`` (B,) gives each clip's true number of frames when shorter
        clips are right-padded to T; the padded frames go through the CNN but
        not through the LSTM, and each clip is classified from its last valid
        step.
        """
        if x.ndim != 5:
            raise ValueError(f"Kim2017 expects clips (B, T, C, H, W), got {tuple(x.shape)}; "
                             f"use encode() or frame_logits() for single frames")
        n_clips, n_frames = x.shape[:2]
        feats = self.encode(x.reshape(n_clips * n_frames, *x.shape[2:]))
        return self.temporal(feats.view(n_clips, n_frames, -1), lengths)


@register_model("kim2017", recipe=RECIPE)
def kim2017(num_classes: int = 5, in_chans: int = 3, n_states: int = len(State), hidden: int = 512,
            lstm_layers: int = 3, conv_widths: tuple[int, ...] = (32, 64, 64),
            fc_widths: tuple[int, ...] = (512, 512), input_size: int = 64) -> Kim2017:
    """Kim et al. 2017, Table 1 CNN + Table 2 LSTM (see :class:`Kim2017`); widths shrink it for quick checks."""
    return Kim2017(num_classes, in_chans, n_states, hidden, lstm_layers, tuple(conv_widths), tuple(fc_widths),
                   input_size)
