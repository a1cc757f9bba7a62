"""The on-disk contract: schema version and the sample table's columns.

Features (names, dims, dtypes, sizes, units) are defined in
:mod:`mepipe.featurestore.features`. A store records ``SCHEMA_VERSION``; a
reader refuses a store of another schema: an older one must be rebuilt, a
newer one needs a newer mepipe.

Schema history: 1, one array per clip and feature with size-named dims
(``y112``); 2, one group per clip and feature (``clips/<sample>/<feature>/``
holding the array ``<feature>`` and, for frame-indexed features, a ``frame``
coordinate) with generic dims (``y``, ``x``) and CF attributes.
"""
from __future__ import annotations

SCHEMA_VERSION = 2
"""Bump when the layout or the meaning of a stored array changes."""

READER_MIN_VERSION = {1: "0.1.0"}
"""For each schema version, the first mepipe release that reads it."""

SAMPLE_COLUMNS = (
    "sample", "dataset", "subject", "clip", "fps", "n_frames", "emotion", "objective_class", "action_units",
    "onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "apex_ncc", "flags", "status", "error",
)
"""Columns of the ``samples`` group, one row per clip. Frame columns hold source
frame numbers; missing values are -1 on disk and <NA> in ``store.samples``."""

FRAME_COLUMNS = ("onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "apex_ncc")
