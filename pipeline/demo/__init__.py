"""Synthetic demo dataset in the SAMM layout (SPEC §1, "demo").

Lets every command run on a fresh machine without licensed data: a few
synthetic subjects made from scikit-image's public-domain astronaut, each
with landmark-driven micro-movements of three classes and known ground truth.
"""
from .face import shape_predictor_path
from .params import FORMAT_VERSION, DemoParams
from .synth import SHEET_NAME, TRUTH_NAME, DemoSummary, read_params, true_landmarks, write_demo

__all__ = [
    "DemoParams",
    "DemoSummary",
    "FORMAT_VERSION",
    "SHEET_NAME",
    "TRUTH_NAME",
    "read_params",
    "shape_predictor_path",
    "true_landmarks",
    "write_demo",
]
