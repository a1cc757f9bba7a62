"""SHCNN, the shallow CNN of Miao et al. (2019), with its clip vote and saliency map.

SHCNN classifies one colour-coded TV-L1 flow image (first frame -> frame t,
112x112x3) at a time; a clip's class is the majority vote of its frames
(:func:`mepipe.train.rules.vote`). :func:`saliency` is the paper's improved
saliency map, the gradient of a temperature-scaled softmax (eq. 9-12).
:data:`RECIPE` is how it is trained from a store.

What the paper's text fixes (§III-B, §III-D, §III-F): three convolutional
layers with LeakyReLU (alpha = 0.02), a fully connected part, softmax over
n classes; Adam, lr 1e-3, L2 lambda = 3e-4, batch 100. The layer table
itself (Fig. 4) is a figure whose numbers are not in the text, so the widths,
kernel size, pooling and hidden FC size below are a reconstruction, each a
constructor argument: three [conv k x k 'same' -> LeakyReLU -> max-pool 2x2]
blocks, a hidden FC with LeakyReLU, and the output FC (``hidden=0`` drops the
hidden FC). The paper's Table 4 reports 8,710,963 parameters for its static
(48x48 FER2013) model; that count cannot be matched without the table.

References
----------
.. [1] S. Miao, H. Xu, Z. Han, Y. Zhu, "Recognizing facial expressions using a
   shallow convolutional neural network", IEEE Access 7, 2019.
   https://doi.org/10.1109/ACCESS.2019.2921220
.. [2] K. Simonyan, A. Vedaldi, A. Zisserman, "Deep inside convolutional
   networks: visualising image classification models and saliency maps",
   arXiv:1312.6034, 2013.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mepipe.featurestore.features import FLOW_FIRST_EACH
from mepipe.featurestore.views import FLOW_CODINGS

from ..inputs.flow_frames import FlowFrames
from ..objectives import Classify
from ..published import Published
from ..recipe import Deviation, Optimiser, Recipe, RecipeOption, TrainingStage
from ..rules import FrameVote, vote
from .registry import register_model

__all__ = ["COLOUR", "RECIPE", "SHCNN", "saliency", "shcnn", "vote"]

MIAO_DOI = "10.1109/ACCESS.2019.2921220"


def _adapt(geometry) -> dict:
    """SHCNN's input side is the stored flow's (square) size."""
    height, width = geometry.size(FLOW_FIRST_EACH, "y"), geometry.size(FLOW_FIRST_EACH, "x")
    if height != width or height < 8:
        raise geometry.refuse("SHCNN takes square flow images of at least 8x8 (three 2x2 pools)",
                              (FLOW_FIRST_EACH, "y"), (FLOW_FIRST_EACH, "x"))
    return {"input_size": height}


COLOUR = RecipeOption(
    "colour", FLOW_CODINGS[0], values=FLOW_CODINGS,
    help="flow colour coding: hsi (§III-C: hue = direction, intensity = magnitude, converted to RGB) or hsv "
         "(value = magnitude, about half as bright; the coding before issue 25)")


DEVIATIONS = (
    Deviation(
        "flow colour scale",
        "the flow as an HSI image whose intensity represents the magnitude (§III-C); how the magnitude is scaled "
        "is not stated",
        "each field coded with its own largest magnitude as full intensity (featurestore.views.code_flow)",
        "the paper leaves the scale open; a per-field scale keeps every field's direction pattern visible"),
    Deviation(
        "epochs",
        "no epoch count for micro-expressions (the FERPlus run stops after 31 epochs)",
        "30 fixed epochs, or chosen on validation people with --val-subjects",
        "the paper does not say; the test fold never chooses"),
)


RECIPE = Recipe(
    name="shcnn",
    doi=MIAO_DOI,
    stages=(TrainingStage(
        name="network",
        items=FlowFrames(FLOW_FIRST_EACH, coding=COLOUR),
        objective=Classify(),  # softmax cross-entropy (eq. 2); no augmentation for micro-expressions
        # §III-D: Adam, lr 1e-3, batch 100; eq. 2 adds lam * sum ||w||^2 with lam = 3e-4: a gradient of 2 lam w.
        optimiser=Optimiser("adam", lr=1e-3, weight_decay=6e-4, batch_size=100),
        # No epoch count for micro-expressions in the paper; its FERPlus run stops after 31 epochs.
        epochs=30,
        predict=FrameVote(),
    ),),
    adapt=_adapt,
    choices=(COLOUR,),
    deviations=DEVIATIONS,
    min_input_shape=(3, 112, 112),
    # Miao et al. 2019, LOSO: CASME II in five classes (Table 7), SAMM in three (Table 8).
    published=(
        Published("casme2", "casme2-5", "loso", (("accuracy", 0.7114), ("f1", 0.6981)), "Miao et al. 2019, Table 7"),
        Published("samm", "samm-3", "loso", (("accuracy", 0.8647), ("f1", 0.8029)), "Miao et al. 2019, Table 8"),
    ),
    quick=(("epochs", 5), ("model_args", (("widths", (8, 16, 32)), ("hidden", 64)))),
)
"""SHCNN reads ``flow_first_each`` (T-1 fields (2, H, W) per clip), colour-coded to RGB when read
(Miao et al. 2019, §III-C), one field per item, and ``frame`` for the field ending at the apex (the vote's tie-break)."""


class SHCNN(nn.Module):
    """Shallow CNN on one colour-coded flow image; returns logits o (eq. 3).

    Parameters
    ----------
    num_classes : int
        n, the number of classes (3 for SAMM, 5 for CASME II in the paper).
    in_chans : int
        Input channels (3: the HSI-coded flow converted to RGB).
    input_size : int
        Height and width of the square input (112 in the paper).
    widths : sequence of int
        Filters of the convolutional layers (reconstruction, see module doc).
    kernel_size : int
        Odd kernel size of every convolution, zero-padded to keep the size.
    hidden : int
        Width of the hidden FC layer; 0 maps the conv features straight to
        the n outputs.
    negative_slope : float
        LeakyReLU coefficient alpha (0.02 in the paper).
    dropout : float
        Dropout before the output layer; the paper's main model has none
        (0.2 is one of its ablations).

    Notes
    -----
    Input: float tensor (B, in_chans, input_size, input_size). Output: logits
    (B, num_classes); softmax gives the score functions S (eq. 3).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        input_size: int = 112,
        widths: Sequence[int] = (32, 64, 128),
        kernel_size: int = 5,
        hidden: int = 512,
        negative_slope: float = 0.02,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if num_classes < 2 or in_chans < 1 or not widths or min(widths) < 1 or hidden < 0:
            raise ValueError(
                f"need num_classes >= 2, in_chans >= 1, non-empty positive widths and hidden >= 0; "
                f"got num_classes={num_classes}, in_chans={in_chans}, widths={widths}, hidden={hidden}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        side = input_size // 2 ** len(widths)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for {len(widths)} 2x2 pools; "
                             f"use at least {2 ** len(widths)}")
        self.in_chans, self.input_size = in_chans, input_size
        blocks: list[nn.Module] = []
        channels = in_chans
        for width in widths:
            blocks += [
                nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2),
                nn.LeakyReLU(negative_slope),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*blocks)
        flat = channels * side * side
        head: list[nn.Module] = [nn.Flatten()]
        if hidden:
            head += [nn.Linear(flat, hidden), nn.LeakyReLU(negative_slope)]
            flat = hidden
        head += [nn.Dropout(dropout), nn.Linear(flat, num_classes)]
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_chans, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"SHCNN expects input (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.classifier(self.features(x))


@register_model("shcnn", recipe=RECIPE)
def shcnn(
    num_classes: int = 3,
    in_chans: int = 3,
    input_size: int = 112,
    widths: Sequence[int] = (32, 64, 128),
    kernel_size: int = 5,
    hidden: int = 512,
    negative_slope: float = 0.02,
    dropout: float = 0.0,
) -> SHCNN:
    """SHCNN of Miao et al. 2019 (see :class:`SHCNN`)."""
    return SHCNN(num_classes, in_chans, input_size, widths, kernel_size, hidden, negative_slope, dropout)


def saliency(
    model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None, *, shrink: bool = True
) -> torch.Tensor:
    """Improved saliency map of Miao et al. (eq. 9-12): the input gradient of V_j.

    With logits o of one input, ``M = max_j |o_j|`` and
    ``V = softmax(o / M)`` (eq. 8-9); the map is ``dV_j / dI`` (eq. 10) for the
    target class j. M is held constant when differentiating, as eq. 12
    (``dV_j/do_k = V_j (delta_jk - V_k) / M``) does; it only rescales the
    logits so that a confident network's softmax does not saturate and its
    gradient vanish (the paper's §III-F). Where all logits are 0, M is taken
    as 1 (the softmax is uniform either way). The paper's saliency pixels
    (eq. 11) are ``saliency(...) >= 0``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits (B, n). Run in eval mode here (its
        mode is restored); parameter gradients are left untouched.
    x : torch.Tensor, shape (B, ...)
        Inputs, e.g. (B, 3, 112, 112) coded flow images.
    target : int or LongTensor (B,), optional
        Class j per input; default: the predicted class (argmax of o), the
        class the paper explains.
    shrink : bool
        False gives the original map ``dS_j / dI`` of Simonyan et al. (eq. 4).

    Returns
    -------
    torch.Tensor, same shape and dtype as ``x``
        dV_j / dI per input element (per pixel and channel).
    """
    was_training = model.training
    model.eval()
    try:
        inputs = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(inputs)
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(f"model must return logits (B, n) for B = {x.shape[0]}, got {tuple(logits.shape)}")
            if shrink:
                scale = logits.detach().abs().amax(dim=1, keepdim=True)
                logits = logits / torch.where(scale > 0, scale, torch.ones_like(scale))
            scores = F.softmax(logits, dim=1)
            index = _target_index(target, logits)
            (grad,) = torch.autograd.grad(scores.gather(1, index[:, None]).sum(), inputs)
    finally:
        model.train(was_training)
    return grad


def _target_index(target: int | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    n_batch, n_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    index = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    if index.numel() == 1:
        index = index.expand(n_batch)
    if index.shape != (n_batch,) or bool(((index < 0) | (index >= n_classes)).any()):
        raise ValueError(f"target must be one class or one per input in 0..{n_classes - 1}, got {target!r}")
    return index
