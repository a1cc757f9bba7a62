"""Synthetic demo datasets in the SAMM, CASME II, SMIC-HS and CAS(ME)³ part A layouts.

Let every command run on a fresh machine without licensed data: a few
synthetic subjects, distinct people made from two public-domain portraits
shipped by scikit-image and matplotlib (:mod:`.identities`), each with
landmark-driven micro-movements of a few classes and known ground truth,
written in the real dataset's layout so that the real adapters read them.
:data:`PRESETS` holds the four corpora: ``demo`` (SAMM layout),
``demo-casme2``, ``demo-smic`` and ``demo-casme3``.
"""
from .composite import COMPOSITE_NAME, composite_rows, write_composite
from .face import shape_predictor_path
from .layouts import DATASET_NAMES
from .params import FORMAT_VERSION, PRESETS, DemoParams
from .synth import META_NAME, SHEET_NAME, TRUTH_NAME, DemoSummary, read_params, true_landmarks, write_demo

__all__ = [
    "COMPOSITE_NAME",
    "DATASET_NAMES",
    "DemoParams",
    "DemoSummary",
    "FORMAT_VERSION",
    "META_NAME",
    "PRESETS",
    "SHEET_NAME",
    "TRUTH_NAME",
    "composite_rows",
    "read_params",
    "shape_predictor_path",
    "true_landmarks",
    "write_composite",
    "write_demo",
]
