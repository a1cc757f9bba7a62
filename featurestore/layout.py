"""Where things live inside a store folder.

::

    samm.zarr/
      zarr.json                        root group: schema version, build record, build state
      samples/                         one row per clip (per video in a long-video store), 1-D arrays along ``sample``
      intervals/                       long-video stores: one row per annotated interval, along ``interval``
      clips/<sample>/                  one group per clip (its source fingerprint and stage keys)
      clips/<sample>/<feature>/        one group per clip and feature: the array ``<feature>`` (a single
                                       chunk; a long video's is chunked along its first dim, ``window.frames``
                                       frames a chunk) and, when it runs over frames, a ``frame`` coordinate
      dataset/<feature>/               dataset-level features (e.g. the STRCN-A mask), same layout
      .mepipe/                         not Zarr: build lock, staging area, build report, long-video
                                       features being built window by window (``windows/``)

A feature group opens with ``xarray.open_zarr(path, group="clips/<sample>/<feature>")``;
a whole clip with ``xarray.open_datatree(path, group="clips/<sample>", engine="zarr")``.
"""
from __future__ import annotations

from pathlib import PurePosixPath

SAMPLES_GROUP = "samples"
INTERVALS_GROUP = "intervals"
CLIPS_GROUP = "clips"
DATASET_GROUP = "dataset"
PRIVATE_DIR = ".mepipe"
STAGING_DIR = f"{PRIVATE_DIR}/staging"
WINDOWS_DIR = f"{PRIVATE_DIR}/windows"
REPORT_FILE = "build-report.json"
FRAME_COORD = "frame"
"""Name of the frame-number coordinate array inside frame-indexed feature groups."""


MAX_SAMPLE_ID_BYTES = 200
"""Longest sample id, in UTF-8 bytes: ids are folder names, which most file systems cap at 255 bytes."""


def sample_id_problem(sample: str) -> str | None:
    """Why ``sample`` cannot be a sample id (a store folder name), or None if it can."""
    if not sample:
        return "is empty"
    if "/" in sample or "\\" in sample:
        return "contains a slash"
    if sample.startswith("."):
        return "starts with a dot"
    if sample != sample.strip():
        return "has surrounding spaces"
    if any(ord(c) < 32 or ord(c) == 127 for c in sample):
        return "contains control characters"
    if len(sample.encode("utf-8")) > MAX_SAMPLE_ID_BYTES:
        return f"is longer than {MAX_SAMPLE_ID_BYTES} bytes"
    return None


def check_sample_id(sample: str) -> str:
    """Sample ids become folder names: refuse ones that would escape, hide or not fit."""
    problem = sample_id_problem(sample)
    if problem:
        shown = sample if len(sample) <= 60 else sample[:57] + "..."
        raise ValueError(f"sample id {shown!r} {problem}, so it cannot be a store folder name "
                         f"(no slashes, leading dot, surrounding spaces or control characters; "
                         f"at most {MAX_SAMPLE_ID_BYTES} bytes)")
    return sample


def clip_path(sample: str) -> str:
    return str(PurePosixPath(CLIPS_GROUP) / check_sample_id(sample))


def feature_path(sample: str, feature: str) -> str:
    """The group of one clip's feature."""
    return str(PurePosixPath(clip_path(sample)) / feature)


def array_path(sample: str, feature: str) -> str:
    """The array inside a clip's feature group."""
    return str(PurePosixPath(feature_path(sample, feature)) / feature)


def dataset_feature_path(feature: str) -> str:
    """The group of a dataset-level feature."""
    return str(PurePosixPath(DATASET_GROUP) / feature)
