"""Published micro-expression networks behind one registry (timm-style), each with its training recipe.

Build a network with ``create_model(name, **kwargs)``; ``list_models()`` gives
the names and ``get_recipe(name)`` how each is trained from a store (the
features it reads, its stages, its paper's DOI). Importing this package
imports every module in it, which registers its networks: a new network is
one new file here.
"""
import importlib
import pkgutil

from .registry import create_model, get_recipe, list_models, register_model
from .shcnn import SHCNN, saliency, vote
from .strcn import RCL, STRCN, BalancedLoss, balanced_loss

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "RCL",
    "SHCNN",
    "STRCN",
    "BalancedLoss",
    "balanced_loss",
    "create_model",
    "get_recipe",
    "list_models",
    "register_model",
    "saliency",
    "vote",
]
