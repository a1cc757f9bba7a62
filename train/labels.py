"""Label schemes: raw dataset labels -> the classes a network is trained on; AU vocabularies.

The store keeps every sample's raw emotion and objective class; a scheme,
chosen at training time, maps them to class indices. Schemes are data: a
:class:`LabelScheme` lists its classes and, per dataset, which raw labels
(matched case-insensitively, surrounding spaces ignored) go to which class.
A sample whose label the scheme does not map (CASME II's fear and sadness
under casme2-5, say) is dropped and counted, never guessed. A demo corpus
takes the rules of the corpus it is written as (:data:`DEMO_CORPORA`).

Action units are stored per clip as canonical codes (the sample column
``au_codes``, ``"4+10"``); :func:`au_matrix` turns them into the multi-hot
matrix of an AU vocabulary (:data:`AU_SETS`), the targets of AU detection.

Label versions (:data:`LABEL_VERSIONS`) reproduce a corpus's labels as an
older sheet gave them: the CASME II coding sheet of 2019 relabels three
sadness clips as surprise, which is why the papers' CASME II counts (246
clips under casme2-5: surprise 25, sadness 7) differ from the 2019 sheet's
(249: surprise 28, sadness 4). :func:`count_table` puts the counts of both
beside the papers'.

References
----------
.. [1] S. Miao, H. Xu, Z. Han, Y. Zhu, IEEE Access 7, 2019 (samm-3, casme2-5).
   https://doi.org/10.1109/ACCESS.2019.2921220
.. [2] Z. Xia, X. Hong, X. Gao, X. Feng, G. Zhao, IEEE Trans. Multimedia 22(3),
   2020, §IV-B (strcn-4). https://doi.org/10.1109/TMM.2019.2931351
.. [3] J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - the second
   facial micro-expressions grand challenge", IEEE FG 2019 (megc-3).
   https://doi.org/10.1109/FG.2019.8756611
.. [4] A. K. Davison, W. Merghani, M. H. Yap, "Objective classes for
   micro-facial expression recognition", J. Imaging 4(10), 2018 (objective).
   https://doi.org/10.3390/jimaging4100119
.. [5] T. Varanka, Y. Li, W. Peng, G. Zhao, "Data leakage and evaluation
   issues in micro-expression analysis", IEEE Trans. Affective Computing
   15(1), 2024 (MEB: objective-5, the AU sets; tvaranka/meb).
   https://doi.org/10.1109/TAFFC.2023.3265063
.. [6] W.-J. Yan, X. Li, S.-J. Wang, G. Zhao, Y.-J. Liu, Y.-H. Chen, X. Fu,
   "CASME II", PLoS ONE 9(1), 2014 (its class counts: surprise 25, sadness 7).
   https://doi.org/10.1371/journal.pone.0086041
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

__all__ = ["ANY_DATASET", "AU_SETS", "DEMO_CORPORA", "LABEL_VERSIONS", "PAPER_COUNTS", "SCHEMES", "LabelScheme",
           "LabelVersion", "apply_scheme", "apply_version", "au_matrix", "class_counts", "count_table", "get_scheme",
           "list_schemes"]

ANY_DATASET = "*"
"""Key of the rules used for datasets a scheme does not name."""

DEMO_CORPORA: Mapping[str, str] = MappingProxyType({
    "demo": "samm", "demo-casme2": "casme2", "demo-smic": "smic", "demo-casme3": "casme3", "demo-lv": "samm"})
"""Each synthetic demo corpus and the corpus whose layout and labels it is written in."""


@dataclass(frozen=True)
class LabelScheme:
    """A mapping from raw labels to an ordered list of classes.

    Attributes
    ----------
    name : str
        Scheme name (``--labels NAME``).
    classes : tuple of str
        Class names; a class's index is its position here.
    column : {"emotion", "objective_class"}
        The sample column holding the raw label.
    rules : mapping of str to (mapping of str to str)
        Per dataset name (or :data:`ANY_DATASET`), raw label (lower case) ->
        class name. A demo corpus without rules of its own uses its corpus's
        (:data:`DEMO_CORPORA`); datasets with no rules and no ``ANY_DATASET``
        entry are dropped entirely.
    """

    name: str
    classes: tuple[str, ...]
    column: str
    rules: Mapping[str, Mapping[str, str]]

    def __post_init__(self) -> None:
        if self.column not in ("emotion", "objective_class"):
            raise ValueError(f"scheme {self.name!r}: column must be 'emotion' or 'objective_class'")
        for dataset, mapping in self.rules.items():
            unknown = sorted(set(mapping.values()) - set(self.classes))
            if unknown:
                raise ValueError(f"scheme {self.name!r}, dataset {dataset!r}: targets {unknown} are not classes")
            if any(raw != raw.strip().lower() for raw in mapping):
                raise ValueError(f"scheme {self.name!r}, dataset {dataset!r}: raw labels must be stripped lower case")
        frozen = {dataset: MappingProxyType(dict(mapping)) for dataset, mapping in self.rules.items()}
        object.__setattr__(self, "rules", MappingProxyType(frozen))

    def class_of(self, dataset: str, raw: str) -> str | None:
        """Class name of one raw label of one dataset, or None when the scheme drops it."""
        mapping = self.rules.get(dataset, self.rules.get(DEMO_CORPORA.get(dataset, ""), self.rules.get(ANY_DATASET)))
        if mapping is None:
            return None
        return mapping.get(str(raw).strip().lower())


def _group(**classes: tuple[str, ...]) -> dict[str, str]:
    """``{raw: class}`` from ``class=(raw, ...)``."""
    return {raw: name for name, raws in classes.items() for raw in raws}


def _own(name: str, dataset: str, classes: tuple[str, ...]) -> LabelScheme:
    """A scheme of one corpus's own emotions, each its own class (other datasets dropped)."""
    return LabelScheme(name, classes, "emotion", {dataset: {c: c for c in classes}})


_NEGATIVE = ("anger", "contempt", "disgust", "fear", "sadness")
"""The negative basic emotions as SAMM, MMEW and CK+ name them (CK+ adds ``happy`` for happiness)."""

_OBJECTIVE = {**{str(i): str(i) for i in range(1, 8)},
              **{roman: str(i) for i, roman in enumerate(("i", "ii", "iii", "iv", "v", "vi", "vii"), 1)}}
"""Objective classes written 1-7 or I-VII -> "1".."7"."""

SCHEMES: Mapping[str, LabelScheme] = MappingProxyType({
    scheme.name: scheme
    for scheme in (
        # CASME II's five largest classes (Miao §III-A); sadness and fear dropped.
        LabelScheme(
            "casme2-5",
            ("happiness", "disgust", "repression", "surprise", "others"),
            "emotion",
            {ANY_DATASET: {c: c for c in ("happiness", "disgust", "repression", "surprise", "others")}},
        ),
        # SAMM in three classes (Miao §III-A, Table 9); "Other" dropped.
        LabelScheme(
            "samm-3",
            ("negative", "positive", "surprise"),
            "emotion",
            {ANY_DATASET: _group(negative=_NEGATIVE, positive=("happiness",), surprise=("surprise",))},
        ),
        # Xia §IV-B: four classes over CASME II, SAMM and SMIC (SMIC has no "other").
        LabelScheme(
            "strcn-4",
            ("positive", "negative", "surprise", "other"),
            "emotion",
            {ANY_DATASET: _group(
                positive=("happiness", "positive"),
                negative=(*_NEGATIVE, "negative"),
                surprise=("surprise",),
                other=("tense", "repression", "others", "other"),
            )},
        ),
        # MEGC 2019 composite: CASME II disgust + repression are negative (its fear and sadness
        # are left out), SAMM's five negative emotions, SMIC as labelled. The other corpora as the
        # MEGC 2022-2023 unseen tracks mapped CAS(ME)³: the negative basic emotions (and
        # repression) are negative, happiness positive; others, tense, neutral and 4DME's
        # combinations (Surprise+Positive) are left out.
        LabelScheme(
            "megc-3",
            ("negative", "positive", "surprise"),
            "emotion",
            {
                "casme2": _group(negative=("disgust", "repression"), positive=("happiness",), surprise=("surprise",)),
                "samm": _group(negative=_NEGATIVE, positive=("happiness",), surprise=("surprise",)),
                "smic": _group(negative=("negative",), positive=("positive",), surprise=("surprise",)),
                "casme": _group(negative=("disgust", "repression", "contempt", "fear", "sadness"),
                                positive=("happiness",), surprise=("surprise",)),
                "casme3": _group(negative=("anger", "disgust", "fear", "sad"), positive=("happy",),
                                 surprise=("surprise",)),
                "4dme": _group(negative=("negative", "repression"), positive=("positive",), surprise=("surprise",)),
                "mmew": _group(negative=_NEGATIVE, positive=("happiness",), surprise=("surprise",)),
                "casme-sq": _group(negative=("negative",), positive=("positive",), surprise=("surprise",)),
                "ckplus": _group(negative=_NEGATIVE, positive=("happy",), surprise=("surprise",)),
            },
        ),
        # Each corpus's own emotions, as its sheet (or folders) name them.
        _own("samm-8", "samm", ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other")),
        _own("casme2-7", "casme2", ("happiness", "disgust", "repression", "surprise", "others", "sadness", "fear")),
        _own("casme-8", "casme",
             ("tense", "happiness", "repression", "surprise", "disgust", "fear", "contempt", "sadness")),
        _own("casme3-7", "casme3", ("happy", "sad", "disgust", "fear", "anger", "surprise", "others")),
        _own("4dme-5", "4dme", ("positive", "negative", "surprise", "repression", "others")),
        _own("mmew-7", "mmew", ("happiness", "surprise", "disgust", "fear", "sadness", "anger", "others")),
        _own("casme-sq-4", "casme-sq", ("positive", "negative", "surprise", "others")),
        _own("ckplus-7", "ckplus", ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")),
        # The sheets' own objective classes I-VII (AU-based), written 1-7 or I-VII.
        LabelScheme("objective", ("1", "2", "3", "4", "5", "6", "7"), "objective_class", {ANY_DATASET: _OBJECTIVE}),
        # MEB's emotion classes across datasets: objective classes I-V (VI and VII dropped, as in
        # MEGC 2018 and MEB's hold-out-database and composite experiments).
        LabelScheme("objective-5", ("1", "2", "3", "4", "5"), "objective_class",
                    {ANY_DATASET: {raw: c for raw, c in _OBJECTIVE.items() if int(c) <= 5}}),
    )
})
"""Every scheme, by name (the README's "Label schemes" table says what each keeps and merges)."""

AU_SETS: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "meb-cross": (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17),
    "casme2": (1, 2, 4, 7, 12, 14, 15, 17),
    "casme": (1, 4, 9, 14),
    "samm": (2, 4, 7, 12),
    "mmew": (1, 2, 4, 5, 7, 10, 12, 14),
    "4dme": (1, 2, 4, 6, 7, 12, 17, 45),
})
"""AU vocabularies of AU detection, MEB's ``dataset_aus`` (tvaranka/meb, ``meb/utils/utils.py``): the 12 AUs
of its cross-dataset protocol and each corpus's most frequent ones."""


def list_schemes() -> list[str]:
    """Names of the label schemes."""
    return sorted(SCHEMES)


def get_scheme(name: str) -> LabelScheme:
    """The scheme called ``name``; raises with the known names."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown label scheme {name!r}; known: {', '.join(list_schemes())}") from None


def apply_scheme(samples: pd.DataFrame, name: str | LabelScheme) -> tuple[pd.Series, list[str], int]:
    """Class indices of the samples a scheme keeps.

    Parameters
    ----------
    samples : pandas.DataFrame
        One row per sample with columns ``dataset``, ``emotion`` and
        ``objective_class`` (raw labels as stored; missing labels as "" or NaN).
    name : str or LabelScheme
        A scheme name (see :func:`list_schemes`) or a scheme.

    Returns
    -------
    labels : pandas.Series of int64
        Class index of every kept sample, indexed like ``samples`` (dropped
        rows are absent), named ``"label"``.
    classes : list of str
        Class names; ``classes[label]`` is a sample's class.
    dropped : int
        Number of samples the scheme does not map.
    """
    scheme = name if isinstance(name, LabelScheme) else get_scheme(name)
    missing = [c for c in ("dataset", scheme.column) if c not in samples.columns]
    if missing:
        raise KeyError(f"samples lack column(s) {missing} needed by scheme {scheme.name!r}; "
                       f"found {list(samples.columns)}")
    raw = samples[scheme.column].fillna("").astype(str)
    names = [scheme.class_of(d, r) for d, r in zip(samples["dataset"].astype(str), raw)]
    index = {c: i for i, c in enumerate(scheme.classes)}
    kept = pd.Series([-1 if n is None else index[n] for n in names], index=samples.index, dtype="int64")
    labels = kept[kept >= 0].rename("label")
    return labels, list(scheme.classes), int(len(samples) - len(labels))


def au_matrix(samples: pd.DataFrame, aus: str | Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """The multi-hot AU matrix of the samples over an AU vocabulary: the targets of AU detection.

    Parameters
    ----------
    samples : pandas.DataFrame
        One row per sample with the column ``au_codes`` (``"4+10"``, as a store's sample table has it).
    aus : str or sequence of int
        A name of :data:`AU_SETS` or the AU numbers themselves.

    Returns
    -------
    matrix : numpy.ndarray of uint8, (n_samples, n_aus)
        1 where the clip shows the AU; AUs outside the vocabulary are ignored.
    names : list of str
        ``["AU1", "AU2", ...]``, the columns.
    """
    vocabulary = tuple(AU_SETS[aus]) if isinstance(aus, str) else tuple(int(a) for a in aus)
    if "au_codes" not in samples.columns:
        raise KeyError("samples lack the column 'au_codes'; a store built before AU codes were stored needs "
                       "`mepipe build` again (its cached stages are kept) to write it")
    column = {au: j for j, au in enumerate(vocabulary)}
    matrix = np.zeros((len(samples), len(vocabulary)), dtype=np.uint8)
    for i, codes in enumerate(samples["au_codes"].fillna("").astype(str)):
        for code in filter(None, codes.split("+")):
            if int(code) in column:
                matrix[i, column[int(code)]] = 1
    return matrix, [f"AU{au}" for au in vocabulary]


@dataclass(frozen=True)
class LabelVersion:
    """A corpus's labels as another version of its sheet gives them: per clip, the sheet's label and this one's.

    Attributes
    ----------
    name : str
    dataset : str
        The corpus it applies to (demo corpora are not relabelled).
    changes : mapping of (str, str) to (str, str)
        (subject, clip) as the adapter writes them -> (label in the sheet it
        changes, label in this version).
    source : str
        Where the other version's labels are documented.
    """

    name: str
    dataset: str
    changes: Mapping[tuple[str, str], tuple[str, str]]
    source: str


LABEL_VERSIONS: Mapping[str, LabelVersion] = MappingProxyType({
    version.name: version
    for version in (
        # The 2014 CASME II labels (the paper's counts: surprise 25, sadness 7). The 2019 sheet has these three
        # sub24 clips as surprise; ELRCN's loader of the older sheet (CASME2_label_Ver_2.xls) leaves out exactly
        # the 2 fear and 7 sadness clips, these three among them (IcedDoggie/Micro-Expression-with-Deep-Learning,
        # IgnoredSamples: "fear, sadness are excluded"), and the MEGC 2019 composite, built from the older sheet,
        # has 25 CASME II surprise clips: the 2019 sheet's 28 but these three.
        LabelVersion("casme2-2014", "casme2", {
            ("24", "EP07_01"): ("surprise", "sadness"),
            ("24", "EP07_04f"): ("surprise", "sadness"),
            ("24", "EP10_03"): ("surprise", "sadness"),
        }, "the CASME II coding sheet before its 2019 relabelling (Yan et al. 2014)"),
    )
})
"""Label versions by name (``casme2-2014``): sheet versions the papers used, reproduced from a newer sheet."""


def apply_version(samples: pd.DataFrame, name: str | None) -> pd.DataFrame:
    """The samples with ``emotion`` as label version ``name`` gives it (a copy; None: unchanged).

    A clip whose label is not the one the version changes (another sheet
    again) keeps its label: a version only moves labels it recognises.
    """
    if name is None:
        return samples
    try:
        version = LABEL_VERSIONS[name]
    except KeyError:
        raise KeyError(f"unknown label version {name!r}; known: {', '.join(sorted(LABEL_VERSIONS))}") from None
    out = samples.copy()
    for index, (dataset, subject, clip, emotion) in zip(
            out.index, out[["dataset", "subject", "clip", "emotion"]].astype(str).itertuples(index=False)):
        change = version.changes.get((subject, clip)) if dataset == version.dataset else None
        if change is not None and emotion.strip().lower() == change[0]:
            out.loc[index, "emotion"] = change[1]
    return out


def class_counts(samples: pd.DataFrame, scheme: str | LabelScheme, version: str | None = None) -> pd.Series:
    """Clips per class of a scheme (every class, 0 included, in class order), under a label version."""
    labels, classes, _ = apply_scheme(apply_version(samples, version), scheme)
    counts = np.bincount(labels.to_numpy(), minlength=len(classes))
    return pd.Series(counts, index=pd.Index(classes, name="class"), name="clips")


PAPER_COUNTS: Mapping[tuple[str, str], tuple[Mapping[str, int], str]] = MappingProxyType({
    ("casme2", "casme2-5"): (
        MappingProxyType({"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25, "others": 99}),
        "Miao et al. 2019 §III-A (246 clips)"),
    ("casme2", "strcn-4"): (
        MappingProxyType({"positive": 32, "negative": 72, "surprise": 25, "other": 126}),
        "Xia et al. 2020 §IV-B merge of the CASME II paper's classes (negative 72, surprise 25)"),
    ("samm", "samm-3"): (
        MappingProxyType({"negative": 92, "positive": 26, "surprise": 15}),
        "Miao et al. 2019 §III-A (133 clips)"),
})
"""(corpus, scheme) -> the clips per class the papers report, and where."""


def count_table(samples: pd.DataFrame, schemes: Sequence[str] = ("casme2-5", "strcn-4"),
                versions: Sequence[str | None] = (None, "casme2-2014")) -> pd.DataFrame:
    """Clips per class under each scheme and label version, beside the papers' counts.

    Returns
    -------
    pandas.DataFrame
        One row per (scheme, class) with a column per version (``sheet`` for
        the labels as stored, else the version's name) and ``paper`` (the
        count of :data:`PAPER_COUNTS` for the samples' corpus, or <NA>).
    """
    corpora = {DEMO_CORPORA.get(d, d) for d in samples["dataset"].astype(str)}
    rows = []
    for scheme in schemes:
        counts = {version or "sheet": class_counts(samples, scheme, version) for version in versions}
        papers = [PAPER_COUNTS[(c, scheme)][0] for c in sorted(corpora) if (c, scheme) in PAPER_COUNTS]
        for cls in get_scheme(scheme).classes:
            paper = sum(p.get(cls, 0) for p in papers) if papers else pd.NA
            rows.append({"scheme": scheme, "class": cls, **{k: int(v[cls]) for k, v in counts.items()},
                         "paper": paper})
    return pd.DataFrame(rows)
