"""The clips a run reads, behind one small interface over one or more stores.

Datasets and the trainer never hold a :class:`~mepipe.featurestore.FeatureStore`:
they read through a :class:`ClipTable`, whose ``samples`` table has one row
per clip with a ``store`` column naming the store it comes from and a
``store_sample`` column giving its id there. A run over one store has
``sample == store_sample``; a run over several stores (:meth:`ClipTable.open`)
namespaces its ids by dataset (``casme2/sub01_EP02_01f``) without any
dataset noticing. People are always (dataset, subject) pairs, so subject
``01`` of two datasets never meet.

Before a fold runs, :meth:`ClipTable.require` checks that every store holds
the features a model reads (naming the ``mepipe build`` command that adds a
missing one), :meth:`ClipTable.agree` that the stores computed them the same
way (naming both stores and the parameter that differs), and
:meth:`ClipTable.geometry` gives their sizes with the stage parameter that
set each.
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
from mepipe.featurestore.errors import DataError, UsageError
from mepipe.featurestore.features import FRAME, FeatureDef, feature_def
from mepipe.featurestore.location import public_address

from .recipe import RecipeError

__all__ = ["ClipTable", "Geometry", "MissingFeatureError", "MissingStageError", "StoreMismatchError"]


class MissingFeatureError(DataError, KeyError):
    """A store lacks a feature a model reads."""


class MissingStageError(DataError, KeyError):
    """A store has no record of a stage whose parameters a model reads."""


class StoreMismatchError(DataError, ValueError):
    """Two stores of a run computed what a model reads differently, or hold the same clip."""


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

    def size(self, feature: FeatureDef | str, dim: str) -> int:
        """The size of ``dim`` of ``feature`` (its definition or its name)."""
        name = _name(feature)
        try:
            return int(self.sizes[name][dim])
        except KeyError:
            raise KeyError(f"{self.model}: no size of {name}.{dim} (it reads {sorted(self.sizes)})") from None

    def refuse(self, reason: str, *dims: tuple[FeatureDef | str, str]) -> RecipeError:
        """A :class:`RecipeError` for ``reason``, naming each (feature, dim)'s size and the parameter that set it."""
        where = "; ".join(f"{_name(f)} has {d} = {self.size(f, d)}, set by {feature_def(_name(f)).source(d)}"
                          for f, d in dims)
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
        if isinstance(source, FeatureStore):
            return cls.over([source])
        return cls.open([source])

    @classmethod
    def open(cls, locations: Sequence[str | os.PathLike], expect_ids: Sequence[str | None] = ()) -> ClipTable:
        """A clip table over the stores at ``locations`` (folders, zips or URLs), in that order.

        Parameters
        ----------
        locations : sequence of str or PathLike
        expect_ids : sequence of str or None, optional
            One per location: the store id its manifest must have (None: any).

        Raises
        ------
        UsageError
            A location is given twice, or ``expect_ids`` does not pair with ``locations``.
        """
        locations = [public_address(loc) for loc in locations]
        if not locations:
            raise UsageError("no feature store given")
        repeated = sorted({loc for loc in locations if locations.count(loc) > 1})
        if repeated:
            raise UsageError(f"store {repeated[0]} is given twice")
        if expect_ids and len(expect_ids) != len(locations):
            raise UsageError(f"{len(expect_ids)} store ids for {len(locations)} stores; give one --store-id per "
                             "--store, in the same order")
        ids = list(expect_ids) or [None] * len(locations)
        return cls.over([_open(loc, expected) for loc, expected in zip(locations, ids)])

    @classmethod
    def over(cls, stores: Sequence[FeatureStore]) -> ClipTable:
        """A clip table over opened stores; with more than one, ids become ``dataset/sample``.

        Raises
        ------
        StoreMismatchError
            Two stores hold a clip of the same dataset under the same id.
        """
        tables = []
        for store in stores:
            table = store.samples.copy()
            inner = table["sample"].astype(str)
            table.insert(1, "store", store.path)
            table.insert(2, "store_sample", inner)
            if len(stores) > 1:
                table["sample"] = table["dataset"].astype(str) + "/" + inner
            tables.append(table)
        samples = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["sample"])
        repeated = samples[samples["sample"].duplicated(keep=False)]
        if len(repeated):
            first = repeated.iloc[0]["sample"]
            where = repeated.loc[repeated["sample"] == first, "store"].tolist()
            raise StoreMismatchError(f"stores {where[0]} and {where[1]} both hold clip {first}; give each clip once")
        return cls({store.path: store for store in stores}, samples)

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
        return self.read(FRAME.name, sample)

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

    def agree(self, features: Sequence[str], model: str) -> None:
        """Raise unless every store computed ``features`` the same way.

        For each feature, the stage that wrote it and every stage upstream of
        it (by the first store's build record), plus the shared source
        settings, must have the same code version and parameters in every
        store: clips of two stores then differ only in their source videos.

        Raises
        ------
        StoreMismatchError
            Naming both stores, the stage parameter and its two values.
        """
        keys = list(self.stores)
        if len(keys) < 2:
            return
        records = {key: self.stores[key].record for key in keys}
        for key, record in records.items():
            if record is None:
                raise StoreMismatchError(f"{key}: no build record; rebuild the store with `mepipe build`")
        first = keys[0]
        stages = _chain(records[first], features)
        for key in keys[1:]:
            for stage in stages:
                a, b = records[first].stages.get(stage), records[key].stages.get(stage)
                if b is None:
                    raise StoreMismatchError(f"{model} reads {', '.join(features)}: store {first} computed them "
                                             f"with stage {stage}, store {key} has no record of it")
                if a.version != b.version:
                    raise StoreMismatchError(f"{model} reads {', '.join(features)}: stores {first} and {key} "
                                             f"differ in the code version of stage {stage} ({a.version} vs "
                                             f"{b.version}); rebuild one with the other's mepipe")
                _refuse_difference(model, features, first, key, stage, a.params, b.params)
            for name in sorted(set(records[first].shared_params) | set(records[key].shared_params)):
                _refuse_difference(model, features, first, key, name, records[first].shared_params.get(name, {}),
                                   records[key].shared_params.get(name, {}))

    def geometry(self, features: Sequence[str], model: str) -> Geometry:
        """Sizes of ``features`` (from the first clip of each store that has them all); stores must agree.

        Raises
        ------
        StoreMismatchError
            Two stores hold a feature at different sizes, or computed it with different parameters.
        """
        self.agree(features, model)
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
                    raise StoreMismatchError(f"{model}: stores {first[feature]} and {key} hold {feature} at "
                                             f"different sizes ({found[feature]} vs {sizes}); build them with the "
                                             "same parameters")
                found.setdefault(feature, sizes)
                first.setdefault(feature, key)
        if set(found) != set(features):
            raise MissingFeatureError(f"{model}: no clip holds all of {', '.join(features)}")
        return Geometry(model, found, self)

    def stage_params(self, stage: str, reader: str = "this run") -> dict[str, Any]:
        """The recorded parameters of ``stage``; every store of the run must record the same.

        Raises
        ------
        MissingStageError
            A store has no record of the stage; the message names ``reader``
            (what needs the parameters) and the ``mepipe build`` command that adds it.
        """
        seen: dict[str, dict[str, Any]] = {}
        for key, store in self.stores.items():
            record = store.record
            if record is None or stage not in record.stages:
                source = f" --dataset {record.dataset} --root {record.source_root}" if record is not None else ""
                raise MissingStageError(f"{key}: {reader} reads the parameters of stage {stage}, which the store "
                                        f"has no record of; build it with `mepipe build{source} --store {key} "
                                        f"--features {stage}`")
            seen[key] = record.stages[stage].params
        (first, values), *others = seen.items()
        for key, other in others:
            _refuse_difference("this run", (), first, key, stage, values, other)
        return values

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

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able summary of the stores, in order (for run reports; :meth:`reopen` reads it back).

        Each entry: ``location`` (as given), ``path`` (absolute for local
        stores), ``store_id`` (the hash of its manifest; None for a store
        without one), ``dataset``, ``schema_version`` and ``n_clips``.
        """
        out = []
        for key, store in self.stores.items():
            out.append({"location": key, "path": key if "://" in key else os.path.abspath(key),
                        "store_id": store_id(store), "dataset": store.record.dataset if store.record else None,
                        "schema_version": store.schema_version,
                        "n_clips": int((self.samples["store"] == key).sum())})
        return out

    @classmethod
    def reopen(cls, described: Sequence[Mapping[str, Any]]) -> ClipTable:
        """The clip table a run read, from :meth:`describe`'s entries, each store pinned to its recorded id."""
        return cls.open([d["location"] for d in described], [d.get("store_id") for d in described])


def _name(feature: FeatureDef | str) -> str:
    return feature.name if isinstance(feature, FeatureDef) else feature


def store_id(store: FeatureStore) -> str | None:
    """A store's id (the hash of its manifest), or None for a store without a manifest."""
    return getattr(store, "store_id", None)


def _open(location: str, expect_id: str | None) -> FeatureStore:
    if expect_id is None:
        return open_store(location)
    store = open_store(location)
    if store_id(store) != expect_id:
        raise StoreMismatchError(f"{location}: its store id is {store_id(store)}, not {expect_id} as asked "
                                 "(--store-id); the store's content changed")
    return store


def _chain(record: Any, features: Sequence[str]) -> list[str]:
    """The recorded stages that wrote ``features`` and every stage upstream of them, sorted."""
    todo = [s for s in (record.producer(f) for f in features) if s is not None]
    seen: set[str] = set()
    while todo:
        stage = todo.pop()
        if stage in seen or stage not in record.stages:
            continue
        seen.add(stage)
        todo += list(record.stages[stage].upstream)
    return sorted(seen)


def _flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """Nested parameters as ``{"tvl1.nscales": 5, ...}``."""
    if isinstance(params, Mapping):
        out: dict[str, Any] = {}
        for k, v in params.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: params}


def _refuse_difference(model: str, features: Sequence[str], store_a: str, store_b: str, stage: str,
                       a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """Raise :class:`StoreMismatchError` at the first parameter of ``stage`` the two stores set differently."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    for name in sorted(set(flat_a) | set(flat_b)):
        if flat_a.get(name, "(unset)") != flat_b.get(name, "(unset)"):
            what = f"{model} reads {', '.join(features)}, but" if features else f"{model}:"
            raise StoreMismatchError(
                f"{what} stores {store_a} and {store_b} differ in {stage}.{name} "
                f"({flat_a.get(name, '(unset)')!r} vs {flat_b.get(name, '(unset)')!r}); rebuild one with the "
                "other's parameters (mepipe build --config)")
