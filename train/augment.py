"""On-the-fly augmentation of training batches, on the device the model trains on.

Xia et al. 2019 (§III-E) enlarge each training clip 50-fold: ten
magnification factors α ∈ {5, …, 14} times five random frame subsets keeping
100/90/80/70/60 % of the frames. Here, per training batch:

- **STRCN-A** (appearance matrices, (B, C, d2, T)): a random subset of the T
  time columns is kept and linearly resampled back to T
  (:func:`frame_subset`). When the store's ``magnified64x48`` holds several
  α, the dataset also cuts each item from a random α's clip
  (:class:`~mepipe.train.data.AppearanceDataset`), which is the real α
  augmentation.
- **STRCN-G** (onset→apex flow, (B, 2, H, W)): the store holds one flow field
  per clip, computed on unmagnified crops, so neither α nor frame subsets can
  be redone from it. In the linear regime of Eulerian magnification a
  displacement δ becomes (1 + α) δ, so the α augmentation is emulated by
  scaling each field by (1 + α_k) / (1 + α_ref) with α_ref the mean of the α
  list (:func:`magnification_scale`), which keeps the scale of unaugmented
  test inputs in the middle of the training range. Frame subsets have no
  counterpart for a single onset→apex field and are not applied.
- **SHCNN**: Miao et al. use no augmentation for micro-expressions; none.

Random draws come from a CPU generator seeded per fold (reproducible on any
device); the arithmetic runs on the batch's device.

References
----------
.. [1] Z. Xia, X. Hong, X. Gao, X. Feng and G. Zhao, "Spatiotemporal Recurrent
   Convolutional Networks for Recognizing Spontaneous Micro-Expressions,"
   IEEE Trans. Multimedia 22(3), 2020. doi:10.1109/TMM.2019.2931351
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Augmenter = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A batch transform ``(x, generator) -> x`` applied to training batches only."""


@dataclass(frozen=True)
class AugmentParams:
    """Xia's augmentation grid (paper defaults).

    Attributes
    ----------
    alphas : tuple of float
        Magnification factors α (Xia: 5..14).
    keep_fractions : tuple of float
        Fractions of frames kept by a random subset (Xia: 100..60 %).
    """

    alphas: tuple[float, ...] = tuple(float(a) for a in range(5, 15))
    keep_fractions: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6)

    def __post_init__(self) -> None:
        if not self.alphas or min(self.alphas) < 0:
            raise ValueError(f"alphas must be a non-empty tuple of values >= 0, got {self.alphas!r}")
        if not self.keep_fractions or not all(0 < f <= 1 for f in self.keep_fractions):
            raise ValueError(f"keep_fractions must be in (0, 1], got {self.keep_fractions!r}")


def magnification_scale(x: torch.Tensor, generator: torch.Generator,
                        params: AugmentParams = AugmentParams()) -> torch.Tensor:
    """Scale each flow field by (1 + α_k) / (1 + mean α), α_k drawn per item.

    Parameters
    ----------
    x : Tensor, shape (B, 2, H, W)
    generator : torch.Generator
        CPU generator for the draws.
    params : AugmentParams
    """
    alphas = torch.tensor(params.alphas, dtype=torch.float32)
    pick = torch.randint(len(alphas), (x.shape[0],), generator=generator)
    factor = (1.0 + alphas[pick]) / (1.0 + alphas.mean())
    return x * factor.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))


def frame_subset(x: torch.Tensor, generator: torch.Generator,
                 params: AugmentParams = AugmentParams()) -> torch.Tensor:
    """Keep a random, ordered subset of the time columns and resample it back to T.

    Parameters
    ----------
    x : Tensor, shape (B, C, d2, T)
        Appearance matrices, time along the last axis.
    generator : torch.Generator
        CPU generator for the draws.
    params : AugmentParams

    Returns
    -------
    Tensor, same shape
        Item b keeps ``max(2, round(f_b T))`` columns, f_b drawn from
        ``keep_fractions``; the first and last kept columns map to the first
        and last output columns (linear interpolation, as the time
        normalisation of the store).
    """
    n_time = x.shape[-1]
    fractions = torch.tensor(params.keep_fractions, dtype=torch.float64)
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


def augmenter_for(kind: str, params: AugmentParams = AugmentParams()) -> Augmenter | None:
    """The batch augmentation of an input kind (see :mod:`mepipe.train.data`), or None."""
    if kind == "onset_apex_flow":
        return lambda x, g: magnification_scale(x, g, params)
    if kind == "appearance":
        return lambda x, g: frame_subset(x, g, params)
    return None
