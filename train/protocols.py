"""Evaluation protocols as pure functions from a samples table to folds (SPEC §4).

Splits are data: every protocol reads the ``sample``, ``subject`` and
``dataset`` columns of a table (one row per sample, e.g. the store's sample
coordinates after a label scheme dropped some) and returns a list of
:class:`Fold`. A person is identified by (dataset, subject): subject "01" of
CASME II and subject "01" of another dataset are different people, so they
are never held out together nor counted as overlapping.

References
----------
.. [1] J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - the second
   facial micro-expressions grand challenge", IEEE FG 2019 (composite LOSO).
   https://doi.org/10.1109/FG.2019.8756611
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Fold", "composite", "cross_dataset", "loso", "lovo", "overlapping_subjects"]

_COLUMNS = ("sample", "subject", "dataset")


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes
    ----------
    name : str
        What is held out: ``"dataset:subject"`` (LOSO), the sample id (LOVO)
        or ``"train->test"`` (cross-dataset).
    train, test : tuple of str
        Sample ids, in the order of the samples table.
    """

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]


def loso(samples: pd.DataFrame) -> list[Fold]:
    """Leave one subject out: one fold per (dataset, subject), sorted by dataset then subject.

    Parameters
    ----------
    samples : pandas.DataFrame
        Columns ``sample`` (unique ids), ``subject`` and ``dataset``.

    Returns
    -------
    list of Fold
        Every sample is tested exactly once; a fold's training side holds no
        sample of its test subject.
    """
    table = _table(samples)
    return [
        Fold(f"{dataset}:{subject}", tuple(table.loc[~held, "sample"]), tuple(table.loc[held, "sample"]))
        for (dataset, subject), held in _groups(table, ["dataset", "subject"])
    ]


def lovo(samples: pd.DataFrame) -> list[Fold]:
    """Leave one video out: one fold per sample, in table order.

    The training side keeps the test sample's subject (that is the protocol;
    it measures subject-dependent recognition).
    """
    table = _table(samples)
    ids = tuple(table["sample"])
    return [Fold(sample, ids[:i] + ids[i + 1:], (sample,)) for i, sample in enumerate(ids)]


def composite(samples: pd.DataFrame, datasets: Sequence[str] | None = None) -> list[Fold]:
    """Composite-database LOSO (MEGC 2019): one fold per subject of every dataset together.

    Parameters
    ----------
    samples : pandas.DataFrame
        Columns ``sample``, ``subject``, ``dataset``; labels already mapped
        to a shared scheme (e.g. megc-3).
    datasets : sequence of str, optional
        Keep only these datasets (each must be present), e.g.
        ``("smic", "casme2", "samm")``; default: all datasets of the table.
    """
    table = _table(samples)
    if datasets is not None:
        absent = sorted(set(datasets) - set(table["dataset"]))
        if absent:
            raise ValueError(f"datasets {absent} have no samples; present: {sorted(set(table['dataset']))}")
        table = table[table["dataset"].isin(list(datasets))]
    return loso(table)


def cross_dataset(samples: pd.DataFrame, *, train: str | Sequence[str], test: str | Sequence[str]) -> list[Fold]:
    """Train on some datasets, test on others: a single fold.

    Parameters
    ----------
    samples : pandas.DataFrame
        Columns ``sample``, ``subject``, ``dataset``.
    train, test : str or sequence of str
        Dataset names of each side; they must be disjoint and present.
    """
    table = _table(samples)
    sides = {side: (names,) if isinstance(names, str) else tuple(names)
             for side, names in (("train", train), ("test", test))}
    shared = sorted(set(sides["train"]) & set(sides["test"]))
    if shared:
        raise ValueError(f"datasets {shared} are on both sides; train and test must be disjoint")
    present = set(table["dataset"])
    for side, names in sides.items():
        absent = sorted(set(names) - present)
        if not names or absent:
            raise ValueError(f"{side} datasets {absent or list(names)} have no samples; present: {sorted(present)}")
    ids = {side: tuple(table.loc[table["dataset"].isin(list(names)), "sample"]) for side, names in sides.items()}
    return [Fold(f"{'+'.join(sides['train'])}->{'+'.join(sides['test'])}", ids["train"], ids["test"])]


def overlapping_subjects(fold: Fold, samples: pd.DataFrame) -> set[tuple[str, str]]:
    """(dataset, subject) pairs with samples on both sides of a fold; empty for a leak-free split."""
    table = _table(samples).set_index("sample")
    people = {side: set(zip(table.loc[list(ids), "dataset"], table.loc[list(ids), "subject"]))
              for side, ids in (("train", fold.train), ("test", fold.test))}
    return people["train"] & people["test"]


def _table(samples: pd.DataFrame) -> pd.DataFrame:
    """The three protocol columns as strings, after checking ids and subjects."""
    missing = [c for c in _COLUMNS if c not in samples.columns]
    if missing:
        raise KeyError(f"samples lack column(s) {missing}; found {list(samples.columns)}")
    table = samples.loc[:, list(_COLUMNS)]
    blank = table.isna() | (table.astype(str).apply(lambda c: c.str.strip()) == "")
    if blank.any().any():
        rows = table[blank.any(axis=1)]
        raise ValueError(f"{len(rows)} sample(s) lack a sample id, subject or dataset, e.g. {rows.iloc[0].to_dict()}")
    table = table.astype(str).reset_index(drop=True)
    duplicated = table["sample"][table["sample"].duplicated()]
    if len(duplicated):
        raise ValueError(f"sample ids must be unique; repeated: {sorted(set(duplicated))[:5]} "
                         "(qualify them with the dataset name)")
    return table


def _groups(table: pd.DataFrame, keys: list[str]) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
    """(key, boolean row mask) per distinct key, sorted by key."""
    for key, rows in sorted(table.groupby(keys).indices.items()):
        mask = np.zeros(len(table), dtype=bool)
        mask[rows] = True
        yield key, mask
