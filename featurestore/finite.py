"""Non-finite numbers never become results.

A NaN in a feature passes every later step quietly: standardisation, a
network's forward pass and an argmax all return *something* (a NaN logit
row argmaxes to class 0), so a clip with NaN features is silently predicted
as class 0. No stage writes NaN or infinity, except where a feature
declares a missing item (:attr:`~.features.FeatureDef.nan_fills`: a
``flow_consecutive`` pair across a gap in the frame numbers is a NaN field,
so a reader that ignores the gap fails loudly; in a long video, the
landmarks of frames in a window without a face and the spotting features
of the last k frames, which have no frame t + k). So the writer refuses to write non-finite
values anywhere else, and every read of a float feature checks them: a store
that holds one is damaged (or forged and resealed), and the read refuses it
naming the store, the clip and the feature.

Only the declared shape of a missing item is excused: a NaN must fill all of
its item (a whole ``(uv, y, x)`` field), and infinity never is.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError
from .features import FeatureDef

__all__ = ["NonFiniteError", "check_finite", "non_finite_problem"]


class NonFiniteError(DataError, ValueError):
    """A float feature read from a store holds NaN or infinity where the feature never does."""


def non_finite_problem(spec: FeatureDef, values: np.ndarray) -> str | None:
    """What is non-finite in ``values`` (an array of feature ``spec``) beyond what the feature declares, or None.

    Parameters
    ----------
    spec : FeatureDef
        The feature; its ``nan_fills`` dims say where whole NaN items are allowed.
    values : ndarray
        Its values, in the feature's dims. Non-float arrays always pass.

    Returns
    -------
    str or None
        ``"2 NaN and 1 infinite of 120 values (the first at frame 3)"``.
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or _all_finite(values):
        return None
    bad = ~np.isfinite(values)
    nan = np.isnan(values)
    if spec.nan_fills:
        axes = tuple(spec.dims.index(d) for d in spec.nan_fills)
        whole = np.broadcast_to(nan.all(axis=axes, keepdims=True), values.shape)
        bad &= ~whole
        if not bad.any():
            return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    at = ", ".join(f"{dim} {i}" for dim, i in zip(spec.dims, first))
    n_nan, n_inf = int((bad & nan).sum()), int((bad & ~nan).sum())
    counts = " and ".join(c for c in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else "") if c)
    allowed = f" (NaN is allowed only as whole {'/'.join(spec.nan_fills)} items)" if spec.nan_fills else ""
    return f"{counts} of {values.size} values{allowed}, the first at {at or 'its only value'}"


def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite; for float16 (the stored flows) by the exponent bits, which is some 2.5x
    faster than ``np.isfinite`` on a type NumPy computes in software: NaN and infinity have all five set."""
    if values.dtype == np.float16:
        return not ((values.view(np.uint16) & 0x7C00) == 0x7C00).any()
    return bool(np.isfinite(values).all())


def check_finite(spec: FeatureDef, values: np.ndarray, where: str) -> np.ndarray:
    """``values`` unchanged, or :class:`NonFiniteError` naming ``where`` (store, clip and feature).

    Raises
    ------
    NonFiniteError
        The values hold NaN or infinity the feature does not declare.
    """
    problem = non_finite_problem(spec, values)
    if problem is not None:
        raise NonFiniteError(f"{where} holds {problem}; no build writes them, so the store is damaged: rebuild it "
                             f"(`mepipe build --force {spec.stage}` with its dataset) or use an intact copy")
    return values
