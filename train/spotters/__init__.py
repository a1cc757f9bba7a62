"""Spotters: from a long video to micro- and macro-expression intervals, each declared in one module.

- ``baseline`` (:mod:`.megc2020`): the MEGC 2020 baseline, training-free,
  on the store's facial-region motion curves.
- ``nag2019`` (:mod:`.nag2019`): Nag et al. 2019's network slid over long
  videos, trained under leave-one-subject-out.

:mod:`.base` says what a spotter declares; :mod:`.run` runs one over the
videos of long-video stores (``mepipe spot``) and scores it as MEGC does.
"""
from .base import FitContext, Fitted, Pass, Spotter, SpotterError, get_spotter, list_spotters, register_spotter, \
    resolve_params

__all__ = ["FitContext", "Fitted", "Pass", "Spotter", "SpotterError", "get_spotter", "list_spotters",
           "register_spotter", "resolve_params"]
