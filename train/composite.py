"""The MEGC 2019 composite list: which clips, with which labels, the composite protocol evaluates.

The challenge's organisers published the composite as a list of clips
(``dataset, subject, clip, class``; no header; class 0 = negative,
1 = positive, 2 = surprise): 442 clips of SMIC-HS, CASME II and SAMM. The
list, not the annotation sheets, decides which clips are in and what their
labels are (the 2019 CASME II sheet maps 150 clips to the three classes; the
list holds 145). A copy ships with mepipe (:data:`OFFICIAL_LIST`).

The list writes names its own way: SAMM subject ``6`` for folder ``006``,
CASME II subject ``sub01`` for the adapter's ``01``, SMIC subject ``s01``
and clip ``s01_ne_01`` for folders ``s1`` and ``s1_ne_01``. Names are
therefore matched with numbers compared as numbers (:func:`name_key`); a
list or store in which two names meet at one key is refused rather than
guessed at.

References
----------
.. [1] J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - the second
   facial micro-expressions grand challenge", IEEE FG 2019.
   https://doi.org/10.1109/FG.2019.8756611
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from mepipe.featurestore.errors import DataError, MissingPathError

__all__ = ["COMPOSITE_CLASSES", "OFFICIAL_LIST", "CompositeEntry", "CompositeList", "CompositeSelection",
           "name_key", "read_composite_list", "select_composite", "subject_key"]

OFFICIAL_LIST = "megc2019-composite-3class.csv"
"""File name of the official list in the package's ``lists`` folder."""

COMPOSITE_CLASSES = ("negative", "positive", "surprise")
"""The list's class coding: class ``k`` of the list is ``COMPOSITE_CLASSES[k]``."""

_NUMBER = re.compile(r"\d+")


def name_key(name: object) -> str:
    """A name as the list and the stores are matched on: lower case, every number without leading zeros.

    >>> name_key("s01_ne_01"), name_key("s1_ne_01"), name_key("EP02_01f")
    ('s1_ne_1', 's1_ne_1', 'ep2_1f')
    """
    return _NUMBER.sub(lambda m: str(int(m.group())), str(name).strip().lower())


def subject_key(subject: object) -> str:
    """A subject as matched: its number when it holds exactly one (``sub01``, ``s1``, ``006`` -> ``1``, ``1``, ``6``).

    The list writes CASME II's subject 01 as ``sub01`` and SMIC's s1 as
    ``s01``; a subject without exactly one number is matched by :func:`name_key`.
    """
    numbers = _NUMBER.findall(str(subject))
    return str(int(numbers[0])) if len(numbers) == 1 else name_key(subject)


@dataclass(frozen=True)
class CompositeEntry:
    """One clip of the list.

    Attributes
    ----------
    dataset, subject, clip : str
        As the list writes them.
    label : str
        One of :data:`COMPOSITE_CLASSES`.
    row : int
        1-based line of the list (named in errors).
    """

    dataset: str
    subject: str
    clip: str
    label: str
    row: int

    @property
    def name(self) -> str:
        """``dataset/subject/clip`` as the list writes it (how a missing clip is named)."""
        return f"{self.dataset}/{self.subject}/{self.clip}"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dataset, subject_key(self.subject), name_key(self.clip)


@dataclass(frozen=True)
class CompositeList:
    """A composite list: its entries in file order and where it came from.

    Attributes
    ----------
    source : str
        The file read (named in reports and errors).
    entries : tuple of CompositeEntry
    """

    source: str
    entries: tuple[CompositeEntry, ...]

    def __post_init__(self) -> None:
        seen: dict[tuple[str, str, str], CompositeEntry] = {}
        for entry in self.entries:
            other = seen.setdefault(entry.key, entry)
            if other is not entry:
                raise DataError(f"{self.source}: rows {other.row} and {entry.row} name the same clip "
                                f"({other.name} and {entry.name})")

    @property
    def datasets(self) -> list[str]:
        """The datasets the list names, in order of first appearance."""
        return list(dict.fromkeys(e.dataset for e in self.entries))

    def counts(self) -> dict[str, int]:
        """Listed clips per dataset."""
        return dict(Counter(e.dataset for e in self.entries))


def read_composite_list(path: str | Path | None = None) -> CompositeList:
    """Read a composite list; ``None`` reads the official MEGC 2019 list shipped with mepipe.

    Raises
    ------
    MissingPathError
        The file does not exist.
    DataError
        A row is not ``dataset, subject, clip, class`` with class 0, 1 or 2, or two rows name one clip.
    """
    if path is None:
        text = resources.files("mepipe.train").joinpath("lists", OFFICIAL_LIST).read_text(encoding="utf-8")
        source = f"mepipe:lists/{OFFICIAL_LIST}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MissingPathError(f"composite list {path} does not exist") from None
        source = str(path)
    entries = []
    for row, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if len(cells) != 4 or not all(cells[:3]) or cells[3] not in {str(k) for k in range(len(COMPOSITE_CLASSES))}:
            raise DataError(f"{source} row {row}: expected 'dataset,subject,clip,class' with class 0 (negative), "
                            f"1 (positive) or 2 (surprise); found {','.join(cells)!r}")
        entries.append(CompositeEntry(cells[0], cells[1], cells[2], COMPOSITE_CLASSES[int(cells[3])], row))
    if not entries:
        raise DataError(f"{source}: the composite list holds no clip")
    return CompositeList(source, tuple(entries))


@dataclass
class CompositeSelection:
    """The clips of a samples table that a composite list names, with the list's labels.

    Attributes
    ----------
    table : pandas.DataFrame
        The listed rows of the samples table, in table order, with a
        ``list_label`` column (a :data:`COMPOSITE_CLASSES` name).
    missing : dict of str to list of str
        Per dataset the list names, its listed clips absent from the table
        (``dataset/subject/clip`` as the list writes them).
    unlisted : list of str
        Sample ids of the table that the list does not name.
    listed : dict of str to int
        Listed clips per dataset.
    """

    table: pd.DataFrame
    missing: dict[str, list[str]] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)
    listed: dict[str, int] = field(default_factory=dict)

    def absent_datasets(self) -> list[str]:
        """Datasets of the list of which the table holds no listed clip (no store was given for them)."""
        return [d for d, n in self.listed.items() if len(self.missing.get(d, ())) == n]


def select_composite(samples: pd.DataFrame, listing: CompositeList) -> CompositeSelection:
    """Match a samples table (columns ``sample``, ``dataset``, ``subject``, ``clip``) against a list.

    Parameters
    ----------
    samples : pandas.DataFrame
        E.g. a run's clips from several stores.
    listing : CompositeList

    Returns
    -------
    CompositeSelection

    Raises
    ------
    DataError
        Two clips of the table meet at one key (the list could not say which it means).
    """
    missing_columns = [c for c in ("sample", "dataset", "subject", "clip") if c not in samples.columns]
    if missing_columns:
        raise KeyError(f"samples lack column(s) {missing_columns} needed to match a composite list")
    keys = [(str(d), subject_key(s), name_key(c))
            for d, s, c in zip(samples["dataset"], samples["subject"], samples["clip"])]
    row_of: dict[tuple[str, str, str], int] = {}
    for position, key in enumerate(keys):
        other = row_of.setdefault(key, position)
        if other != position:
            ids = samples["sample"].iloc[[other, position]].tolist()
            raise DataError(f"clips {ids[0]!r} and {ids[1]!r} of {key[0]} both match one name of "
                            f"{listing.source}; their subject and clip names differ only in leading zeros")
    labels: dict[int, str] = {}
    missing: dict[str, list[str]] = {}
    for entry in listing.entries:
        position = row_of.get(entry.key)
        if position is None:
            missing.setdefault(entry.dataset, []).append(entry.name)
        else:
            labels[position] = entry.label
    chosen = sorted(labels)
    table = samples.iloc[chosen].assign(list_label=[labels[p] for p in chosen]).reset_index(drop=True)
    unlisted = [str(samples["sample"].iloc[p]) for p in range(len(samples)) if p not in labels]
    return CompositeSelection(table, missing, unlisted, listing.counts())

