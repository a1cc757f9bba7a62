"""The clips a run reads, behind one small interface over one or more stores.

Datasets and the trainer never hold a :class:`~mepipe.featurestore.FeatureStore`:
they read through a :class:`ClipTable`, whose ``samples`` table has one row
per clip with a ``store`` column naming the store it comes from and a
``store_sample`` column giving its id there. A run over one store has
``sample == store_sample``; a run over several stores namespaces its ids
(``casme2/sub01_EP02_01f``) without any dataset noticing.

Before a fold runs, :meth:`ClipTable.require` checks that every store holds
the features a model reads (naming the ``mepipe build`` command that adds a
missing one), and :meth:`ClipTable.geometry` gives their sizes, the same in
every store, with the stage parameter that set each.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mepipe.featurestore import FeatureStore, open_store
from mepipe.featurestore.errors import DataError
from mepipe.featurestore.features import Param, feature_def

from .recipe import RecipeError

__all__ = ["ClipTable", "Geometry", "MissingFeatureError"]


class MissingFeatureError(DataError, KeyError):
    """A store lacks a feature a model reads."""


@dataclass(frozen=True)
class Geometry:
    """Sizes of the features a model reads, as stored.

    Attributes
    ----------
    model : str
        The model asking (named in refusals).
    sizes : mapping of str to mapping of str to int
        Feature -> dim -> size (from the first clip; fixed dims are the same
        for every clip of every store of the run).
    clips : ClipTable
        Where the features are stored (for :meth:`stage_params`).
    """

    model: str
    sizes: Mapping[str, Mapping[str, int]]
    clips: ClipTable

    def stage_params(self, stage: str) -> dict[str, Any]:
        """A stage's recorded parameters, the same in every store of the run (:meth:`ClipTable.stage_params`)."""
        return self.clips.stage_params(stage)

    def size(self, feature: str, dim: str) -> int:
        """The size of ``dim`` of ``feature``."""
        try:
            return int(self.sizes[feature][dim])
        except KeyError:
            raise KeyError(f"{self.model}: no size of {feature}.{dim} (it reads {sorted(self.sizes)})") from None

    def refuse(self, reason: str, *dims: tuple[str, str]) -> RecipeError:
        """A :class:`RecipeError` for ``reason``, naming each (feature, dim)'s size and the parameter that set it."""
        where = "; ".join(f"{f} has {d} = {self.size(f, d)}, set by {feature_def(f).source(d)}" for f, d in dims)
        return RecipeError(f"{self.model} cannot read this store: {reason} ({where}). Rebuild the store with a "
                           "value it takes (mepipe build --config), or choose another model")


class ClipTable:
    """Clips over one or more feature stores, read by clip id.

    Parameters
    ----------
    stores : mapping of str to FeatureStore
        Each store under the key its clips name in the ``store`` column.
    samples : pandas.DataFrame
        One row per clip: ``sample`` (the run's id), ``store``,
        ``store_sample`` and the store's sample columns (subject, dataset,
        emotion, onset, apex, ...).
    """

    def __init__(self, stores: Mapping[str, FeatureStore], samples: pd.DataFrame):
        missing = {"sample", "store", "store_sample"} - set(samples.columns)
        if missing:
            raise ValueError(f"a clip table needs columns {sorted(missing)}")
        if samples["sample"].duplicated().any():
            raise ValueError(f"clip ids must be unique; repeated: {samples['sample'][samples['sample'].duplicated()]}")
        unknown = set(samples["store"]) - set(stores)
        if unknown:
            raise ValueError(f"clips name stores {sorted(unknown)} that are not given")
        self.stores = dict(stores)
        self.samples = samples.reset_index(drop=True)
        self._where = {s: (str(k), str(i)) for s, k, i in
                       zip(self.samples["sample"], self.samples["store"], self.samples["store_sample"])}
        self._rows = self.samples.set_index("sample", drop=False)

    @classmethod
    def of(cls, source: ClipTable | FeatureStore | str | os.PathLike) -> ClipTable:
        """A clip table over one store (opened if given by path), or ``source`` itself."""
        if isinstance(source, ClipTable):
            return source
        store = source if isinstance(source, FeatureStore) else open_store(source)
        table = store.samples.copy()
        table.insert(1, "store", store.path)
        table.insert(2, "store_sample", table["sample"].astype(str))
        return cls({store.path: store}, table)

    def __repr__(self) -> str:
        return f"ClipTable({len(self.samples)} clips from {', '.join(self.stores)})"

    @property
    def ids(self) -> list[str]:
        return [str(s) for s in self.samples["sample"]]

    def subset(self, samples: Sequence[str]) -> ClipTable:
        """The same stores, only the given clips (in that order)."""
        return ClipTable(self.stores, self._rows.loc[list(samples)].reset_index(drop=True))

    def store_of(self, sample: str) -> FeatureStore:
        return self.stores[self._locate(sample)[0]]

    def _locate(self, sample: str) -> tuple[str, str]:
        try:
            return self._where[sample]
        except KeyError:
            raise KeyError(f"no clip {sample!r} in {self!r}") from None

    def read(self, feature: str, sample: str) -> np.ndarray:
        """One clip's feature (a single chunk read)."""
        key, inner = self._locate(sample)
        return self.stores[key].read(feature, inner)

    def has(self, feature: str, sample: str) -> bool:
        key, inner = self._locate(sample)
        return self.stores[key].has(feature, inner)

    def shape(self, feature: str, sample: str) -> tuple[int, ...]:
        """A clip's feature shape, from metadata (no chunk read)."""
        key, inner = self._locate(sample)
        return self.stores[key].shape(feature, inner)

    def attrs_of(self, feature: str, sample: str) -> dict[str, Any]:
        key, inner = self._locate(sample)
        return self.stores[key].attrs_of(feature, inner)

    def frame_numbers(self, sample: str) -> np.ndarray:
        """The clip's source frame numbers (the ``frame`` feature)."""
        return self.read("frame", sample)

    def value(self, sample: str, column: str) -> Any:
        """A sample-table value of one clip; None where missing (NA, NaN or absent column)."""
        if column not in self._rows.columns:
            return None
        value = self._rows.at[sample, column]
        return None if pd.isna(value) else value

    def require(self, features: Sequence[str], model: str) -> None:
        """Raise :class:`MissingFeatureError` unless every store lists every feature.

        The message names the store, the feature and the ``mepipe build``
        command that adds it (nothing already built is recomputed).
        """
        for key, store in self.stores.items():
            missing = [f for f in features if f not in store.features]
            if missing:
                record = store.record
                source = f" --dataset {record.dataset} --root {record.source_root}" if record is not None else ""
                raise MissingFeatureError(
                    f"{key}: {model} reads {', '.join(missing)}, which the store lacks; add "
                    f"{'it' if len(missing) == 1 else 'them'} with `mepipe build{source} --store {key} "
                    f"--features {','.join(missing)}`")

    def geometry(self, features: Sequence[str], model: str) -> Geometry:
        """Sizes of ``features`` (from the first clip of each store that has them all); stores must agree.

        Raises
        ------
        RecipeError
            Two stores hold a feature at different sizes.
        """
        found: dict[str, dict[str, int]] = {}
        first: dict[str, str] = {}
        for key, store in self.stores.items():
            clips = [inner for s, (k, inner) in self._where.items() if k == key]
            sample = next((c for c in clips if all(store.has(f, c) for f in features)), None)
            if sample is None:
                continue
            for feature in features:
                spec = feature_def(feature)
                sizes = dict(zip(spec.dims, store.shape(feature, sample)))
                fixed = {d: n for d, n in sizes.items() if d in spec.sizes or d == "channel"}
                if feature in found and {d: found[feature][d] for d in fixed} != fixed:
                    raise RecipeError(f"{model}: stores {first[feature]} and {key} hold {feature} at different "
                                      f"sizes ({found[feature]} vs {sizes}); build them with the same parameters")
                found.setdefault(feature, sizes)
                first.setdefault(feature, key)
        if set(found) != set(features):
            raise MissingFeatureError(f"{model}: no clip holds all of {', '.join(features)}")
        if len(self.stores) > 1:  # the parameters that set the sizes must agree too
            for stage in sorted({r.stage for f in features for r in feature_def(f).sizes.values()
                                 if isinstance(r, Param)}):
                self.stage_params(stage)
        return Geometry(model, found, self)

    def stage_params(self, stage: str) -> dict[str, Any]:
        """The recorded parameters of ``stage``; every store of the run must record the same."""
        seen: dict[str, dict[str, Any]] = {}
        for key, store in self.stores.items():
            record = store.record
            if record is None or stage not in record.stages:
                raise KeyError(f"{key}: no record of stage {stage!r}; rebuild the store with `mepipe build`")
            seen[key] = record.stages[stage].params
        values = list(seen.values())
        if any(v != values[0] for v in values[1:]):
            raise RecipeError(f"stores disagree on the parameters of stage {stage!r}: {seen}")
        return values[0]

    def fingerprint(self, features: Sequence[str], samples: Sequence[str]) -> str:
        """SHA-256 of the stores' provenance and the cache keys of the arrays a run reads.

        Two runs get the same fingerprint when they read the same arrays
        computed the same way (build times and hosts do not enter).
        """
        stores = {}
        for key, store in self.stores.items():
            record = store.record
            stores[key] = {"schema_version": store.schema_version,
                           "dataset": record.dataset if record else None,
                           "stages": record.to_attrs()["stages"] if record else None,
                           "shared_params": record.shared_params if record else None,
                           "annotations": record.annotations.sha256 if record and record.annotations else None}
        keys = {s: {f: self.attrs_of(f, s).get("cache_key") for f in features if self.has(f, s)}
                for s in sorted(samples)}
        payload = {"stores": stores, "cache_keys": keys}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-able summary of the stores (for run reports)."""
        out = {}
        for key, store in self.stores.items():
            out[key] = {"path": key if "://" in key else os.path.abspath(key), "schema_version": store.schema_version,
                        "dataset": store.record.dataset if store.record else None}
        return out
