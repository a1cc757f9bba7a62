"""MEB's cross-dataset benchmark as data: its protocol, the figures MEB publishes, and ``mepipe reproduce``'s rows.

MEB (Varanka et al. 2024; tvaranka/meb) evaluates across six corpora, CASME,
CASME II, SAMM, 4DME, MMEW and CAS(ME)³ part A, leaving one dataset out
(``--protocol meb``, :func:`mepipe.train.protocols.lodo` over
``DATASET_LISTS["meb"]``), on two kinds of target:

- **Action units** (its ``CrossDatasetValidator``): 12 AUs
  (``--labels au:meb-cross``), binary cross-entropy, each AU's F1 over every
  test clip of the six folds pooled, averaged over the AUs; MEB prints both
  the macro F1 (of "shown" and "not shown") and the binary F1 (of "shown"),
  each the mean of 5 runs.
- **Emotions** (its hold-out-database experiment, MEGC 2018's HDE): the
  objective classes I-V (``--labels objective-5``), trained on the other
  corpora, scored on the SAMM and CASME II folds by their UAR.

MEB ran networks of its own choice (OFF-ApexNet, STSTNet, RCN-A, SSSNet on
onset->apex optical flow; ResNets), none of them a mepipe network. A mepipe
network's row therefore shows the figure of MEB's best network on the
benchmark (:data:`REFERENCE`, SSSNet, a shallow CNN on flow), and its note
gives every MEB network's figure: the benchmark's range, not a paper's claim
about this network.

References
----------
.. [1] T. Varanka, Y. Li, W. Peng, G. Zhao, "Data leakage and evaluation
   issues in micro-expression analysis", IEEE Trans. Affective Computing
   15(1), 2024. https://doi.org/10.1109/TAFFC.2023.3265063
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .published import Published

__all__ = ["AU_LABELS", "EMOTION_LABELS", "MEB_AU_F1", "MEB_HDE_UAR", "REFERENCE", "meb_entries"]

AU_LABELS = "au:meb-cross"
EMOTION_LABELS = "objective-5"
"""The ``--labels`` of MEB's two benchmarks: its 12 cross-dataset AUs, and the objective classes I-V."""

_AU_SOURCE = "Varanka et al. 2024 (MEB), cross-dataset AU benchmark: tvaranka/meb experiments/benchmarks/" \
             "Optical flow networks.ipynb"
_HDE_SOURCE = "Varanka et al. 2024 (MEB), Table 10 (hold-out database): tvaranka/meb experiments/" \
              "paper_experiments/Table 10. Hold-out database.ipynb"

MEB_AU_F1: Mapping[str, tuple[float, float]] = MappingProxyType({
    "OFF-ApexNet": (0.677, 0.395),
    "STSTNet": (0.637, 0.318),
    "RCN-A": (0.619, 0.287),
    "SSSNet": (0.683, 0.405),
})
"""MEB's networks on its AU benchmark: (mean macro F1, mean binary F1) over the 12 AUs, pooled over the six
folds, mean of 5 runs (seeds 45-49), as the notebook of :data:`_AU_SOURCE` prints them ("Average" column)."""

MEB_HDE_UAR: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "SSSNet": MappingProxyType({"samm": 0.8313, "casme2": 0.6399}),
    "ResNet18": MappingProxyType({"samm": 0.6114, "casme2": 0.6362}),
})
"""MEB's networks on its emotion benchmark: UAR of the SAMM and CASME II folds, each trained on the other corpora
(one run each), as the Table 10 notebook prints them."""

REFERENCE = "SSSNet"
"""The MEB network whose figures the rows show: the best of MEB's on both benchmarks."""

_HDE_NOTE = ("MEB's objective classes of every corpus were predicted from its AUs by a classifier fitted on SAMM's; "
             "mepipe reads each sheet's objective class, so corpora without one (CASME, 4DME, MMEW) have no clip "
             "in the emotion run")


def meb_entries(model: str) -> tuple[Published, ...]:
    """The rows of MEB's benchmark for a mepipe network: AUs (all folds), and emotions on SAMM and CASME II.

    Each carries the figure of :data:`REFERENCE`; the note says whose figure
    it is and gives every MEB network's.
    """
    macro, binary = MEB_AU_F1[REFERENCE]
    others = ", ".join(f"{name} {m:.3f}/{b:.3f}" for name, (m, b) in MEB_AU_F1.items())
    entries = [Published("meb", AU_LABELS, "meb", (("f1_macro", macro), ("f1_binary", binary)), _AU_SOURCE,
                         note=f"MEB's figure is {REFERENCE}'s, not {model}'s (MEB ran no mepipe network); "
                              f"MEB's networks, mean F1 macro/binary: {others}")]
    for part in ("samm", "casme2"):
        uar = MEB_HDE_UAR[REFERENCE][part]
        others = ", ".join(f"{name} {figures[part]:.3f}" for name, figures in MEB_HDE_UAR.items())
        entries.append(Published("meb", EMOTION_LABELS, "meb", (("uar", uar),), _HDE_SOURCE, part=part,
                                 note=f"MEB's figure is {REFERENCE}'s, not {model}'s; MEB's networks' UAR: "
                                      f"{others}; {_HDE_NOTE}"))
    return tuple(entries)
