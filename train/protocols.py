"""Evaluation protocols as pure functions from a samples table to folds.

Splits are data: every protocol reads the ``sample``, ``subject`` and
``dataset`` columns of a table (one row per sample, e.g. the clips of a
run's stores after a label scheme dropped some) and returns a list of
:class:`Fold`. A person is identified by (dataset, subject), written
``dataset/subject`` (:func:`person`): subject "01" of CASME II and subject
"01" of another dataset are different people, so they are never held out
together nor counted as overlapping.

- :func:`loso`: leave one subject (person) out; :func:`megc2019` is LOSO over
  the clips of the MEGC 2019 composite list (SMIC-HS, CASME II and SAMM
  together; :mod:`mepipe.train.composite` selects them).
- :func:`lovo`: leave one video out.
- :func:`cross_dataset`: train on some datasets, test on others.
- :func:`lodo`: leave one dataset out, one fold per dataset; a named list
  (:data:`DATASET_LISTS`, MEB's six corpora) restricts it to those datasets.
  The ``meb`` protocol is MEB's cross-dataset benchmark: :func:`lodo` over
  MEB's list, of whichever of its corpora the stores hold (a demo corpus
  stands for the corpus it is written as: ``demo`` for SAMM, ``demo-casme2``
  for CASME II, ``demo-casme3`` for CAS(ME)³).
- :func:`final`: one fold training on every sample and testing none (a
  model kept for later use, ``mepipe train --final``).
- :func:`validation_split`: people of a fold's training side held out to
  choose epochs on, never its test side.

References
----------
.. [1] J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - the second
   facial micro-expressions grand challenge", IEEE FG 2019 (composite LOSO).
   https://doi.org/10.1109/FG.2019.8756611
.. [2] T. Varanka, Y. Li, W. Peng, G. Zhao, "Data leakage and evaluation
   issues in micro-expression analysis", IEEE Trans. Affective Computing
   15(1), 2024 (MEB's cross-dataset protocol). https://doi.org/10.1109/TAFFC.2023.3265063
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .composite import CompositeList, select_composite
from .labels import DEMO_CORPORA

__all__ = ["DATASET_LISTS", "FINAL", "PROTOCOLS", "Fold", "ValidationSplit", "corpus", "cross_dataset", "final", "listed",
           "lodo", "loso", "lovo", "megc2019", "overlapping_subjects", "person", "validation_split"]

PROTOCOLS = ("loso", "lovo", "megc2019", "cross", "lodo", "meb", "final")
"""Names of the protocols a run can use (``--protocol``); ``meb`` is :func:`lodo` over MEB's corpora, ``final`` is
also ``--final``."""

FINAL = "final"
"""The protocol (and its one fold's name) that trains on everyone and tests nothing."""

_COLUMNS = ("sample", "subject", "dataset")

DATASET_LISTS: dict[str, tuple[str, ...]] = {
    # MEB's CrossDataset (tvaranka/meb, meb/datasets/datasets.py): Casme, Casme2, SAMM, Fourd, MMEW, Casme3A.
    "meb": ("casme", "casme2", "samm", "4dme", "mmew", "casme3"),
}
"""Named dataset lists for leave-one-dataset-out, by name (dataset names as the adapters write them); the ``meb``
protocol is leave-one-dataset-out over ``DATASET_LISTS["meb"]``."""


def corpus(dataset: object) -> str:
    """The corpus a dataset is, or stands for: a demo corpus's (:data:`~mepipe.train.labels.DEMO_CORPORA`)."""
    return DEMO_CORPORA.get(str(dataset), str(dataset))


def listed(datasets: pd.Series, names: str | Sequence[str]) -> pd.Series:
    """Which of ``datasets`` are (or stand for) one of ``names``: a :data:`DATASET_LISTS` name or dataset names."""
    wanted = DATASET_LISTS.get(names, (names,)) if isinstance(names, str) else tuple(names)
    return datasets.map(corpus).isin(wanted)


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes
    ----------
    name : str
        What is held out: the person ``"dataset/subject"`` (LOSO), the sample
        id (LOVO), ``"train->test"`` (cross-dataset) or the dataset (LODO).
    train, test : tuple of str
        Sample ids, in the order of the samples table.
    """

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]


def person(dataset: object, subject: object) -> str:
    """The one way a person is named: ``dataset/subject`` (``casme2/01``)."""
    return f"{dataset}/{subject}"


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
        Fold(person(dataset, subject), tuple(table.loc[~held, "sample"]), tuple(table.loc[held, "sample"]))
        for (dataset, subject), held in _groups(table, ["dataset", "subject"])
    ]


def final(samples: pd.DataFrame) -> list[Fold]:
    """One fold named ``final`` that trains on every sample, in table order, and tests none."""
    return [Fold(FINAL, tuple(_table(samples)["sample"]), ())]


def lovo(samples: pd.DataFrame) -> list[Fold]:
    """Leave one video out: one fold per sample, in table order.

    The training side keeps the test sample's subject (that is the protocol;
    it measures subject-dependent recognition).
    """
    table = _table(samples)
    ids = tuple(table["sample"])
    return [Fold(sample, ids[:i] + ids[i + 1:], (sample,)) for i, sample in enumerate(ids)]


def megc2019(samples: pd.DataFrame, listing: CompositeList) -> list[Fold]:
    """MEGC 2019 composite protocol: the listed clips only, one subject out over all datasets together.

    Parameters
    ----------
    samples : pandas.DataFrame
        Columns ``sample``, ``subject``, ``dataset`` and ``clip``: clips of
        whichever of SMIC-HS, CASME II and SAMM were given.
    listing : CompositeList
        The composite list (:func:`mepipe.train.composite.read_composite_list`);
        clips it does not name are in no fold.

    Returns
    -------
    list of Fold
        One per person with a listed clip (68 with all three datasets).
        UF1 and UAR are computed from per-class counts pooled over all
        folds, for the whole composite and per dataset.
    """
    return loso(select_composite(samples, listing).table)


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


def lodo(samples: pd.DataFrame, datasets: str | Sequence[str] | None = None) -> list[Fold]:
    """Leave one dataset out: one fold per dataset, tested on it and trained on all the others.

    Parameters
    ----------
    samples : pandas.DataFrame
        Columns ``sample``, ``subject``, ``dataset``.
    datasets : str or sequence of str, optional
        Only these datasets (a :data:`DATASET_LISTS` name such as ``"meb"``,
        or names; a demo corpus counts as the corpus it stands for); the
        others' samples are in no fold. Default: every dataset.

    Raises
    ------
    ValueError
        Fewer than two of the datasets have samples.
    """
    table = _table(samples)
    if datasets is not None:
        table = table[listed(table["dataset"], datasets)]
    names = sorted(set(table["dataset"]))
    if len(names) < 2:
        raise ValueError(f"leave-one-dataset-out needs at least two datasets; the samples hold {names}")
    return [Fold(name, tuple(table.loc[table["dataset"] != name, "sample"]),
                 tuple(table.loc[table["dataset"] == name, "sample"])) for name in names]


@dataclass(frozen=True)
class ValidationSplit:
    """A fold's training side cut into the clips a network is fitted on and those its epochs are chosen on.

    Attributes
    ----------
    fit, validation : tuple of str
        Sample ids, in the fold's order; together they are the fold's training side.
    people : tuple of str
        The validation people (``dataset/subject``).
    """

    fit: tuple[str, ...]
    validation: tuple[str, ...]
    people: tuple[str, ...]


def validation_split(fold: Fold, samples: pd.DataFrame, n_people: int, seed: int = 0) -> ValidationSplit:
    """Hold out ``n_people`` people of the fold's training side for validation (never a test clip).

    The people are drawn at random, reproducibly from ``seed`` and the
    fold's name, among the people of the training side only.

    Raises
    ------
    ValueError
        The training side holds no more than ``n_people`` people.
    """
    if n_people < 1:
        raise ValueError(f"n_people must be >= 1, got {n_people}")
    table = _table(samples).set_index("sample")
    train = table.loc[list(fold.train)]
    owners = [person(d, s) for d, s in zip(train["dataset"], train["subject"])]
    people = sorted(set(owners))
    if len(people) <= n_people:
        raise ValueError(f"fold {fold.name} trains on {len(people)} people; holding out {n_people} for validation "
                         "would leave none to fit on (lower --val-subjects)")
    rng = np.random.default_rng([seed, zlib.crc32(fold.name.encode())])
    chosen = {people[i] for i in rng.choice(len(people), size=n_people, replace=False)}
    fit = tuple(s for s, p in zip(fold.train, owners) if p not in chosen)
    validation = tuple(s for s, p in zip(fold.train, owners) if p in chosen)
    return ValidationSplit(fit, validation, tuple(sorted(chosen)))


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
