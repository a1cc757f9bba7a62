"""Default locations under the data root (``--data-root``, env ``MEPIPE_DATA``, else ``./data``)."""
from __future__ import annotations

import os
from pathlib import Path


def data_root(option: str | None) -> Path:
    return Path(option or os.environ.get("MEPIPE_DATA") or "data")


def dataset_root(data: Path, dataset: str) -> Path:
    return data / "datasets" / dataset


def store_path(data: Path, dataset: str) -> Path:
    return data / "stores" / f"{dataset}.zarr"
