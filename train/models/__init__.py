"""Published micro-expression networks behind one registry (timm-style), each with its training recipe.

Build a network with ``create_model(name, **kwargs)``; ``list_models()`` gives
the names and ``get_recipe(name)`` how each is trained from a store (the
features it reads, its stages, its paper's DOI). Importing this package
imports every module in it, which registers its networks: a new network is
one new file here, or a module of your own registered with
``mepipe.train.api.register`` and loaded with ``mepipe train --plugin MODULE``
or an entry point in the group ``mepipe.models``.
"""
import importlib
import pkgutil

from .registry import create_model, get_recipe, import_plugin, list_models, load_entry_points, register_model
from .shcnn import SHCNN, saliency, vote
from .strcn import RCL, STRCN, BalancedLoss, balanced_loss

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
load_entry_points()  # installed packages' networks (entry-point group mepipe.models), after the built-in ones

__all__ = [
    "RCL",
    "SHCNN",
    "STRCN",
    "BalancedLoss",
    "balanced_loss",
    "create_model",
    "get_recipe",
    "import_plugin",
    "list_models",
    "load_entry_points",
    "register_model",
    "saliency",
    "vote",
]
