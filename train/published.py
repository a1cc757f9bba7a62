"""The figures the papers publish for their networks, as data (for ``mepipe reproduce``).

Each :class:`Published` entry is one network on one corpus under one
protocol and label scheme, as the paper ran it, with the table it comes
from. SPEC §6 summarises them; the papers are in ``../shared/papers``.
Figures are fractions (0.7114, not 71.14 %). ``f1`` is the paper's own F1,
which is not always the MEGC 2019 UF1 (see each entry's ``note``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CORPORA", "PUBLISHED", "Published", "corpus_of"]

CORPORA = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC-HS", "composite": "MEGC 2019 composite"}
"""Corpus keys and the names the papers give them."""

_CORPUS_OF = {"casme2": "casme2", "samm": "samm", "smic": "smic",
              # The demo corpora (mepipe.pipeline.demo.PRESETS) are written in these corpora's layouts and labels.
              "demo": "samm", "demo-casme2": "casme2", "demo-smic": "smic"}


def corpus_of(dataset: str) -> str | None:
    """The corpus (a :data:`CORPORA` key) a store's dataset is, or stands in for; None for another dataset."""
    return _CORPUS_OF.get(str(dataset).lower())


@dataclass(frozen=True)
class Published:
    """One published result of a network.

    Attributes
    ----------
    model : str
        Registry name of the network.
    corpus : str
        The corpus tested on (a :data:`CORPORA` key; ``composite`` for the whole MEGC 2019 composite).
    labels : str
        Label scheme (``mepipe.train.labels``) matching the paper's classes.
    protocol : {"loso", "megc2019", "cross"}
    figures : tuple of (str, float)
        Metric -> value: ``accuracy``, ``f1`` (the paper's F1), ``uf1``, ``uar``, ``spotting_auc``.
    source : str
        Paper and table.
    part : str, optional
        ``megc2019``: the dataset part of the composite (a corpus key); None for the whole composite.
    train_corpus : str, optional
        ``cross``: the corpus trained on.
    note : str
        Where the paper's protocol or metric differs from what mepipe runs.
    """

    model: str
    corpus: str
    labels: str
    protocol: str
    figures: tuple[tuple[str, float], ...]
    source: str
    part: str | None = None
    train_corpus: str | None = None
    note: str = ""

    @property
    def tested(self) -> str:
        """The corpus whose clips are tested: the composite's part, or the corpus."""
        return self.part or self.corpus

    def describe(self) -> str:
        """Corpus and protocol in words, e.g. ``CASME II → SMIC-HS (cross)``."""
        if self.protocol == "megc2019":
            return f"{CORPORA['composite']}" + (f": {CORPORA[self.part]} part" if self.part else "")
        if self.protocol == "cross":
            return f"{CORPORA[self.train_corpus]} → {CORPORA[self.corpus]}"
        return CORPORA[self.corpus]


_MIAO = "Miao et al. 2019"
_XIA = "Xia et al. 2019"
_CHOI = "Choi & Song 2020"
_XIA_F1 = "Xia's F1 pools TP/FP/FN over the classes (its §IV-C), not the UF1 mepipe reports"
_CHOI_CROSS = ("Choi used 130 CASME II clips in three classes; mepipe maps CASME II by megc-3 "
               "(disgust and repression negative)")
_CHOI_SMIC = "SMIC-HS in its own three classes (megc-3 keeps them as labelled)"


def _choi(model: str, casme2: tuple[float, float], smic: tuple[float, float], composite: dict[str, tuple[float, float]],
          cross: tuple[tuple[float, float], tuple[float, float]]) -> tuple[Published, ...]:
    """Choi & Song's Tables 3, 6 and 7 for one of LFM or CLFM."""
    entries = [
        Published(model, "casme2", "casme2-5", "loso", (("accuracy", casme2[0]), ("f1", casme2[1])),
                  f"{_CHOI}, Table 3"),
        Published(model, "smic", "megc-3", "loso", (("accuracy", smic[0]), ("f1", smic[1])), f"{_CHOI}, Table 3",
                  note=_CHOI_SMIC),
    ]
    for part, (uf1, uar) in composite.items():
        entries.append(Published(model, "composite", "megc-3", "megc2019", (("uf1", uf1), ("uar", uar)),
                                 f"{_CHOI}, Table 6", part=None if part == "composite" else part))
    (to_smic, to_casme2) = cross
    entries += [
        Published(model, "smic", "megc-3", "cross", (("f1", to_smic[0]), ("accuracy", to_smic[1])),
                  f"{_CHOI}, Table 7", train_corpus="casme2", note=_CHOI_CROSS),
        Published(model, "casme2", "megc-3", "cross", (("f1", to_casme2[0]), ("accuracy", to_casme2[1])),
                  f"{_CHOI}, Table 7", train_corpus="smic", note=_CHOI_CROSS),
    ]
    return tuple(entries)


PUBLISHED: tuple[Published, ...] = (
    # Miao et al. 2019 (SHCNN), LOSO: CASME II in five classes (Table 7), SAMM in three (Table 8).
    Published("shcnn", "casme2", "casme2-5", "loso", (("accuracy", 0.7114), ("f1", 0.6981)), f"{_MIAO}, Table 7"),
    Published("shcnn", "samm", "samm-3", "loso", (("accuracy", 0.8647), ("f1", 0.8029)), f"{_MIAO}, Table 8"),
    # Xia et al. 2019, LOSO, four classes (SMIC has three of them): Table II.
    *(Published(model, corpus, "strcn-4", "loso", (("accuracy", acc), ("f1", f1)), f"{_XIA}, Table II",
                note=_XIA_F1 + ("; STRCN-A's mask is fitted on each fold's training clips (leak-free), "
                                "Xia's on every clip" if model == "strcn-a" else ""))
      for model, corpus, acc, f1 in (
          ("strcn-a", "smic", 0.531, 0.514), ("strcn-a", "casme2", 0.560, 0.542), ("strcn-a", "samm", 0.545, 0.492),
          ("strcn-g", "smic", 0.723, 0.695), ("strcn-g", "casme2", 0.803, 0.747), ("strcn-g", "samm", 0.786, 0.741))),
    # Kim et al. 2017, CASME II, five classes, LOSO: Table 4(a), spatio-temporal representation.
    Published("kim2017", "casme2", "casme2-5", "loso", (("accuracy", 0.6098),), "Kim et al. 2017, Table 4(a)"),
    # Nag et al. 2019, CASME II: recognition (Table 2) and spotting (Table 1).
    Published("nag2019", "casme2", "casme2-5", "loso", (("accuracy", 0.8146), ("spotting_auc", 0.9424)),
              "Nag et al. 2019, Tables 1-2",
              note="the paper states a 70/30 split and leave-one-out cross validation and not its classes; "
                   "mepipe runs LOSO on casme2-5"),
    # Choi & Song 2020: LOSO (Table 3), MEGC 2019 composite (Table 6), cross-dataset (Table 7).
    *_choi("lfm", casme2=(0.7398, 0.7165), smic=(0.7134, 0.7134),
           composite={"composite": (0.77, 0.75), "smic": (0.72, 0.71), "casme2": (0.87, 0.84), "samm": (0.67, 0.60)},
           cross=((0.5876, 0.5854), (0.6066, 0.6357))),
    *_choi("clfm", casme2=(0.7154, 0.7026), smic=(0.7134, 0.7134),
           composite={"composite": (0.75, 0.72), "smic": (0.71, 0.71), "casme2": (0.72, 0.77), "samm": (0.65, 0.51)},
           cross=((0.4978, 0.5549), (0.5779, 0.6279))),
)
"""Every published figure mepipe compares with, in the papers' order of SPEC §3."""
