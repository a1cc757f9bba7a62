"""Appearance matrices: STRCN-A's masked matrices of the magnified clip, (C, d2, T) per clip (Xia §III-C1)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mepipe.featurestore.features import APPEARANCE_FRAMES, APPEARANCE_MASK, HEATMAP, MAGNIFIED_SMALL
from mepipe.featurestore.views import appearance_matrix, build_mask, time_normalise

from ..augment import AugmentedEpochs, draw_frame_subset, recorded_subset_levels
from ..recipe import RecipeOption
from .base import ClipReader, Clips, Standardiser, StoreDataset, standardise, variant_loader

if TYPE_CHECKING:
    from ..fold import FoldInputs

__all__ = ["MASK", "AppearanceDataset", "AppearanceMatrices", "fold_mask"]

MASK = RecipeOption(
    "mask", "fold", values=("fold", "global"),
    help="clips the STRCN-A mask is fitted on: fold (default, leak-free) the heat maps of each fold's training "
         "clips; global (Xia et al.) those of every clip, test clips included")
"""Which clips' heat maps make the mask (the paper's way, ``global``, lets the test clips shape it)."""


class AppearanceDataset(StoreDataset):
    """STRCN-A input: masked appearance matrix of each clip, as a (C, d2, T) float32 image.

    The matrix is :func:`~mepipe.featurestore.views.appearance_matrix` of the
    stored ``appearance_frames`` (magnified clip, time-normalised to T frames)
    under ``mask``, transposed so that the masked pixels run down the rows
    and time across the columns (Xia §III-C1).

    Under a variant (a :data:`~mepipe.train.inputs.base.Draw`), the item is
    Xia's augmentation (§III-E): variant ``a * K + k`` takes the clip
    magnified with the store's α number ``a`` (``magnified_small``), keeps a
    random subset of its frames of the fraction ``keep_fractions[k]`` (drawn
    with the draw's seed, :func:`~mepipe.train.augment.draw_frame_subset`)
    and time-normalises the kept frames to T. :attr:`n_variants` is the
    grid's size.

    Parameters
    ----------
    clips, samples, labels, standardiser
        See :class:`~mepipe.train.inputs.base.StoreDataset`.
    mask : ndarray, shape (H, W), bool
        From :func:`fold_mask` (built from the training clips of the fold).
    in_memory : bool
    random_alpha : bool
        Items asked for by index are cut from a random α's clip (the
        augmentation before issue 14, ``--recipe-option augmentation=columns``);
        without several stored α it does nothing.
    keep_fractions : tuple of float
        Xia's frame-subset fractions (the store's subset levels); needed for variants.
    seed : int
        Seed of the random α choice.
    shared : dict, optional
        In-memory arrays shared across folds (see :class:`~mepipe.train.inputs.base.ClipReader`).
    variants : bool
        Items may be asked for under a variant (reads ``magnified_small``).
    """

    def __init__(self, clips: Clips, samples: Sequence[str], labels: Sequence[int], *, mask: np.ndarray,
                 in_memory: bool = False, standardiser: Standardiser | None = None, random_alpha: bool = False,
                 keep_fractions: Sequence[float] = (), seed: int = 0, shared: dict | None = None,
                 variants: bool = False):
        super().__init__(clips, samples, labels, standardiser=standardiser)
        if variants and not keep_fractions:
            raise ValueError("AppearanceDataset: variants need the frame-subset fractions (keep_fractions)")
        io = {"in_memory": in_memory, "shared": shared}
        self.reader = ClipReader(self.clips, APPEARANCE_FRAMES.name, self.samples, **io)
        self.mask = np.asarray(mask, dtype=bool)
        self.n_alphas = 0
        if self.samples:
            shape = self.clips.shape(APPEARANCE_FRAMES.name, self.samples[0])
            if tuple(shape[1:3]) != self.mask.shape:
                raise ValueError(f"mask shape {self.mask.shape} does not match {APPEARANCE_FRAMES.name} "
                                 f"{shape[1:3]} of clip {self.samples[0]!r}")
            self.n_time = int(shape[0])
            self.n_alphas = int(self.clips.shape(MAGNIFIED_SMALL.name, self.samples[0])[1])
        self.keep_fractions = tuple(float(f) for f in keep_fractions)
        self.random_alpha = random_alpha
        self._rng = np.random.default_rng(seed)
        self.alpha_reader = None
        if (variants or (random_alpha and self.n_alphas > 1)) and self.samples:
            self.alpha_reader = ClipReader(self.clips, MAGNIFIED_SMALL.name, self.samples, **io)

    @property
    def n_variants(self) -> int:
        """Size of Xia's grid on this store: stored α × frame-subset fractions."""
        return self.n_alphas * len(self.keep_fractions)

    def raw(self, i: int) -> np.ndarray:
        sample = self.samples[i]
        if self.random_alpha and self.alpha_reader is not None:
            clips = self.alpha_reader[sample]
            alpha = int(self._rng.integers(clips.shape[1]))
            frames = time_normalise(clips[:, alpha], self.n_time)
        else:
            frames = self.reader[sample].astype(np.float32)
        return appearance_matrix(frames, self.mask, self.n_time).transpose(2, 0, 1)

    def raw_variant(self, i: int, variant: int, seed: int) -> np.ndarray:
        if self.alpha_reader is None:
            raise ValueError(f"AppearanceDataset: variants need variants=True (the {MAGNIFIED_SMALL.name} reader)")
        alpha, level = divmod(int(variant), len(self.keep_fractions))
        clip = self.alpha_reader[self.samples[i]][:, alpha]
        kept = draw_frame_subset(len(clip), self.keep_fractions[level], np.random.default_rng(seed))
        return appearance_matrix(clip[kept], self.mask, self.n_time).transpose(2, 0, 1)


def fold_mask(clips: Clips, samples: Sequence[str], keep_fraction: float) -> np.ndarray:
    """STRCN-A mask from the heat maps of ``samples`` (a fold's training clips, or all clips).

    Parameters
    ----------
    clips : ClipTable or FeatureStore
    samples : sequence of str
        Clips whose ``heatmap`` is summed; never a test clip of the fold.
    keep_fraction : float
        Fraction p of pixels kept (the store's ``appearance_mask.keep_fraction``).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    if not samples:
        raise ValueError("the STRCN-A mask needs at least one clip's heat map")
    reader = ClipReader(clips, HEATMAP.name, samples, cache_clips=1)
    return build_mask(np.stack([reader[s] for s in samples]), keep_fraction)


@dataclass(frozen=True)
class AppearanceMatrices:
    """Item maker of :class:`AppearanceDataset` items, the mask per fold or global.

    The mask keeps the store's ``appearance_mask.keep_fraction`` of the summed
    heat maps of the fold's training clips (:data:`MASK` ``fold``, leak-free)
    or of every clip with a heat map (``global``, the paper's). Test items
    (and the standardisation) are the stored ``appearance_frames``. With
    ``epochs`` (Xia §III-E), an epoch is every training clip under the
    variants of the grid it asks for: each stored α of ``magnified_small``
    times each of the store's frame-subset levels
    (``flow_onset_apex_magnified.subset_levels``), a fresh random subset per
    item. When the run augments without them, training items are cut from a
    random α's clip (and the objective subsamples the matrix's time columns).
    """

    center: bool = True
    epochs: AugmentedEpochs | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        return (APPEARANCE_FRAMES.name, HEATMAP.name, MAGNIFIED_SMALL.name)

    def datasets(self, fold: FoldInputs, model: nn.Module) -> tuple[Dataset, Dataset]:
        if fold.statistics.mask is None:  # fitted once per fold, on its training side (or all clips)
            clips = tuple(fold.train) if fold.options.choice(MASK) == "fold" else tuple(
                s for s in fold.clips.ids if fold.clips.has(HEATMAP.name, s))
            fold.statistics.mask = fold_mask(fold.clips, clips,
                                             fold.clips.stage_params(APPEARANCE_MASK.stage)["keep_fraction"])
            fold.statistics.mask_clips = clips
        mask = fold.statistics.mask
        xia = self.epochs is not None and self.epochs.active(fold.options)
        legacy = fold.options.augment and not xia
        levels = recorded_subset_levels(fold.clips, "STRCN-A's frame subsets") if xia and fold.train else ()
        train = AppearanceDataset(fold.clips, fold.train, fold.train_labels, mask=mask, variants=bool(levels),
                                  keep_fractions=levels, seed=fold.options.seed, **fold.io)
        test = AppearanceDataset(fold.clips, fold.test, fold.test_labels, mask=mask, **fold.io)
        standardise(fold, train, test, self.center)  # on the stored (test) alpha's matrices
        train.random_alpha = legacy
        if legacy and train.alpha_reader is None and train.n_alphas > 1:
            train.alpha_reader = ClipReader(fold.clips, MAGNIFIED_SMALL.name, train.samples, **fold.io)
        return train, test

    def loader(self, dataset: Dataset, batch_size: int, fold: FoldInputs, *, train: bool) -> DataLoader:
        return variant_loader(dataset, batch_size, fold, train, self.epochs)
