"""Published micro-expression networks behind one registry (timm-style), each with its training recipe.

Build a network with ``create_model(name, **kwargs)``; ``list_models()`` gives
the names and ``get_recipe(name)`` how each is trained from a store (the
features it reads, its stages, its paper's DOI). Importing this package
registers every model.
"""
from . import choi2020, kim2017, nag2019
from .registry import create_model, get_recipe, list_models, register_model
from .shcnn import SHCNN, saliency, vote
from .strcn import RCL, STRCN, BalancedLoss, balanced_loss

__all__ = [
    "RCL",
    "SHCNN",
    "STRCN",
    "BalancedLoss",
    "balanced_loss",
    "choi2020",
    "create_model",
    "get_recipe",
    "kim2017",
    "list_models",
    "nag2019",
    "register_model",
    "saliency",
    "vote",
]
