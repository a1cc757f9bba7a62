"""Label schemes: raw dataset labels -> the classes a network is trained on.

The store keeps every sample's raw emotion and objective class; a scheme,
chosen at training time, maps them to class indices. Schemes are data: a
:class:`LabelScheme` lists its classes and, per dataset, which raw labels
(matched case-insensitively, surrounding spaces ignored) go to which class.
A sample whose label the scheme does not map (CASME II's fear and sadness
under casme2-5, say) is dropped and counted, never guessed.

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
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd

__all__ = ["ANY_DATASET", "SCHEMES", "LabelScheme", "apply_scheme", "get_scheme", "list_schemes"]

ANY_DATASET = "*"
"""Key of the rules used for datasets a scheme does not name."""


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
        class name. Datasets with no rules and no ``ANY_DATASET`` entry are
        dropped entirely.
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
        mapping = self.rules.get(dataset, self.rules.get(ANY_DATASET))
        if mapping is None:
            return None
        return mapping.get(str(raw).strip().lower())


def _group(**classes: tuple[str, ...]) -> dict[str, str]:
    """``{raw: class}`` from ``class=(raw, ...)``."""
    return {raw: name for name, raws in classes.items() for raw in raws}


_SAMM_NEGATIVE = ("anger", "contempt", "disgust", "fear", "sadness")

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
            {ANY_DATASET: _group(negative=_SAMM_NEGATIVE, positive=("happiness",), surprise=("surprise",))},
        ),
        # Xia §IV-B: four classes over CASME II, SAMM and SMIC (SMIC has no "other").
        LabelScheme(
            "strcn-4",
            ("positive", "negative", "surprise", "other"),
            "emotion",
            {ANY_DATASET: _group(
                positive=("happiness", "positive"),
                negative=(*_SAMM_NEGATIVE, "negative"),
                surprise=("surprise",),
                other=("tense", "repression", "others", "other"),
            )},
        ),
        # MEGC 2019 composite: CASME II disgust + repression are negative (its fear
        # and sadness are left out), SAMM's five negative emotions, SMIC as labelled.
        # The demo corpora are written in the SAMM, CASME II and SMIC-HS layouts and labels.
        LabelScheme(
            "megc-3",
            ("negative", "positive", "surprise"),
            "emotion",
            {
                "casme2": _group(negative=("disgust", "repression"), positive=("happiness",), surprise=("surprise",)),
                "samm": _group(negative=_SAMM_NEGATIVE, positive=("happiness",), surprise=("surprise",)),
                "demo": _group(negative=_SAMM_NEGATIVE, positive=("happiness",), surprise=("surprise",)),
                "smic": _group(negative=("negative",), positive=("positive",), surprise=("surprise",)),
                "demo-casme2": _group(negative=("disgust", "repression"), positive=("happiness",),
                                      surprise=("surprise",)),
                "demo-smic": _group(negative=("negative",), positive=("positive",), surprise=("surprise",)),
            },
        ),
        # The sheets' own objective classes I-VII (AU-based), written 1-7 or I-VII.
        LabelScheme(
            "objective",
            ("1", "2", "3", "4", "5", "6", "7"),
            "objective_class",
            {ANY_DATASET: {
                **{str(i): str(i) for i in range(1, 8)},
                **{roman: str(i) for i, roman in enumerate(("i", "ii", "iii", "iv", "v", "vi", "vii"), 1)},
            }},
        ),
    )
})
"""Every scheme, by name (the README's "Label schemes" table says what each keeps and merges)."""


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
