"""Model registry: one name per network, one entry point to build it, one recipe to train it.

Each model file registers its factory with :func:`register_model`, giving
its :class:`~mepipe.train.recipe.Recipe` (the store features it reads, its
training stages, the paper's DOI). :func:`create_model` is the only way the
training code builds a network: it raises on unknown names (listing the
known ones) and on keyword arguments the factory does not take, so a typo in
a config file is an error, not a silently ignored setting.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from mepipe.featurestore.errors import UsageError

from ..recipe import Recipe

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "create_model", "get_recipe", "import_plugin", "list_models",
           "load_entry_points", "register_model"]

ENTRY_POINT_GROUP = "mepipe.models"
"""Entry-point group of installed packages' models: each entry point names a module that registers models."""


class PluginError(UsageError, ImportError):
    """A model plugin (``--plugin``, or an installed entry point) that cannot be imported."""


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    recipe: Recipe


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, recipe: Recipe) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory and its recipe under ``name``.

    Registering a different factory under a name already taken raises
    ``ValueError``; re-registering the same function (a module reloaded)
    warns and replaces it.

    Parameters
    ----------
    name : str
        Registry name, equal to ``recipe.name``.
    recipe : Recipe
        How the network is trained from a store.
    """
    if recipe.name != name:
        raise ValueError(f"recipe.name {recipe.name!r} differs from the registered name {name!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _check_factory_signature(name, factory)
        old = _REGISTRY.get(name)
        if old is not None:
            if _qualname(old.factory) != _qualname(factory):
                raise ValueError(
                    f"model name {name!r} is already registered by {_qualname(old.factory)}; "
                    f"pick another name for {_qualname(factory)}"
                )
            warnings.warn(f"model {name!r} registered again by {_qualname(factory)}; replacing it", stacklevel=2)
        _REGISTRY[name] = _Entry(factory, recipe)
        return factory

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_recipe(name: str) -> Recipe:
    """The :class:`~mepipe.train.recipe.Recipe` of a registered model."""
    return _entry(name).recipe


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        Registry name (see :func:`list_models`).
    **kwargs
        Arguments of the model's factory; any other keyword raises.

    Returns
    -------
    torch.nn.Module
    """
    entry = _entry(name)
    accepted = inspect.signature(entry.factory).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} takes no argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(accepted) or 'none'}"
        )
    return entry.factory(**kwargs)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models()) or 'none'}") from None


def _qualname(factory: Callable) -> str:
    return f"{factory.__module__}.{factory.__qualname__}"


def _check_factory_signature(name: str, factory: Callable) -> None:
    """Factories take named keywords only, so :func:`create_model` can reject unknown ones."""
    for param in inspect.signature(factory).parameters.values():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            raise TypeError(f"factory {_qualname(factory)} of model {name!r} must not take *args or **kwargs")


def import_plugin(spec: str) -> None:
    """Import the module that registers your models: a module name (``my_lab.models``) or a ``.py`` file.

    Raises
    ------
    PluginError
        The module cannot be found or fails while importing (the message says which and why).
    """
    path = Path(spec)
    try:
        if spec.endswith(".py"):
            if not path.is_file():
                raise PluginError(f"model plugin {spec}: no such file")
            name = f"mepipe_plugin_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except PluginError:
        raise
    except ModuleNotFoundError as err:
        if err.name and spec.split(".")[0] == err.name.split(".")[0]:
            raise PluginError(f"model plugin {spec!r} not found: give an importable module name (on PYTHONPATH) "
                              "or a .py file") from None
        raise PluginError(f"model plugin {spec!r} failed to import: {err}") from err
    except Exception as err:  # noqa: BLE001 -- any failure of user code is reported as the plugin's
        raise PluginError(f"model plugin {spec!r} failed to import: {type(err).__name__}: {err}") from err


def load_entry_points() -> list[str]:
    """Import every installed module of the ``mepipe.models`` entry-point group; returns their names.

    A package declares ``[project.entry-points."mepipe.models"] my_net = "my_lab.models"``;
    a broken one is skipped with a warning naming it, so it cannot break the built-in models.
    """
    loaded = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as err:  # noqa: BLE001 -- a third-party plugin must not stop mepipe
            warnings.warn(f"model plugin {point.name} ({point.value}) of entry-point group {ENTRY_POINT_GROUP} "
                          f"failed to import and is skipped: {type(err).__name__}: {err}", stacklevel=2)
            continue
        loaded.append(point.name)
    return loaded
