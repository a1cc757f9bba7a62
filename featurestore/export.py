"""Flat tables of a store, the way OpenFace and py-feat users read their results.

:func:`export_tables` writes two tables that pandas reads with nothing else
installed (CSV, or Parquet with pandas' own engine, pyarrow):

- the **frame table** (``table.parquet``): one row per frame of every built
  clip, with ``sample``, ``dataset``, ``subject``, ``clip``, ``frame`` (the
  source frame number), ``timestamp`` (seconds from the clip's first frame,
  as OpenFace's) and the chosen per-frame features. Landmarks are columns
  ``x_0 … x_67`` then ``y_0 … y_67`` in source pixels (OpenFace's 2D
  landmark names; py-feat's too), ``x_aligned_0 … y_aligned_67`` in pixels
  of the aligned crop; ``face_found``, ``intensity``, ``state`` (code) and
  ``state_name``; the face box as ``face_box_left`` … ``face_box_bottom``.
- the **clip table** (``table-clips.parquet``, the frame table's name with
  ``-clips``): one row per clip of the sample table, failed ones included:
  ground truth and estimated onset/apex/offset (source frame numbers),
  ``sfem`` (Choi's simple facial expression metric, when built),
  ``status``, ``flags`` and ``error``.

Every array is read through :func:`~mepipe.featurestore.open_store`, so each
read is checked against the store's manifest. Text from sheets (labels,
ids, flags) may begin like a spreadsheet formula; in a CSV such a cell is
written with a leading ``'`` (:func:`spreadsheet_safe`), as OWASP advises
against CSV injection, so a spreadsheet shows it as text instead of
evaluating it. An existing table is replaced only when asked.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UsageError
from .features import (FACE_BOX, FACE_FOUND, FRAME, INTENSITY, LANDMARKS, LANDMARKS_ALIGNED, N_LANDMARKS, NCC, SFEM,
                       STATE, STATE_NAMES, STDDIFF, feature_def)
from .schema import SAMPLE_COLUMNS
from .store import FeatureStore, open_store

__all__ = ["EXPORTABLE", "DEFAULT_FEATURES", "ExportResult", "FORMULA_PREFIXES", "clip_table", "clips_path",
           "export_tables", "frame_table", "spreadsheet_safe"]

EXPORTABLE = tuple(f.name for f in (FACE_FOUND, LANDMARKS, LANDMARKS_ALIGNED, FACE_BOX, INTENSITY, STATE, STDDIFF, NCC))
"""Per-frame features a frame table can hold (arrays of a few numbers per frame; images and flow are not)."""

DEFAULT_FEATURES = tuple(f.name for f in (FACE_FOUND, LANDMARKS, LANDMARKS_ALIGNED, INTENSITY, STATE))
"""What the frame table holds when no features are chosen (those of them the store has)."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP, "CSV Injection")."""

_LANDMARK_PREFIX = {LANDMARKS.name: "", LANDMARKS_ALIGNED.name: "aligned_"}
_BOX_SIDES = ("left", "top", "right", "bottom")
FORMATS = (".parquet", ".csv")


class ExportError(UsageError, ValueError):
    """An export that cannot be made as asked (an unknown format or feature, one the store lacks)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_tables` wrote."""

    frames_path: Path
    clips_path: Path
    frame_shape: tuple[int, int]
    clip_shape: tuple[int, int]
    features: tuple[str, ...]


def clips_path(frames_path: str | os.PathLike) -> Path:
    """The clip table's file beside the frame table: ``table.parquet`` -> ``table-clips.parquet``."""
    path = Path(frames_path)
    return path.with_name(f"{path.stem}-clips{path.suffix}")


def landmark_columns(feature: str) -> list[str]:
    """OpenFace-style names of a landmark feature's columns: all x first, then all y."""
    prefix = _LANDMARK_PREFIX[feature]
    return [f"x_{prefix}{k}" for k in range(N_LANDMARKS)] + [f"y_{prefix}{k}" for k in range(N_LANDMARKS)]


def choose_features(store: FeatureStore, features: Sequence[str] | None) -> tuple[str, ...]:
    """The features of the frame table: the ones asked for (each checked), or the defaults the store has."""
    if features is None:
        return tuple(f for f in DEFAULT_FEATURES if f in store.features)
    chosen = tuple(dict.fromkeys(f.strip() for f in features if f.strip()))
    unknown = [f for f in chosen if f not in EXPORTABLE]
    if unknown:
        raise ExportError(f"cannot export {', '.join(unknown)} per frame; exportable features: "
                          f"{', '.join(EXPORTABLE)}")
    absent = [f for f in chosen if f not in store.features]
    if absent:
        stages = sorted({feature_def(f).stage for f in absent})
        raise ExportError(f"{store.path} has no {', '.join(absent)}; build it with "
                          f"`mepipe build --features {','.join(stages)}`")
    return chosen


def frame_table(store: FeatureStore, features: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per frame of every clip that holds the chosen features (see the module docstring).

    Parameters
    ----------
    store : FeatureStore
    features : sequence of str, optional
        Names from :data:`EXPORTABLE`; default :data:`DEFAULT_FEATURES` the store has.

    Returns
    -------
    pandas.DataFrame
        Sorted by clip (sample table order) and frame.
    """
    chosen = choose_features(store, features)
    samples = store.samples
    parts = []
    for _, row in samples.iterrows():
        sample = str(row["sample"])
        if not store.has(FRAME.name, sample) or not all(store.has(f, sample) for f in chosen):
            continue
        frames = store.read(FRAME.name, sample).astype(np.int64)
        columns: dict[str, np.ndarray] = {
            "sample": np.full(len(frames), sample, dtype=object),
            "dataset": np.full(len(frames), str(row["dataset"]), dtype=object),
            "subject": np.full(len(frames), str(row["subject"]), dtype=object),
            "clip": np.full(len(frames), str(row["clip"]), dtype=object),
            "frame": frames,
            "timestamp": (frames - frames[0]) / float(row["fps"]),
        }
        for feature in chosen:
            columns.update(_feature_columns(feature, store.read(feature, sample), sample))
        parts.append(pd.DataFrame(columns))
    if not parts:
        return pd.DataFrame(columns=["sample", "dataset", "subject", "clip", "frame", "timestamp"])
    table = pd.concat(parts, ignore_index=True)
    if STATE.name in table:
        table["state_name"] = pd.Categorical.from_codes(table[STATE.name].astype(int), categories=list(STATE_NAMES))
    return table


def _feature_columns(feature: str, array: np.ndarray, sample: str) -> dict[str, np.ndarray]:
    n = len(array)
    if feature in _LANDMARK_PREFIX:
        flat = np.concatenate([array[:, :, 0], array[:, :, 1]], axis=1)
        return dict(zip(landmark_columns(feature), flat.T))
    if feature == FACE_BOX.name:
        return {f"face_box_{side}": array[:, k] for k, side in enumerate(_BOX_SIDES)}
    if array.shape != (n,):
        raise ValueError(f"{sample}: {feature} has shape {array.shape}, not one value per frame")
    return {feature: array}


def clip_table(store: FeatureStore) -> pd.DataFrame:
    """One row per clip: the sample table's columns (ground truth, estimates, status, flags) plus ``sfem``."""
    table = store.samples[[c for c in SAMPLE_COLUMNS if c in store.samples]].copy()
    has_sfem = SFEM.name in store.features
    table[SFEM.name] = [float(store.read(SFEM.name, s)) if has_sfem and store.has(SFEM.name, s) else np.nan
                        for s in table["sample"].astype(str)]
    return table


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every text cell that starts with a :data:`FORMULA_PREFIXES` character prefixed by ``'``.

    Numbers are left alone (a negative number is not text); the quote is
    what spreadsheets take as "this cell is text" and do not show.
    """
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES)
                                          else v)
    return out


def export_tables(store: FeatureStore | str | os.PathLike, to: str | os.PathLike,
                  features: Sequence[str] | None = None, *, overwrite: bool = False) -> ExportResult:
    """Write the frame table to ``to`` and the clip table beside it (:func:`clips_path`).

    Parameters
    ----------
    store : FeatureStore or path
        Opened with :func:`open_store` when given as a path (folder, zip or URL).
    to : path
        ``….parquet`` or ``….csv``; the clip table gets the same format.
    features : sequence of str, optional
        Per-frame features (see :func:`frame_table`).
    overwrite : bool
        Replace tables that exist; without it they are refused.

    Raises
    ------
    ExportError
        An unknown format or feature, a feature the store lacks, Parquet
        without pyarrow, or a table that exists (without ``overwrite``).
    """
    to = Path(to)
    if to.suffix not in FORMATS:
        raise ExportError(f"{to}: the table must end in {' or '.join(FORMATS)}")
    taken = [str(p) for p in (to, clips_path(to)) if p.exists()]
    if taken and not overwrite:
        raise ExportError(f"{' and '.join(taken)} exist{'s' if len(taken) == 1 else ''}; pass --overwrite to "
                          "replace, or export to another name")
    if to.suffix == ".parquet":
        _require_parquet_engine()
    store = store if isinstance(store, FeatureStore) else open_store(store)
    frames = frame_table(store, features)
    clips = clip_table(store)
    to.parent.mkdir(parents=True, exist_ok=True)
    other = clips_path(to)
    for table, path in ((frames, to), (clips, other)):
        if to.suffix == ".parquet":
            table.to_parquet(path, index=False)
        else:
            spreadsheet_safe(table).to_csv(path, index=False)
    chosen = tuple(c for c in EXPORTABLE if c in choose_features(store, features))
    return ExportResult(to, other, frames.shape, clips.shape, chosen)


def _require_parquet_engine() -> None:
    try:
        import pyarrow  # noqa: F401 -- pandas' Parquet engine
    except ImportError:
        raise ExportError("writing Parquet needs pyarrow (pip install 'mepipe[export]'); or export to .csv") from None
