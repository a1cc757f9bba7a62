"""Where things live inside a store folder.

::

    samm.zarr/
      zarr.json                root group: schema version, provenance, build state
      samples/                 one row per clip, 1-D arrays along ``sample``
      clips/<sample>/<feature> one array per clip and feature, a single chunk
      dataset/<name>           dataset-level results (e.g. the STRCN-A mask), with the clips they came from
      .mepipe/                 not Zarr: build lock, staging area, build report
"""
from __future__ import annotations

from pathlib import PurePosixPath

SAMPLES_GROUP = "samples"
CLIPS_GROUP = "clips"
DATASET_GROUP = "dataset"
PRIVATE_DIR = ".mepipe"
STAGING_DIR = f"{PRIVATE_DIR}/staging"
REPORT_FILE = "build-report.json"


def check_sample_id(sample: str) -> str:
    """Sample ids become folder names: refuse ones that would escape or hide."""
    if not sample or "/" in sample or "\\" in sample or sample.startswith(".") or sample != sample.strip():
        raise ValueError(f"sample id {sample!r} cannot be used as a store path component "
                         "(no slashes, no leading dot or surrounding spaces)")
    return sample


def clip_path(sample: str) -> str:
    return str(PurePosixPath(CLIPS_GROUP) / check_sample_id(sample))


def feature_path(sample: str, feature: str) -> str:
    return str(PurePosixPath(clip_path(sample)) / feature)
