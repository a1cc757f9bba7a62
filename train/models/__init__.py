"""Published micro-expression networks behind one registry (timm-style).

Build a network with ``create_model(name, **kwargs)``; ``list_models()`` gives
the names and ``get_spec(name)`` what each needs from the feature store, its
input shape, its paper's DOI and optimiser settings. Importing this package
registers every model.
"""
from . import choi2020, kim2017, nag2019
from .registry import ModelSpec, OptimDefaults, create_model, get_spec, list_models, register_model
from .shcnn import SHCNN, saliency, vote
from .strcn import RCL, STRCN, BalancedLoss, balanced_loss

__all__ = [
    "RCL",
    "SHCNN",
    "STRCN",
    "BalancedLoss",
    "ModelSpec",
    "OptimDefaults",
    "balanced_loss",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
    "saliency",
    "vote",
]
