"""Synthetic demo datasets in the SAMM, CASME II, SMIC-HS, CAS(ME)³ part A and SAMM Long Videos layouts.

Let every command run on a fresh machine without licensed data: a few
synthetic subjects, distinct people made from two public-domain portraits
shipped by scikit-image and matplotlib (:mod:`.identities`), each with
landmark-driven micro-movements of a few classes and known ground truth,
written in the real dataset's layout so that the real adapters read them.
:data:`PRESETS` holds the four short-clip corpora: ``demo`` (SAMM layout),
``demo-casme2``, ``demo-smic`` and ``demo-casme3``; :data:`LONG_PRESETS` the
long-video one, ``demo-lv`` (SAMM Long Videos layout: the ``demo`` people's
long recordings with micro- and macro-expressions, and blinks and head
motion that are not annotated). :func:`write_named_demo` writes any of them.
"""
from .catalog import DEMO_NAMES, write_named_demo
from .composite import COMPOSITE_NAME, composite_rows, write_composite
from .face import shape_predictor_path
from .layouts import DATASET_NAMES
from .long_params import LONG_PRESETS, LongDemoParams
from .long_write import (
    LV_EMOTION_SHEET,
    LV_SHEET,
    LV_TRUTH,
    LongDemoSummary,
    read_long_params,
    true_video_landmarks,
    write_long_demo,
)
from .params import FORMAT_VERSION, PRESETS, DemoParams
from .synth import META_NAME, SHEET_NAME, TRUTH_NAME, DemoSummary, read_params, true_landmarks, write_demo

__all__ = [
    "COMPOSITE_NAME",
    "DATASET_NAMES",
    "DEMO_NAMES",
    "DemoParams",
    "DemoSummary",
    "FORMAT_VERSION",
    "LONG_PRESETS",
    "LV_EMOTION_SHEET",
    "LV_SHEET",
    "LV_TRUTH",
    "LongDemoParams",
    "LongDemoSummary",
    "META_NAME",
    "PRESETS",
    "SHEET_NAME",
    "TRUTH_NAME",
    "composite_rows",
    "read_long_params",
    "read_params",
    "shape_predictor_path",
    "true_landmarks",
    "true_video_landmarks",
    "write_composite",
    "write_demo",
    "write_long_demo",
    "write_named_demo",
]
