"""LFM and CLFM CNN-LSTM networks of Choi & Song (2020).

A clip becomes a sequence of 24 landmark feature maps (Choi & Song 2020, eq. 1-2): 68x68 maps
(LFM) or 21x21 compact maps (CLFM). A VGG-style CNN (Table 1) turns each map
into the output of its first fully connected layer, FC1, and a one-layer LSTM
with 128 units (§III-B2) reads the 24 FC1 vectors. A linear layer on the last
hidden state gives the class scores.

Table 1, all convolutions 3x3 with stride 1 and zero padding 1, max pools 2x2
with stride 2:

- CLFM (21x21x1): 2 x conv/16, pool (21 -> 10, the odd row and column are
  dropped), 2 x conv/32, pool (10 -> 5), 3 x conv/64, flatten 64*5*5 = 1600,
  FC1 1600 -> 256, FC2 256 -> C.
- LFM (68x68 map resized to 224x224x1, as in the authors' earlier paper [2]):
  2 x conv/16, pool, 2 x conv/32, pool, 3 x conv/64, pool, 3 x conv/128, pool,
  3 x conv/128, pool, flatten 128*7*7 = 6272, FC1 6272 -> 1024, FC2 1024 -> C.

The paper names neither the activation nor any normalisation. Both nets use
ReLU after every convolution and after FC1, as in VGG [3], and have no batch
norm or dropout, because Table 1 lists none. Table 2's parameter counts match
Table 1 exactly with this layout: convolution and FC weights plus biases, no
other parameters. Convolutions use He initialisation (fan-out, zero bias), as
in torchvision's VGG; the paper does not say how it initialises them.

Training (§III-B) has two stages. The CNN is trained first on single maps,
each labelled with its clip's class; FC2 and its softmax exist only for this
stage (:attr:`ChoiSequence.AUX_PREFIXES`). Then the LSTM is trained on the FC1
features of the trained CNN. :meth:`ChoiSequence.forward` does not detach
the CNN, so freezing it in the second stage is up to the trainer.

Parameter counts (Table 2): the paper's numbers are for C = 7 classes (CK+).
Table 1 reproduces both CNN counts exactly. The CLFM LSTM count, 198,023, is
one 256 -> 128 LSTM with one bias per gate (Keras style) plus a 128 -> 7
classifier. ``torch.nn.LSTM`` keeps two bias vectors (``b_ih`` and ``b_hh``),
so it has 4 * 128 = 512 more parameters. The LFM LSTM count, 1,838,855, is
exactly two stacked 256-unit LSTM layers (Keras style) plus a 256 -> 7
classifier. This is most likely the LSTM of the earlier network [2]: §III-B3
says the single layer is what this paper adopts with CLFM.
``lfm(hidden=256, num_layers=2)`` builds that variant; the default is the
single 128-unit layer.

The paper gives no optimiser, learning rate, batch size or epoch count; the
stages of :data:`RECIPE_LFM` and :data:`RECIPE_CLFM` say what this
implementation chose.

References
----------
.. [1] D. Y. Choi, B. C. Song, "Facial micro-expression recognition using
   two-dimensional landmark feature maps", IEEE Access 8, pp. 121549-121563,
   2020. https://doi.org/10.1109/ACCESS.2020.3006958
.. [2] D. Y. Choi, D. H. Kim, B. C. Song, "Recognizing fine facial
   micro-expressions using two-dimensional landmark feature", ICIP 2018,
   pp. 1962-1966.
.. [3] K. Simonyan, A. Zisserman, "Very deep convolutional networks for
   large-scale image recognition", arXiv:1409.1556, 2014.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mepipe.featurestore.features import CLFM, LFM, FeatureDef

from ..inputs.maps import MiddleMaps
from ..inputs.sequences import EncodedSequences
from ..objectives import Classify, frame_logits, sequence_logits
from ..published import Published
from ..recipe import Optimiser, Recipe, TrainingStage, no_adaptation
from ..rules import MeanLogits
from .registry import register_model
from .sequence import SequenceHead

__all__ = [
    "CLFMNet",
    "ChoiSequence",
    "LFMNet",
    "RECIPE_CLFM",
    "RECIPE_LFM",
    "SEQUENCE_LENGTH",
    "clfm",
    "lfm",
    "parameter_counts",
]

CHOI_DOI = "10.1109/ACCESS.2020.3006958"

SEQUENCE_LENGTH = 24
"""§V-A: each clip gives 24 maps, the middle ones, repeat-padded when shorter
(:func:`mepipe.featurestore.views.middle_sequence`)."""

LFM_WIDTHS: tuple[int, ...] = (16, 32, 64, 128, 128)
"""Table 1 (LFM): filters of the five convolution blocks."""

LFM_DEPTHS: tuple[int, ...] = (2, 2, 3, 3, 3)
"""Table 1 (LFM): convolutions per block; every block ends in a 2x2 pool."""

CLFM_WIDTHS: tuple[int, ...] = (16, 32, 64)
"""Table 1 (CLFM): filters of the three convolution blocks."""

CLFM_DEPTHS: tuple[int, ...] = (2, 2, 3)
"""Table 1 (CLFM): convolutions per block; only the first two blocks end in a pool."""


_CHOI = "Choi & Song 2020"
_CHOI_CROSS = ("Choi used 130 CASME II clips in three classes; mepipe maps CASME II by megc-3 "
               "(disgust and repression negative)")


def _published(casme2: tuple[float, float], smic: tuple[float, float], composite: dict[str, tuple[float, float]],
               cross: tuple[tuple[float, float], tuple[float, float]]) -> tuple[Published, ...]:
    """Choi & Song's Table 3 (LOSO: accuracy, F1), Table 6 (MEGC 2019 composite and its parts: UF1, UAR) and
    Table 7 (cross-dataset, CASME II → SMIC-HS and back: F1, accuracy) for one of LFM or CLFM."""
    entries = [
        Published("casme2", "casme2-5", "loso", (("accuracy", casme2[0]), ("f1", casme2[1])), f"{_CHOI}, Table 3"),
        Published("smic", "megc-3", "loso", (("accuracy", smic[0]), ("f1", smic[1])), f"{_CHOI}, Table 3",
                  note="SMIC-HS in its own three classes (megc-3 keeps them as labelled)"),
    ]
    entries += [Published("composite", "megc-3", "megc2019", (("uf1", uf1), ("uar", uar)), f"{_CHOI}, Table 6",
                          part=None if part == "composite" else part) for part, (uf1, uar) in composite.items()]
    to_smic, to_casme2 = cross
    entries += [
        Published("smic", "megc-3", "cross", (("f1", to_smic[0]), ("accuracy", to_smic[1])), f"{_CHOI}, Table 7",
                  train_corpus="casme2", note=_CHOI_CROSS),
        Published("casme2", "megc-3", "cross", (("f1", to_casme2[0]), ("accuracy", to_casme2[1])),
                  f"{_CHOI}, Table 7", train_corpus="smic", note=_CHOI_CROSS),
    ]
    return tuple(entries)


def _recipe(feature: FeatureDef, adapt, min_input_shape: tuple[int, ...], published: tuple[Published, ...],
            quick: tuple) -> Recipe:
    """Choi's two stages (§III-C): the CNN on single maps of the middle window, then the LSTM on its FC1.

    The network is named after the maps it reads (``lfm``, ``clfm``).
    """
    return Recipe(
        name=feature.name,
        doi=CHOI_DOI,
        stages=(
            TrainingStage(
                name="cnn",
                items=MiddleMaps(feature, SEQUENCE_LENGTH),
                objective=Classify(forward=frame_logits),  # each map labelled with its clip's class
                # Not in the paper: Adam at 1e-4 and 32 maps per batch; a 13-layer VGG without batch norm
                # trained from scratch needs a small step size.
                optimiser=Optimiser("adam", lr=1e-4, batch_size=32),
                epochs=30,  # not in the paper; the other networks' default
                trains="cnn",
                predict=MeanLogits(forward=frame_logits, measured_on="mean logits of the maps"),
            ),
            TrainingStage(
                name="sequence",
                items=EncodedSequences(feature, window=SEQUENCE_LENGTH),
                objective=Classify(forward=sequence_logits),
                optimiser=Optimiser("adam", lr=1e-3, batch_size=16),  # not in the paper
                epochs=30,  # not in the paper
                trains="temporal",
                predict=MeanLogits(forward=sequence_logits, measured_on="the LSTM over the middle maps"),
            ),
        ),
        adapt=adapt,
        min_input_shape=min_input_shape,
        published=published,
        quick=quick,
    )


def _adapt_clfm(geometry) -> dict:
    """The CLFM CNN takes maps of the stored number of points (21 by default, ``lfm.clfm_points``)."""
    side = geometry.size(CLFM, "i")
    if side < 4:
        raise geometry.refuse("the CLFM CNN needs maps of at least 4 points (two 2x2 pools)", (CLFM, "i"))
    return {"input_size": side}


RECIPE_LFM = _recipe(
    LFM, no_adaptation, (1, 1, 68, 68),
    _published(casme2=(0.7398, 0.7165), smic=(0.7134, 0.7134),
               composite={"composite": (0.77, 0.75), "smic": (0.72, 0.71), "casme2": (0.87, 0.84),
                          "samm": (0.67, 0.60)},
               cross=((0.5876, 0.5854), (0.6066, 0.6357))),
    # --quick: LFM's VGG13 is the costliest CNN (its widths are fixed): maps at 32x32, two epochs.
    (("epochs", 2), ("temporal_epochs", 8), ("model_args", (("input_size", 32), ("hidden", 32)))))
"""The LFM network reads ``lfm`` (n_maps, 68, 68) per clip as (24, 1, 68, 68) float maps and resizes each
map to 224x224 itself, so it takes the stored size as it is."""

RECIPE_CLFM = _recipe(
    CLFM, _adapt_clfm, (1, 1, 21, 21),
    _published(casme2=(0.7154, 0.7026), smic=(0.7134, 0.7134),
               composite={"composite": (0.75, 0.72), "smic": (0.71, 0.71), "casme2": (0.72, 0.77),
                          "samm": (0.65, 0.51)},
               cross=((0.4978, 0.5549), (0.5779, 0.6279))),
    (("epochs", 8), ("temporal_epochs", 15), ("model_args", (("hidden", 32),))))
"""The CLFM network reads ``clfm`` (n_maps, K, K) per clip as (24, 1, K, K) float maps, K = 21."""


def _vgg_blocks(in_chans: int, widths: Sequence[int], depths: Sequence[int], pools: Sequence[bool]) -> nn.Sequential:
    """3x3 'same' convolutions with ReLU, grouped into blocks, each optionally followed by a 2x2 max pool."""
    layers: list[nn.Module] = []
    channels = in_chans
    for width, depth, pool in zip(widths, depths, pools):
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        if pool:
            layers.append(nn.MaxPool2d(2, stride=2))
    return nn.Sequential(*layers)


def _init_convs(module: nn.Module) -> None:
    """He-normal (fan-out) convolution weights and zero biases, as in torchvision's VGG."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _check_sizes(num_classes: int, in_chans: int, widths: tuple[int, ...], depths: tuple[int, ...],
                 fc_dim: int) -> None:
    if num_classes < 2 or in_chans < 1 or fc_dim < 1 or not widths or min(widths) < 1:
        raise ValueError(
            f"need num_classes >= 2, in_chans >= 1, fc_dim >= 1 and positive widths; got num_classes={num_classes}, "
            f"in_chans={in_chans}, fc_dim={fc_dim}, widths={widths}"
        )
    if len(depths) != len(widths) or min(depths) < 1:
        raise ValueError(f"need one positive depth per width, got widths={widths} and depths={depths}")


class _MapCNN(nn.Module):
    """What both Choi CNNs share: ``prepare`` the maps, convolutions, FC1 (+ReLU) as the feature, FC2 logits."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """FC1 output after ReLU, (N, fc_dim): the per-map feature the LSTM reads."""
        return F.relu(self.fc1(self.conv(self.prepare(x)).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """FC2 logits (N, num_classes) of single maps (stage-1 training)."""
        return self.fc2(self.features(x))


class CLFMNet(_MapCNN):
    """CNN of Table 1 (right) for 21x21 compact landmark feature maps.

    Parameters
    ----------
    num_classes : int
        C, the number of classes (FC2 outputs).
    in_chans : int
        Input channels (1: the map).
    widths : sequence of int
        Filters of the three convolution blocks (Table 1: 16, 32, 64).
    depths : sequence of int
        Convolutions per block (Table 1: 2, 2, 3).
    fc_dim : int
        Width of FC1, the feature given to the LSTM (Table 1: 256).
    input_size : int
        Side of the square input (21). After the two pools the side is
        ``input_size // 4`` (21 -> 10 -> 5), so FC1 reads
        ``widths[-1] * (input_size // 4) ** 2`` values (1600).

    Notes
    -----
    Input: float tensor (N, in_chans, input_size, input_size). :meth:`forward`
    returns FC2 logits (N, num_classes). :meth:`features` returns FC1 after
    its ReLU, (N, fc_dim).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 1,
        widths: Sequence[int] = CLFM_WIDTHS,
        depths: Sequence[int] = CLFM_DEPTHS,
        fc_dim: int = 256,
        input_size: int = 21,
    ) -> None:
        super().__init__()
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        _check_sizes(num_classes, in_chans, widths, depths, fc_dim)
        side = input_size // 2 ** 2
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for two 2x2 pools; use at least 4")
        self.in_chans, self.input_size, self.fc_dim = in_chans, input_size, fc_dim
        pools = [True, True] + [False] * (len(widths) - 2)  # Table 1: no pool after the last block
        self.conv = _vgg_blocks(in_chans, widths, depths, pools)
        self.flat_dim = widths[-1] * side * side
        self.fc1 = nn.Linear(self.flat_dim, fc_dim)
        self.fc2 = nn.Linear(fc_dim, num_classes)
        _init_convs(self)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check that maps are (N, in_chans, input_size, input_size); CLFM maps go in as stored."""
        expected = (self.in_chans, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"CLFMNet expects input (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return x


class LFMNet(_MapCNN):
    """VGG13-style CNN of Table 1 (left) for 68x68 landmark feature maps resized to 224x224.

    Parameters
    ----------
    num_classes : int
        C, the number of classes (FC2 outputs).
    in_chans : int
        Input channels (1: the map).
    widths : sequence of int
        Filters of the five convolution blocks (Table 1: 16, 32, 64, 128, 128).
    depths : sequence of int
        Convolutions per block (Table 1: 2, 2, 3, 3, 3). Every block ends in
        a 2x2 max pool.
    fc_dim : int
        Width of FC1, the feature given to the LSTM (Table 1: 1024).
    input_size : int
        Side the maps are resized to before the first convolution (224).
        FC1 reads ``widths[-1] * (input_size // 2 ** len(widths)) ** 2``
        values (128 * 7 * 7 = 6272).

    Notes
    -----
    Input: float tensor (N, in_chans, H, W) of any size. The stored maps are
    68x68. Inputs not already ``input_size`` square are resized bilinearly
    (``align_corners=False``) inside :meth:`features`, so the stored maps go
    in directly. :meth:`forward` returns FC2 logits (N, num_classes).
    :meth:`features` returns FC1 after its ReLU, (N, fc_dim).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 1,
        widths: Sequence[int] = LFM_WIDTHS,
        depths: Sequence[int] = LFM_DEPTHS,
        fc_dim: int = 1024,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        _check_sizes(num_classes, in_chans, widths, depths, fc_dim)
        side = input_size // 2 ** len(widths)
        if side < 1:
            raise ValueError(
                f"input_size {input_size} is too small for {len(widths)} 2x2 pools; use at least {2 ** len(widths)}"
            )
        self.in_chans, self.input_size, self.fc_dim = in_chans, input_size, fc_dim
        self.conv = _vgg_blocks(in_chans, widths, depths, [True] * len(widths))
        self.flat_dim = widths[-1] * side * side
        self.fc1 = nn.Linear(self.flat_dim, fc_dim)
        self.fc2 = nn.Linear(fc_dim, num_classes)
        _init_convs(self)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear resize of (N, C, H, W) maps to (N, C, input_size, input_size); a no-op at that size."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"LFMNet expects input (N, {self.in_chans}, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[2:]) == (self.input_size, self.input_size):
            return x
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)

    prepare = resize


class ChoiSequence(nn.Module):
    """CNN per map, then an LSTM over the FC1 features of a clip's maps (Choi Fig. 2).

    Parameters
    ----------
    cnn : CLFMNet or LFMNet
        The per-map encoder. It must have ``features(x) -> (N, fc_dim)``, a
        ``forward`` that returns logits, and an ``fc_dim`` attribute.
    num_classes : int
        C, the number of classes.
    hidden : int
        LSTM units (§III-B2: 128).
    num_layers : int
        Stacked LSTM layers (§III-B3: one).

    Attributes
    ----------
    cnn : nn.Module
    temporal : SequenceHead
        ``SequenceHead(cnn.fc_dim, hidden, num_layers, num_classes)``: the LSTM
        and the classifier on the hidden state of the last valid step.
    AUX_PREFIXES : tuple of str
        Prefixes of parameter names used only in stage 1 (the CNN's FC2).
        :meth:`forward` does not use them, so they get no gradient there.

    Notes
    -----
    :meth:`forward` takes float maps (B, T, C, H, W) and optional lengths (B,)
    for right-padded sequences, and returns logits (B, num_classes). Every map
    goes through the CNN independently (it has no batch statistics), so padded
    steps do not change the valid ones.
    """

    AUX_PREFIXES: tuple[str, ...] = ("cnn.fc2",)
    """Prefixes of the parameter names trained in stage 1 only (the CNN's FC2)."""

    def __init__(self, cnn: nn.Module, num_classes: int, hidden: int = 128, num_layers: int = 1) -> None:
        super().__init__()
        if hidden < 1 or num_layers < 1:
            raise ValueError(f"need hidden >= 1 and num_layers >= 1, got hidden={hidden}, num_layers={num_layers}")
        self.cnn = cnn
        self.temporal = SequenceHead(cnn.fc_dim, hidden, num_layers, num_classes, cell="lstm")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """FC1 features (N, fc_dim) of single maps (N, C, H, W)."""
        return self.cnn.features(x)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The CNN's own FC2 logits (N, num_classes) of single maps (N, C, H, W), for stage-1 training."""
        return self.cnn(x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Clip logits (B, num_classes) from sequences of maps (B, T, C, H, W).

        ``lengths`` (B,), if given, are the true sequence lengths (1..T) of
        right-padded sequences. The LSTM output at step ``lengths[b] - 1`` is
        classified.
        """
        if x.ndim != 5:
            raise ValueError(f"ChoiSequence expects maps (B, T, C, H, W), got {tuple(x.shape)}")
        batch, steps = x.shape[:2]
        feats = self.encode(x.flatten(0, 1)).unflatten(0, (batch, steps))
        return self.temporal(feats, lengths)


def parameter_counts(model: ChoiSequence) -> dict[str, int]:
    """Parameters of the CNN, the temporal part and both, for comparison with Choi Table 2.

    ``cnn`` includes FC2, as Table 2 does. ``temporal`` is the LSTM and its
    classifier. ``torch.nn.LSTM`` has two bias vectors per layer where Table 2
    counts one, so ``temporal`` is ``4 * hidden * num_layers`` above the
    paper's count for the same layout.

    Returns
    -------
    dict
        ``{"cnn": int, "temporal": int, "total": int}``.
    """
    cnn = sum(p.numel() for p in model.cnn.parameters())
    temporal = sum(p.numel() for p in model.temporal.parameters())
    return {"cnn": cnn, "temporal": temporal, "total": cnn + temporal}


@register_model(RECIPE_LFM.name, recipe=RECIPE_LFM)
def lfm(num_classes: int = 3, in_chans: int = 1, hidden: int = 128, input_size: int = 224,
        num_layers: int = 1) -> ChoiSequence:
    """LFM network: :class:`LFMNet` (68x68 maps resized to ``input_size``) and an LSTM.

    ``hidden=256, num_layers=2`` gives the LSTM that Table 2 counts for LFM
    (see the module docstring).
    """
    return ChoiSequence(LFMNet(num_classes, in_chans, input_size=input_size), num_classes, hidden, num_layers)


@register_model(RECIPE_CLFM.name, recipe=RECIPE_CLFM)
def clfm(num_classes: int = 3, in_chans: int = 1, hidden: int = 128, num_layers: int = 1,
         input_size: int = 21) -> ChoiSequence:
    """CLFM network: :class:`CLFMNet` on 21x21 maps and a one-layer, 128-unit LSTM (Table 1, §III-B)."""
    return ChoiSequence(CLFMNet(num_classes, in_chans, input_size=input_size), num_classes, hidden, num_layers)
