"""On-the-fly augmentation of training items and batches.

The papers enlarge each training clip with a grid of variants and train
epochs over the enlarged set: Kim et al. 2017 (§3.1) 150 flipped, rotated,
shifted and scaled copies, Xia et al. 2019 (§III-E) ten magnification
factors α ∈ {5, …, 14} times five random frame subsets keeping
100/90/80/70/60 % of the frames. Xia's grid is the store's: its α list and
test α are the ``magnify`` stage's recorded parameters
(:class:`Magnification`), its subset levels those of the stage that wrote
the frame subsets (:func:`recorded_subset_levels`); training never restates
them. Here the variants are drawn on the fly: :class:`AugmentedEpochs`
(with :class:`~mepipe.train.inputs.base.VariantSampler`) makes an epoch
every training clip under every variant of its grid (or the ``variants``
run option's share of it), and

- **Kim** (and Nag): :func:`grid_transform` applies each item's variant of
  :class:`AffineAugmentParams`' grid to a batch, the same transform to every
  frame of a sequence (:func:`affine_augment` draws one per item);
- **STRCN-A**: the dataset cuts each item from the clip magnified with its
  variant's α and keeps a random subset of its frames
  (:func:`draw_frame_subset`) before time normalisation
  (:class:`~mepipe.train.inputs.appearance.AppearanceDataset`);
- **SHCNN**: Miao et al. use no augmentation for micro-expressions; none.

The ways before issue 14 stay as recipe options: STRCN-A's random subset
of the time-normalised matrix's columns (:func:`frame_subset`), and
STRCN-G's emulation of α on a store holding one onset→apex flow of the
unmagnified crops: in the linear regime of Eulerian magnification a
displacement δ becomes (1 + α) δ, so each field is scaled by
(1 + α_k) / (1 + α_ref) with α_ref the mean of the store's α list
(:func:`magnification_scale`); frame subsets have no counterpart there.

Random draws come from a CPU generator seeded per fold (reproducible on any
device), or from the seed a :data:`~mepipe.train.inputs.base.Draw` carries; the
arithmetic runs on the batch's device.

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng and G. Zhao, "Spatiotemporal Recurrent
   Convolutional Networks for Recognizing Spontaneous Micro-Expressions,"
   IEEE Trans. Multimedia 22(3), 2020. doi:10.1109/TMM.2019.2931351
.. [2] D. H. Kim, W. J. Baddar, J. Jang, Y. M. Ro, "Multi-objective based
   spatio-temporal feature representation learning robust to expression
   intensity variations for facial expression recognition", IEEE Trans.
   Affective Computing, 2017. doi:10.1109/TAFFC.2017.2699999
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from mepipe.featurestore.features import MAGNIFIED_SMALL, SUBSET_FRAMES, test_alpha_index

from .recipe import RecipeOption, RunOptions

if TYPE_CHECKING:
    from .clips import ClipTable

Augmenter = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A batch transform ``(x, generator) -> x`` applied to training batches only."""

VARIANTS = RecipeOption(
    "variants", 0, low=0,
    help="variants of the augmentation grid each training clip is seen under per epoch; 0 (default) = every "
         "variant, the paper's epoch over its augmented training set (fewer = a shorter epoch)")
"""How much of a grid an augmented epoch covers (:class:`AugmentedEpochs`), shared by the recipes that have one."""


@dataclass(frozen=True)
class AugmentedEpochs:
    """Epochs over a paper's augmented training set: every clip under every variant of a grid, drawn on the fly.

    Kim (§3.1) trains on 150 affine variants of every clip, Xia (§III-E) on 10
    α × 5 frame subsets; their epochs (and Xia's per-epoch learning-rate
    decay) run over that enlarged set. Here an epoch is every training clip
    under ``variants`` distinct variants of the grid, drawn without
    replacement and in random order (:class:`~mepipe.train.inputs.base.VariantSampler`);
    with the default 0 that is every variant, the paper's epoch.

    Attributes
    ----------
    variants : RecipeOption
        The run option of variants per clip and epoch.
    switch : RecipeOption, optional
        A recipe option that chooses between these epochs (value ``on``) and
        the recipe's earlier augmentation (any other value).
    on : str
    """

    variants: RecipeOption = VARIANTS
    switch: RecipeOption | None = None
    on: str | None = None

    def active(self, options: RunOptions) -> bool:
        """Whether the run trains augmented epochs (it augments, and the switch, if any, chooses them)."""
        return options.augment and (self.switch is None or options.choice(self.switch) == self.on)

    def per_clip(self, options: RunOptions, grid_size: int) -> int:
        """Variants of each training clip per epoch; 0 when the run trains no augmented epochs."""
        if not self.active(options) or grid_size < 1:
            return 0
        wanted = int(options.choice(self.variants))
        return grid_size if wanted == 0 else min(wanted, grid_size)


@dataclass(frozen=True)
class Magnification:
    """Xia's magnification factors as a store's ``magnify`` stage recorded them.

    Attributes
    ----------
    alphas : tuple of float
        The α list, in the order of the ``alpha`` dim of ``magnified_small``
        and ``flow_onset_apex_magnified`` (Xia: 5..14).
    test_alpha : float
        The α of test inputs, heat maps and ``appearance_frames`` (Xia: 8).
    """

    alphas: tuple[float, ...]
    test_alpha: float

    @property
    def test_index(self) -> int:
        """Position of the test α along the ``alpha`` dim."""
        return test_alpha_index({MAGNIFIED_SMALL.stage: {"alphas": self.alphas, "test_alpha": self.test_alpha}})

    @classmethod
    def recorded(cls, clips: ClipTable, reader: str) -> Magnification:
        """The run's stores' α list and test α (every store must record the same); ``reader`` names who asks."""
        params = clips.stage_params(MAGNIFIED_SMALL.stage, reader)
        return cls(tuple(float(a) for a in params["alphas"]), float(params["test_alpha"]))


def recorded_subset_levels(clips: ClipTable, reader: str) -> tuple[float, ...]:
    """Xia's frame-subset fractions as the run's stores recorded them (the stage writing ``subset_frames``).

    Raises
    ------
    MissingStageError
        A store has no record of that stage; the message names ``reader``
        and the build command.
    """
    return tuple(float(f) for f in clips.stage_params(SUBSET_FRAMES.stage, reader)["subset_levels"])


def draw_frame_subset(n_frames: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Xia's random frame subset (§III-E): ``max(2, round(fraction * T))`` of T frames, drawn without replacement.

    Returns
    -------
    ndarray of int64
        The kept frame indices in increasing order (every frame for ``fraction`` 1).
    """
    if n_frames < 1 or not 0 < fraction <= 1:
        raise ValueError(f"need n_frames >= 1 and a fraction in (0, 1], got {n_frames} and {fraction!r}")
    count = min(n_frames, max(2, int(round(fraction * n_frames))))
    if count == n_frames:
        return np.arange(n_frames)
    return np.sort(rng.choice(n_frames, size=count, replace=False))


def magnification_scale(x: torch.Tensor, generator: torch.Generator, alphas: Sequence[float]) -> torch.Tensor:
    """Scale each flow field by (1 + α_k) / (1 + mean α), α_k drawn per item from ``alphas``.

    Parameters
    ----------
    x : Tensor, shape (B, 2, H, W)
    generator : torch.Generator
        CPU generator for the draws.
    alphas : sequence of float
        The store's α list (:class:`Magnification`).
    """
    alphas = torch.tensor(tuple(alphas), dtype=torch.float32)
    pick = torch.randint(len(alphas), (x.shape[0],), generator=generator)
    factor = (1.0 + alphas[pick]) / (1.0 + alphas.mean())
    return x * factor.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))


def frame_subset(x: torch.Tensor, generator: torch.Generator, keep_fractions: Sequence[float]) -> torch.Tensor:
    """Keep a random, ordered subset of the time columns and resample it back to T.

    Parameters
    ----------
    x : Tensor, shape (B, C, d2, T)
        Appearance matrices, time along the last axis.
    generator : torch.Generator
        CPU generator for the draws.
    keep_fractions : sequence of float
        The store's frame-subset fractions (:func:`recorded_subset_levels`).

    Returns
    -------
    Tensor, same shape
        Item b keeps ``max(2, round(f_b T))`` columns, f_b drawn from
        ``keep_fractions``; the first and last kept columns map to the first
        and last output columns (linear interpolation, as the time
        normalisation of the store).
    """
    n_time = x.shape[-1]
    fractions = torch.tensor(tuple(keep_fractions), dtype=torch.float64)
    picks = torch.randint(len(fractions), (x.shape[0],), generator=generator)
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        keep = min(n_time, max(2, int(round(float(fractions[picks[b]]) * n_time))))
        if keep == n_time:
            out[b] = x[b]
            continue
        columns = torch.randperm(n_time, generator=generator)[:keep].sort().values.to(x.device)
        out[b] = F.interpolate(x[b].index_select(-1, columns), size=n_time, mode="linear", align_corners=True)
    return out


# --- Kim et al. 2017 (§3.1): flips, rotations, shifts and scales ------------------------------


@dataclass(frozen=True)
class AffineAugmentParams:
    """Geometric augmentation grid of Kim et al. (2017, §3.1): 2 x 5 x 5 x 3 = 150 variants.

    Each training sequence is mirrored or not, rotated, shifted and scaled,
    one variant for all its frames, drawn on the fly rather than stored as
    the paper's 150 copies (:class:`AugmentedEpochs`). Nag et al. (2019)
    apply the same kind of augmentation to frames and optical flow.

    Attributes
    ----------
    flip : bool
        Include horizontally mirrored variants (doubles the grid).
    angles : tuple of float
        Rotation angles in degrees, positive = counter-clockwise on screen
        (Kim: -10..10 in steps of 5).
    shifts : tuple of (float, float)
        Translations (dx, dy) in pixels of the input grid, +dx to the right,
        +dy down (Kim: (0, 0) and (+-2, +-2)).
    scales : tuple of float
        Zoom factors about the image centre, > 1 enlarges (Kim: 0.9, 1.0, 1.1).

    References
    ----------
    .. [1] D. H. Kim, W. J. Baddar, J. Jang, Y. M. Ro, "Multi-objective based
       spatio-temporal feature representation learning robust to expression
       intensity variations for facial expression recognition", IEEE Trans.
       Affective Computing, 2017. doi:10.1109/TAFFC.2017.2699999
    """

    flip: bool = True
    angles: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0)
    shifts: tuple[tuple[float, float], ...] = ((0.0, 0.0), (-2.0, -2.0), (-2.0, 2.0), (2.0, -2.0), (2.0, 2.0))
    scales: tuple[float, ...] = (0.9, 1.0, 1.1)

    def __post_init__(self) -> None:
        if not self.angles or not self.shifts or not self.scales:
            raise ValueError(f"angles, shifts and scales must be non-empty, got {self!r}")
        if any(len(shift) != 2 for shift in self.shifts):
            raise ValueError(f"shifts must be (dx, dy) pairs, got {self.shifts!r}")
        if min(self.scales) <= 0:
            raise ValueError(f"scales must be > 0, got {self.scales!r}")

    @property
    def n_variants(self) -> int:
        """Size of the grid: (2 if flip else 1) x angles x shifts x scales."""
        return (2 if self.flip else 1) * len(self.angles) * len(self.shifts) * len(self.scales)


def affine_variants(params: AffineAugmentParams = AffineAugmentParams()) -> tuple[
        tuple[bool, float, tuple[float, float], float], ...]:
    """Every (flip, angle, (dx, dy), scale) of the grid, in a fixed order; ``params.n_variants`` of them."""
    flips = (False, True) if params.flip else (False,)
    return tuple(
        (flip, float(angle), (float(shift[0]), float(shift[1])), float(scale))
        for flip in flips for angle in params.angles for shift in params.shifts for scale in params.scales
    )


def affine_augment(x: torch.Tensor, generator: torch.Generator,
                   params: AffineAugmentParams = AffineAugmentParams(),
                   vector_channels: tuple[int, int] | None = None) -> torch.Tensor:
    """Apply one random variant of Kim's grid to each item (each image, or each whole sequence).

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W) or (B, T, C, H, W), floating point
        Images, or sequences of frames; a sequence gets the same transform on
        all its frames.
    generator : torch.Generator
        CPU generator for the draws (one uniform draw among the
        ``params.n_variants`` variants per item).
    params : AffineAugmentParams
    vector_channels : (int, int), optional
        Channels (u, v) of x holding a flow field in pixels (u along x, v
        along y); they are transformed as vectors (see :func:`affine_transform`).

    Returns
    -------
    Tensor, same shape, dtype and device as x
    """
    if x.ndim not in (4, 5):
        raise ValueError(f"x must be (B, C, H, W) or (B, T, C, H, W), got {tuple(x.shape)}")
    variants = affine_variants(params)
    picks = torch.randint(len(variants), (x.shape[0],), generator=generator).tolist()
    chosen = [variants[k] for k in picks]
    return affine_transform(
        x,
        flip=torch.tensor([v[0] for v in chosen], dtype=torch.bool),
        angle=torch.tensor([v[1] for v in chosen], dtype=torch.float64),
        shift=torch.tensor([v[2] for v in chosen], dtype=torch.float64).reshape(-1, 2),
        scale=torch.tensor([v[3] for v in chosen], dtype=torch.float64),
        vector_channels=vector_channels,
    )


def grid_transform(x: torch.Tensor, variant: torch.Tensor, params: AffineAugmentParams = AffineAugmentParams(),
                   vector_channels: tuple[int, int] | None = None) -> torch.Tensor:
    """Each item of x under its own variant of the grid; items with variant -1 are returned unchanged.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W) or (B, T, C, H, W), floating point
    variant : LongTensor, shape (B,)
        Index into :func:`affine_variants` of each item, or -1.
    params : AffineAugmentParams
    vector_channels : (int, int), optional
        See :func:`affine_transform`.

    Returns
    -------
    Tensor, same shape, dtype and device as x
    """
    variant = torch.as_tensor(variant, dtype=torch.long).cpu().reshape(-1)
    if variant.shape != (x.shape[0],):
        raise ValueError(f"need one variant per item (B = {x.shape[0]}), got {tuple(variant.shape)}")
    variants = affine_variants(params)
    if bool((variant >= len(variants)).any()) or bool((variant < -1).any()):
        raise ValueError(f"variants must lie in -1..{len(variants) - 1}, got {sorted(set(variant.tolist()))}")
    chosen = variant >= 0
    if not bool(chosen.any()):
        return x
    picked = [variants[int(v)] for v in variant[chosen]]
    out = x.clone()
    index = torch.nonzero(chosen).flatten().to(x.device)
    out[index] = affine_transform(
        x[index],
        flip=torch.tensor([v[0] for v in picked], dtype=torch.bool),
        angle=torch.tensor([v[1] for v in picked], dtype=torch.float64),
        shift=torch.tensor([v[2] for v in picked], dtype=torch.float64).reshape(-1, 2),
        scale=torch.tensor([v[3] for v in picked], dtype=torch.float64),
        vector_channels=vector_channels,
    )
    return out


def affine_transform(x: torch.Tensor, flip: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor,
                     scale: torch.Tensor, vector_channels: tuple[int, int] | None = None) -> torch.Tensor:
    """Mirror, rotate, scale and shift each item of x by its own parameters.

    In pixel coordinates centred on the image (x right, y down) a point p of
    the input moves to ``L p + t`` with ``L = s R M``: M mirrors x when
    ``flip``, R rotates by ``angle`` degrees counter-clockwise on screen, s is
    ``scale`` and t = ``shift`` (dx, dy). Output pixels are sampled from the
    input at ``L^-1 (p - t)`` by bilinear interpolation (``grid_sample``),
    replicating edge pixels outside the image (border padding).

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W) or (B, T, C, H, W), floating point
        With a time axis, item b's transform is applied to all its T frames.
    flip : BoolTensor, shape (B,)
    angle : Tensor, shape (B,)
        Degrees, counter-clockwise on screen.
    shift : Tensor, shape (B, 2)
        (dx, dy) in pixels, +dx right, +dy down.
    scale : Tensor, shape (B,)
        Zoom factor about the image centre, > 0.
    vector_channels : (int, int), optional
        Channels (u, v) of a displacement field in pixels. After the warp the
        vectors are mapped by L as well (a displacement d becomes ``L d``: the
        flip negates u, the rotation turns (u, v), the scale multiplies the
        length), so a flow field stays consistent with the warped frames.

    Returns
    -------
    Tensor, same shape, dtype and device as x
    """
    if x.ndim not in (4, 5):
        raise ValueError(f"x must be (B, C, H, W) or (B, T, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point for interpolation, got {x.dtype}; convert it with x.float()")
    n_items, n_chans, height, width = x.shape[0], x.shape[-3], x.shape[-2], x.shape[-1]
    flip = torch.as_tensor(flip, dtype=torch.bool).cpu().reshape(-1)
    angle = torch.as_tensor(angle, dtype=torch.float64).cpu().reshape(-1)
    scale = torch.as_tensor(scale, dtype=torch.float64).cpu().reshape(-1)
    shift = torch.as_tensor(shift, dtype=torch.float64).cpu().reshape(-1, 2)
    if not all(len(p) == n_items for p in (flip, angle, scale, shift)):
        raise ValueError(f"need one flip, angle, shift and scale per item (B = {n_items}), got "
                         f"{len(flip)}, {len(angle)}, {len(shift)}, {len(scale)}")
    if bool((scale <= 0).any()):
        raise ValueError(f"scale must be > 0, got {scale.tolist()}")
    if vector_channels is not None:
        u_chan, v_chan = (int(c) for c in vector_channels)
        if u_chan == v_chan or not (0 <= u_chan < n_chans and 0 <= v_chan < n_chans):
            raise ValueError(f"vector_channels must be two distinct channels in 0..{n_chans - 1}, "
                             f"got {vector_channels!r}")
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    mirror = 1.0 - 2.0 * flip.to(torch.float64)
    # L = s R M with R = [[cos, sin], [-sin, cos]] (counter-clockwise on screen, y down), M = diag(mirror, 1).
    forward = scale[:, None, None] * torch.stack(
        [torch.stack([cos * mirror, sin], -1), torch.stack([-sin * mirror, cos], -1)], -2)
    inverse = torch.linalg.inv(forward)
    # affine_grid works in coordinates normalised by the image size: p_norm = D p_pixel (align_corners=False).
    norm = torch.diag(torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64))
    denorm = torch.diag(torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64))
    theta = torch.cat([norm @ inverse @ denorm, (norm @ (-inverse @ shift[:, :, None]))], dim=2)
    n_frames = x.shape[1] if x.ndim == 5 else 1
    frames = x.reshape(n_items * n_frames, n_chans, height, width)
    theta = theta.repeat_interleave(n_frames, dim=0).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if vector_channels is not None:
        vectors = out[:, [u_chan, v_chan]]
        linear = forward.repeat_interleave(n_frames, dim=0).to(device=x.device, dtype=x.dtype)
        turned = torch.einsum("nij,njhw->nihw", linear, vectors)
        out[:, u_chan], out[:, v_chan] = turned[:, 0], turned[:, 1]
    return out.reshape(x.shape)
