"""STRCN-A and STRCN-G, the recurrent convolutional networks of Xia et al. (2019).

Both variants share Table I of the paper: Conv1 (5x5, no padding) -> Pool1 ->
RCL2 -> Pool2 -> RCL3 -> Pool3 -> RCL4 -> Pool4 -> RCL5 -> global average
pooling -> C-way classifier, M feature maps in every convolutional layer,
batch normalisation + ReLU after each convolution. They differ in input and
pools:

- STRCN-A reads the appearance matrix (d2 x T x C: masked pixels x
  time-normalised frames x channels) as a C-channel image of height d2 and
  width T; Pool1/Pool2 are 4x1 (pixels only), Pool3 4x4, Pool4 2x2.
- STRCN-G reads the onset -> apex optical flow (u, v) at 245x300 (HxW) as a
  2-channel image; Pool1-3 are 4x4, Pool4 2x2.

Each RCL (eq. 6-7) is one feed-forward 1x1 convolution of its input u and
three recurrent 3x3 steps that reuse ONE weight tensor:
``v(0) = f(w_f * u)``, ``v(n) = f(w_f * u + w_r * v(n-1))``, n = 1..3, with
``f = ReLU(BN_n(.))``. Batch normalisation has its own statistics per step
(the inputs of the steps differ in scale); its shift plays the bias b_k of
eq. 6, so the convolutions have none.

The paper tunes M by grid search and does not state the value it used
(§IV-F3, Fig. 7); ``n_maps`` defaults to 128, a mid-size of the RCNN of Liang
& Hu that the paper builds on. Table I's STRCN-A input has C = 3; the store's
magnified clips may be greyscale (C = 1): set ``in_chans`` to match.

Training (§III-E, §IV-A; :func:`_stage`): the balanced loss, SGD with
momentum 0.9 and weight decay 5e-4, lr 1e-3 multiplied by 0.8 "when all
mini-batches are traversed", batches of 20, over the augmented training
set: every clip magnified with each α of the store's list (Xia: 5..14)
times random frame subsets of the store's levels (Xia: five, keeping
100/90/80/70/60 % of the frames), 50 versions of a clip. Training reads
the α list, test α and levels from the store's build record
(``magnify.alphas``, ``magnify.test_alpha``,
``flow_onset_apex_magnified.subset_levels``), never restating them. An
epoch here is every training clip under every (α, subset) variant, drawn
on the fly (:class:`~mepipe.train.augment.AugmentedEpochs`;
``--recipe-option variants=N`` takes N of them per clip and epoch), so the
learning-rate decay runs per pass over the augmented set, as in the paper.
Testing uses the store's test α (Xia: 8). STRCN-A cuts each subset from
the magnified clip before time normalisation; STRCN-G reads the stored
onset→apex flows of the magnified clip for each α and subset pair
(``augmentation=scale`` emulates α on the crops' flow instead, for stores
without them; ``augmentation=columns`` is STRCN-A's earlier way).

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, "Spatiotemporal recurrent
   convolutional networks for recognizing spontaneous micro-expressions",
   IEEE Trans. Multimedia 22(3), 2020. https://doi.org/10.1109/TMM.2019.2931351
.. [2] M. Liang, X. Hu, "Recurrent convolutional neural network for object
   recognition", CVPR 2015. https://doi.org/10.1109/CVPR.2015.7298958
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mepipe.featurestore.features import (APPEARANCE_FRAMES, APPEARANCE_MASK, FLOW_ONSET_APEX,
                                          FLOW_ONSET_APEX_MAGNIFIED, HEATMAP)

from ..augment import (VARIANTS, Augmenter, AugmentedEpochs, Magnification, frame_subset, magnification_scale,
                       recorded_subset_levels)
from ..inputs.appearance import MASK, AppearanceMatrices
from ..inputs.base import ChosenItems
from ..inputs.clip_arrays import ClipArrays
from ..inputs.magnified_flows import MagnifiedFlows
from ..loop import Objective
from ..objectives import Classify
from ..published import Published
from ..recipe import Deviation, Optimiser, Recipe, RecipeOption, TrainingStage
from ..rules import MeanLogits
from .registry import register_model

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["RCL", "RECIPE_A", "RECIPE_G", "STRCN", "BalancedLoss", "balanced_loss", "strcn_a", "strcn_g"]

XIA_DOI = "10.1109/TMM.2019.2931351"

POOLS_A: tuple[tuple[int, int], ...] = ((4, 1), (4, 1), (4, 4), (2, 2))
"""Table I, STRCN-A: Pool1-Pool4 as (along d2, along T); kernel = stride."""

POOLS_G: tuple[tuple[int, int], ...] = ((4, 4), (4, 4), (4, 4), (2, 2))
"""Table I, STRCN-G: Pool1-Pool4; kernel = stride."""

_CONV1 = 5
"""Conv1 kernel size (Table I: 5x5, no padding, stride 1)."""


def _min_size(pools: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Smallest (H, W) that leaves at least one pixel after Conv1 and all pools."""
    return tuple(_CONV1 - 1 + math.prod(p[axis] for p in pools) for axis in (0, 1))


def balanced_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, one_vs_rest: bool = True, reduction: str = "sum"
) -> torch.Tensor:
    """Multi-class balanced loss of Xia et al. (eq. 9-10).

    ``L = sum_i -beta_i log p_t^i``. Eq. 9 defines ``p_t = p^y (1 - p)^(1 - y)``
    over the class vector, so for sample i with one-hot label y_i and softmax
    probabilities p_i, ``log p_t^i = sum_c [y_ic log p_ic + (1 - y_ic) log(1 - p_ic)]``
    (``one_vs_rest=True``, the literal reading). ``one_vs_rest=False`` keeps
    only the true class's term, the weighted cross-entropy ``-beta_i log p_i,y_i``.

    The weight is inversely proportional to the share of the sample's class in
    the batch: ``beta_i = N / (K * n_(y_i))`` with N samples, K classes present
    and n_c samples of class c. The constant makes the weights average 1, so
    a batch with equal class counts gets beta = 1, the paper's "without BL"
    setting.

    Parameters
    ----------
    logits : torch.Tensor, shape (N, n)
        Network outputs before softmax.
    targets : LongTensor, shape (N,)
        Class indices in 0..n-1.
    one_vs_rest : bool
        Literal eq. 9 (True) or the weighted cross-entropy (False).
    reduction : {"sum", "mean", "none"}
        "sum" is eq. 10 as written (and the summed loss MatConvNet, the
        paper's toolbox, minimises with its lr 1e-3).

    Returns
    -------
    torch.Tensor
        Scalar, or (N,) per-sample losses for ``reduction="none"``.
    """
    if logits.ndim != 2 or logits.shape[1] < 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"need logits (N, n >= 2) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    n_batch, n_classes = logits.shape
    targets = targets.long()
    if bool(((targets < 0) | (targets >= n_classes)).any()):
        raise ValueError(f"targets must lie in 0..{n_classes - 1}, got {targets.tolist()}")
    counts = torch.bincount(targets, minlength=n_classes).to(logits.dtype)
    beta = n_batch / (torch.count_nonzero(counts) * counts[targets])
    log_p = F.log_softmax(logits, dim=1)
    if one_vs_rest:
        # log(1 - p_c) = logsumexp of the other logits - logsumexp of all: exact and stable.
        others = logits.unsqueeze(1).expand(n_batch, n_classes, n_classes)
        eye = torch.eye(n_classes, dtype=torch.bool, device=logits.device)
        log_rest = torch.logsumexp(others.masked_fill(eye, float("-inf")), dim=2)
        log_1mp = log_rest - torch.logsumexp(logits, dim=1, keepdim=True)
        onehot = F.one_hot(targets, n_classes).bool()
        log_pt = torch.where(onehot, log_p, log_1mp).sum(dim=1)
    else:
        log_pt = log_p.gather(1, targets[:, None]).squeeze(1)
    losses = -beta * log_pt
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


class BalancedLoss(nn.Module):
    """Module form of :func:`balanced_loss` (same arguments)."""

    def __init__(self, *, one_vs_rest: bool = True, reduction: str = "sum") -> None:
        super().__init__()
        self.one_vs_rest, self.reduction = one_vs_rest, reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return balanced_loss(logits, targets, one_vs_rest=self.one_vs_rest, reduction=self.reduction)


AUGMENTATION_A = RecipeOption(
    "augmentation", "xia", values=("xia", "columns"),
    help="xia (§III-E): epochs over every clip magnified with each stored alpha times a random frame subset of "
         "each of the store's flow_onset_apex_magnified.subset_levels (Xia: 100..60 % of the magnified clip's "
         "frames), then time-normalised; columns (before issue 14): one item per clip and epoch, a random alpha, "
         "and a random subset of the time-normalised matrix's columns")

AUGMENTATION_G = RecipeOption(
    "augmentation", "xia", values=("xia", "scale"),
    help="xia (§III-C2, §III-E): the onset->apex flows of the clip magnified with each stored alpha "
         "(flow_onset_apex_magnified), epochs over every clip under every alpha times each of its frame subsets' "
         "(onset, apex) pair, tested at magnify.test_alpha; scale (before issue 14, for stores without magnified "
         "flows): the flow of the unmagnified crops (flow_onset_apex), one item per clip and epoch, scaled by "
         "(1 + alpha) / (1 + mean alpha) for a random alpha of the store's magnify.alphas")


def subset_columns(fold: FoldInputs) -> Augmenter:
    """STRCN-A's earlier augmentation: random subsets of the matrix's time columns, of the store's subset levels."""
    return partial(frame_subset, keep_fractions=recorded_subset_levels(fold.clips, "STRCN-A's augmentation=columns"))


def scaled_alpha(fold: FoldInputs) -> Augmenter:
    """STRCN-G's earlier augmentation: the crops' flow scaled as if magnified by a random α of the store's list."""
    alphas = Magnification.recorded(fold.clips, "STRCN-G's augmentation=scale").alphas
    return partial(magnification_scale, alphas=alphas)


@dataclass(frozen=True)
class XiaObjective:
    """Balanced loss (eq. 9-10); the batch augmentation of the recipe's earlier way when the run chooses it.

    Attributes
    ----------
    legacy : callable
        ``fold -> Augmenter``: the augmentation applied to training batches
        when the run augments and ``epochs`` is not active, drawn from the
        grid the fold's stores recorded (:func:`subset_columns` for STRCN-A,
        :func:`scaled_alpha` for STRCN-G).
    epochs : AugmentedEpochs, optional
        Xia's augmented epochs, drawn by the item maker (nothing to do here).
    """

    legacy: Callable[[FoldInputs], Augmenter]
    epochs: AugmentedEpochs | None = None

    def __call__(self, fold: FoldInputs) -> Objective:
        xia = self.epochs is not None and self.epochs.active(fold.options)
        legacy = fold.options.augment and not xia
        return Classify(loss=balanced_loss, augment=self.legacy(fold) if legacy else None)(fold)


def _stage(items, objective: XiaObjective) -> TrainingStage:
    """Xia's training: balanced loss (eq. 9-10) with the variant's augmentation."""
    return TrainingStage(
        name="network",
        items=items,
        objective=objective,
        # §IV-A: SGD with momentum 0.9, weight decay 5e-4, lr 1e-3 times 0.8 after every epoch, batch 20.
        optimiser=Optimiser("sgd", lr=1e-3, weight_decay=5e-4, momentum=0.9, batch_size=20, lr_decay=0.8),
        # No epoch count in the paper; the lr decay brings the lr to 1e-3 of its start after 30 epochs
        # (of the augmented training set: 50 versions of each clip per epoch).
        epochs=30,
        predict=MeanLogits(),
    )


def _adapt_a(geometry) -> dict:
    """STRCN-A takes the stored clips' channels; its pools need T and the masked pixels d2 large enough."""
    min_d2, min_t = _min_size(POOLS_A)
    if geometry.size(APPEARANCE_FRAMES, "time") < min_t:
        raise geometry.refuse(f"STRCN-A's pools need at least {min_t} time steps", (APPEARANCE_FRAMES, "time"))
    keep = geometry.stage_params(APPEARANCE_MASK.stage)["keep_fraction"]
    pixels = math.floor(keep * geometry.size(HEATMAP, "y") * geometry.size(HEATMAP, "x") + 0.5)
    if pixels < min_d2:
        raise geometry.refuse(f"STRCN-A's pools need at least {min_d2} masked pixels; {APPEARANCE_MASK.stage}."
                              f"keep_fraction = {keep} keeps {pixels}", (HEATMAP, "y"), (HEATMAP, "x"))
    return {"in_chans": geometry.size(APPEARANCE_FRAMES, "channel")}


def _adapt_g(geometry) -> dict:
    """STRCN-G takes any flow size its pools leave a pixel of (of the flow the run reads)."""
    min_h, min_w = _min_size(POOLS_G)
    flow = next(f for f in (FLOW_ONSET_APEX_MAGNIFIED.name, FLOW_ONSET_APEX.name) if f in geometry.sizes)
    if geometry.size(flow, "y") < min_h or geometry.size(flow, "x") < min_w:
        raise geometry.refuse(f"STRCN-G's pools need flow of at least {min_w}x{min_h}", (flow, "y"), (flow, "x"))
    return {}


EPOCHS_A = AugmentedEpochs(switch=AUGMENTATION_A, on="xia")
"""Xia's augmented epochs for STRCN-A: stored alphas x frame-subset fractions, unless ``augmentation=columns``."""

_XIA_F1 = "Xia's F1 pools TP/FP/FN over the classes (its §IV-C), not the UF1 mepipe reports"


def _xia(figures: tuple[tuple[str, float, float], ...], note: str = "") -> tuple[Published, ...]:
    """Xia et al.'s Table II (LOSO, four classes; SMIC has three of them): (corpus, accuracy, F1) rows."""
    return tuple(Published(corpus, "strcn-4", "loso", (("accuracy", acc), ("f1", f1)), "Xia et al. 2019, Table II",
                           note="; ".join(x for x in (_XIA_F1, note) if x))
                 for corpus, acc, f1 in figures)


ALIGNMENT = Deviation(
    "alignment",
    "local weighted mean (LWM, Goshtasby 1988) of the 68 landmarks onto a model face (Xia eq. 2)",
    "a similarity fitted to the eye corners and nose (align.method = similarity; lwm is an option)",
    "on the demo LWM keeps the stable points about as still as the similarity (median 0.49 against 0.38 px) but "
    "also aligns away half of the expression's landmark motion (47 % kept against 101 %), and the std-diff apex "
    "error rises from 0.44 to 0.97 frames (benchmarks/alignment_demo.py, 36 clips)")
"""Both STRCN variants read crops aligned by the similarity by default."""

FLOW_METHOD = Deviation(
    "STRCN-G flow",
    "Sun, Roth and Black's optical flow (CVPR 2010) between the first frame and the std-diff apex of the "
    "magnified clip",
    "TV-L1 (OpenCV's DualTVL1) between Kim's state frames 0 and 2 (the sheet's onset and apex where it has them)",
    "no implementation of Sun et al.'s method is available to mepipe; clip folders may hold frames before the onset")
"""STRCN-G's input flow (see ``MagnifiedOnsetApexFlowParams``)."""


RECIPE_A = Recipe(
    name="strcn-a",
    doi=XIA_DOI,
    stages=(_stage(AppearanceMatrices(epochs=EPOCHS_A), XiaObjective(subset_columns, EPOCHS_A)),),
    adapt=_adapt_a,
    min_input_shape=(3, *_min_size(POOLS_A)),
    published=_xia((("smic", 0.531, 0.514), ("casme2", 0.560, 0.542), ("samm", 0.545, 0.492)),
                   note="STRCN-A's mask is fitted on each fold's training clips (leak-free), Xia's on every clip"),
    # Xia's augmented epochs hold every clip under every stored alpha and frame subset: few suffice for --quick.
    quick=(("epochs", 3), ("recipe_options", (("variants", 2),)), ("model_args", (("n_maps", 16),))),
    choices=(AUGMENTATION_A, VARIANTS, MASK),
    deviations=(ALIGNMENT,),
)
"""STRCN-A reads the time-normalised magnified clips ``appearance_frames`` and the heat maps (the fold's mask),
plus ``magnified_small`` for the random-α augmentation; an item is the masked matrix as (C, d2, T)."""

EPOCHS_G = AugmentedEpochs(switch=AUGMENTATION_G, on="xia")
"""Xia's augmented epochs for STRCN-G: stored alphas x frame subsets, unless ``augmentation=scale``."""

ITEMS_G = ChosenItems(AUGMENTATION_G, (("xia", MagnifiedFlows(epochs=EPOCHS_G)),
                                       ("scale", ClipArrays(FLOW_ONSET_APEX))))
"""STRCN-G's items: magnified flows (Xia), or the crops' flow with the scale emulation (``augmentation=scale``)."""

RECIPE_G = Recipe(
    name="strcn-g",
    doi=XIA_DOI,
    stages=(_stage(ITEMS_G, XiaObjective(scaled_alpha, EPOCHS_G)),),
    adapt=_adapt_g,
    choices=(AUGMENTATION_G, VARIANTS),
    deviations=(ALIGNMENT, FLOW_METHOD),
    min_input_shape=(2, *_min_size(POOLS_G)),
    published=_xia((("smic", 0.723, 0.695), ("casme2", 0.803, 0.747), ("samm", 0.786, 0.741))),
    quick=(("epochs", 3), ("recipe_options", (("variants", 2),)), ("model_args", (("n_maps", 8),))),
)
"""STRCN-G reads ``flow_onset_apex_magnified`` (alpha, pair, 2, H, W) and ``subset_pair`` per clip (one
(2, H, W) field per item, (u, v) as channels), or ``flow_onset_apex`` (2, H, W) with ``augmentation=scale``."""


class RCL(nn.Module):
    """Recurrent convolutional layer (Xia eq. 6-7, after Liang & Hu 2015).

    Parameters
    ----------
    in_channels : int
        Channels of the feed-forward input u.
    channels : int
        Feature maps M of the layer.
    steps : int
        Recurrent steps (3 in Table I); all use the same 3x3 weights.

    Notes
    -----
    Input (B, in_channels, H, W) -> output (B, channels, H, W).
    """

    def __init__(self, in_channels: int, channels: int, steps: int = 3) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"an RCL needs at least one recurrent step, got steps={steps}")
        self.steps = steps
        self.feedforward = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.recurrent = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(steps + 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        drive = self.feedforward(u)
        state = F.relu(self.norms[0](drive))
        for step in range(1, self.steps + 1):
            state = F.relu(self.norms[step](drive + self.recurrent(state)))
        return state


class STRCN(nn.Module):
    """Recurrent convolutional network of Table I; returns logits.

    Parameters
    ----------
    num_classes : int
        C, the number of classes.
    in_chans : int
        Input channels.
    n_maps : int
        M, feature maps of every convolutional layer.
    pools : sequence of (int, int)
        Kernel (= stride) of Pool1..Pool4 as (along H, along W).
    steps : int
        Recurrent steps per RCL.

    Notes
    -----
    Input: float tensor (B, in_chans, H, W) with H, W at least
    ``4 + prod(pool sizes)`` along each axis. Output: logits (B, num_classes);
    softmax gives eq. 8's probabilities.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int,
        n_maps: int = 128,
        pools: Sequence[tuple[int, int]] = POOLS_G,
        steps: int = 3,
    ) -> None:
        super().__init__()
        pools = tuple((int(h), int(w)) for h, w in pools)
        if num_classes < 2 or in_chans < 1 or n_maps < 1 or len(pools) != 4:
            raise ValueError(
                f"need num_classes >= 2, in_chans >= 1, n_maps >= 1 and four pools; got num_classes={num_classes}, "
                f"in_chans={in_chans}, n_maps={n_maps}, pools={pools}"
            )
        self.in_chans, self.min_size = in_chans, _min_size(pools)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, n_maps, _CONV1, bias=False), nn.BatchNorm2d(n_maps), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for pool in pools:
            layers += [nn.MaxPool2d(pool, stride=pool), RCL(n_maps, n_maps, steps)]
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(n_maps, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans or x.shape[2] < self.min_size[0] or x.shape[3] < self.min_size[1]:
            raise ValueError(
                f"STRCN expects input (B, {self.in_chans}, H >= {self.min_size[0]}, W >= {self.min_size[1]}), "
                f"got {tuple(x.shape)}"
            )
        return self.classifier(self.pool(self.body(self.conv1(x))).flatten(1))


@register_model("strcn-a", recipe=RECIPE_A)
def strcn_a(num_classes: int = 4, in_chans: int = 3, n_maps: int = 128, steps: int = 3) -> STRCN:
    """STRCN-A: appearance matrix (B, C, d2, T) in, 4x1 pools along d2 first (Table I)."""
    return STRCN(num_classes, in_chans, n_maps, POOLS_A, steps)


@register_model("strcn-g", recipe=RECIPE_G)
def strcn_g(num_classes: int = 4, in_chans: int = 2, n_maps: int = 128, steps: int = 3) -> STRCN:
    """STRCN-G: onset -> apex flow (B, 2, 245, 300) in, 4x4 pools (Table I)."""
    return STRCN(num_classes, in_chans, n_maps, POOLS_G, steps)
