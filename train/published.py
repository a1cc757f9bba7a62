"""What a paper publishes for its network, as data: :class:`Published` (for ``mepipe reproduce``).

Each network's recipe lists its paper's figures (:attr:`mepipe.train.recipe.Recipe.published`):
one entry per corpus, protocol and label scheme as the paper ran it, with
the table it comes from. SPEC §6 summarises them; the papers are in
``../shared/papers``. Figures are fractions (0.7114, not 71.14 %). ``f1``
is the paper's own F1, which is not always the MEGC 2019 UF1 (see each
entry's ``note``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CORPORA", "Published", "corpus_of"]

CORPORA = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC-HS", "composite": "MEGC 2019 composite",
           "casme-sq": "CAS(ME)²", "samm-lv": "SAMM Long Videos", "casme": "CASME", "casme3": "CAS(ME)³",
           "4dme": "4DME", "mmew": "MMEW", "meb": "MEB cross-dataset"}
"""Corpus keys and the names the papers give them (``casme-sq`` and ``samm-lv``: the MEGC spotting corpora of
long videos, :data:`mepipe.train.spotting_eval.MEGC2020_BASELINE`; ``meb``: MEB's cross-dataset benchmark over
six corpora, :mod:`mepipe.train.meb_benchmark`)."""

_CORPUS_OF = {"casme2": "casme2", "samm": "samm", "smic": "smic",
              # The demo corpora (``mepipe build --dataset demo…``) are written in these corpora's layouts and labels.
              "demo": "samm", "demo-casme2": "casme2", "demo-smic": "smic", "demo-casme3": "casme3",
              "casme-sq": "casme-sq", "samm-lv": "samm-lv", "demo-lv": "samm-lv",
              "casme": "casme", "casme3": "casme3", "4dme": "4dme", "mmew": "mmew"}


def corpus_of(dataset: str) -> str | None:
    """The corpus (a :data:`CORPORA` key) a store's dataset is, or stands in for; None for another dataset."""
    return _CORPUS_OF.get(str(dataset).lower())


@dataclass(frozen=True)
class Published:
    """One published result of a network.

    Attributes
    ----------
    corpus : str
        The corpus tested on (a :data:`CORPORA` key; ``composite`` for the whole MEGC 2019 composite).
    labels : str
        Label scheme (``mepipe.train.labels``) matching the paper's classes.
    protocol : {"loso", "megc2019", "cross", "meb"}
    figures : tuple of (str, float)
        Metric -> value: ``accuracy``, ``f1`` (the paper's F1), ``uf1``, ``uar``, ``spotting_auc``; for AU
        targets ``f1_macro`` and ``f1_binary`` (the mean over the AUs of each AU's F1).
    source : str
        Paper and table.
    part : str, optional
        ``megc2019`` and ``meb``: the dataset part of the composite (a corpus key) whose figures these are; None
        for the whole.
    train_corpus : str, optional
        ``cross``: the corpus trained on.
    note : str
        Where the paper's protocol or metric differs from what mepipe runs.
    label_version : str, optional
        The label version (:data:`mepipe.train.labels.LABEL_VERSIONS`) the
        paper's clips were labelled by, which ``mepipe reproduce`` trains
        with: ``casme2-2014`` for CASME II in papers before its 2019 sheet.
    no_column : tuple of (str, str)
        Metric -> why no figure of ours stands beside it (the paper's own
        F1, say); metrics not listed get a general reason in the table.
    """

    corpus: str
    labels: str
    protocol: str
    figures: tuple[tuple[str, float], ...]
    source: str
    part: str | None = None
    train_corpus: str | None = None
    note: str = ""
    label_version: str | None = None
    no_column: tuple[tuple[str, str], ...] = ()

    @property
    def tested(self) -> str:
        """The corpus whose clips are tested: the composite's part, or the corpus."""
        return self.part or self.corpus

    def describe(self) -> str:
        """Corpus and protocol in words, e.g. ``CASME II → SMIC-HS (cross)``."""
        if self.protocol == "megc2019":
            return f"{CORPORA['composite']}" + (f": {CORPORA[self.part]} part" if self.part else "")
        if self.protocol == "meb":
            return f"{CORPORA['meb']} ({'AUs' if self.labels.startswith('au:') else 'emotions'})" + \
                (f": {CORPORA[self.part]} held out" if self.part else "")
        if self.protocol == "cross":
            return f"{CORPORA[self.train_corpus]} → {CORPORA[self.corpus]}"
        return CORPORA[self.corpus]
