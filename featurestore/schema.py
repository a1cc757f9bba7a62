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
    "au_codes", "onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "apex_ncc", "flags", "status",
    "error",
)
"""Columns of the ``samples`` group, one row per clip. Frame columns hold source
frame numbers; missing values are -1 on disk and <NA> in ``store.samples``."""

FRAME_COLUMNS = ("onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "apex_ncc")

INTEGER_COLUMNS = (*FRAME_COLUMNS, "n_frames")
"""Sample columns stored as int64 (so plain xarray reads integers); a missing value is :data:`MISSING_INT`."""

MISSING_INT = -1
"""On-disk value of a missing integer sample column (frame numbers and counts are never negative).

Deliberately not a ``_FillValue``: xarray would decode the column to float64
with NaN. It is recorded as the column's ``valid_min`` = 0 and in its ``comment``."""

SAMPLE_ATTRS: dict[str, tuple[str, str]] = {
    "sample": ("1", "clip id (unique in the store; a folder name under clips/)"),
    "dataset": ("1", "dataset the clip comes from"),
    "subject": ("1", "person shown, as the dataset names them"),
    "clip": ("1", "clip name within its subject, as the dataset names it"),
    "fps": ("Hz", "frame rate of the source"),
    "n_frames": ("1", "frames in the clip"),
    "emotion": ("1", "emotion label of the annotation sheet"),
    "objective_class": ("1", "objective class of the annotation sheet (SAMM, CASME II 2019 sheets)"),
    "action_units": ("1", "FACS action units of the annotation sheet, as written there"),
    "au_codes": ("1", "AU numbers the clip shows, ascending and '+'-separated ('4+10'; '' for none)"),
    "onset": ("1", "annotated onset: source frame number"),
    "apex": ("1", "annotated apex: source frame number"),
    "offset": ("1", "annotated offset: source frame number"),
    "onset_est": ("1", "estimated onset: source frame number (apex stage)"),
    "apex_est": ("1", "estimated apex: source frame number (apex stage, std-diff)"),
    "offset_est": ("1", "estimated offset: source frame number (apex stage)"),
    "apex_ncc": ("1", "frame least correlated with the onset: source frame number (apex stage, NCC)"),
    "flags": ("1", "annotation quirks handled for this clip, separated by '; '"),
    "status": ("1", "build status of the clip: ok, flagged (built, with annotation quirks) or failed"),
    "error": ("1", "why the clip failed, empty when it did not"),
}
"""CF ``units`` and ``long_name`` of every sample column."""

UNIT_ATTR = "unit"
"""Root attribute of a long-video store: ``"video"`` (its samples are whole videos, with an intervals table).
A store without it holds annotated clips."""

INTERVAL_COLUMNS = ("interval", "dataset", "video", "name", "onset", "apex", "offset", "kind", "action_units",
                    "au_codes", "emotion", "flags")
"""Columns of a long-video store's ``intervals`` group, one row per annotated interval (``interval`` = row number).
Frame columns hold the video's frame numbers (its ``frame`` coordinate); missing values as in the sample table."""

INTERVAL_INTEGER_COLUMNS = ("onset", "apex", "offset")

INTERVAL_ATTRS: dict[str, tuple[str, str]] = {
    "interval": ("1", "row number of the interval"),
    "dataset": ("1", "dataset the video comes from"),
    "video": ("1", "the video (a sample id of the store)"),
    "name": ("1", "the interval's id in its sheet (SAMM: Filename 006_1_2)"),
    "onset": ("1", "annotated onset: frame number of the video"),
    "apex": ("1", "annotated apex: frame number of the video"),
    "offset": ("1", "annotated offset: frame number of the video"),
    "kind": ("1", "micro or macro ('' where the sheet does not say)"),
    "action_units": ("1", "FACS action units of the annotation sheet, as written there"),
    "au_codes": ("1", "AU numbers shown, ascending and '+'-separated ('4+10'; '' for none)"),
    "emotion": ("1", "emotion label of the annotation sheet(s)"),
    "flags": ("1", "annotation quirks handled for this interval, separated by '; '"),
}
"""CF ``units`` and ``long_name`` of every interval column."""
