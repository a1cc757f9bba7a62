"""Model registry: one name per network, one entry point to build it, one recipe to train it.

Each model file registers its factory with :func:`register_model`, giving
its :class:`~mepipe.train.recipe.Recipe` (the store features it reads, its
training stages, the paper's DOI). :func:`create_model` is the only way the
training code builds a network: it raises on unknown names (listing the
known ones) and on keyword arguments the factory does not take, so a typo in
a config file is an error, not a silently ignored setting.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..recipe import Recipe

__all__ = ["create_model", "get_recipe", "list_models", "register_model"]


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
