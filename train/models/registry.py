"""Model registry: one name per published network, one entry point to build it.

Each model file registers one-line factories with :func:`register_model`,
giving a :class:`ModelSpec` that says what the network needs from the feature
store, the input shape it expects and the optimiser settings of its paper.
:func:`create_model` is the only way the training code builds a network: it
raises on unknown names (listing the known ones) and on keyword arguments the
factory does not take, so a typo in a config file is an error, not a silently
ignored setting.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["ModelSpec", "OptimDefaults", "create_model", "get_spec", "list_models", "register_model"]


@dataclass(frozen=True)
class OptimDefaults:
    """Optimiser settings reported by a paper.

    Attributes
    ----------
    optimizer : {"adam", "sgd", "rmsprop"}
        Optimiser family.
    lr : float
        Initial learning rate.
    weight_decay : float
        Coefficient ``wd`` added to the gradient as ``wd * w`` (torch's
        ``weight_decay``). A paper's loss term ``lam * sum ||w||^2`` is
        ``wd = 2 * lam``.
    momentum : float or None
        SGD or RMSProp momentum; None for optimisers without one.
    batch_size : int
        Mini-batch size.
    lr_decay : float
        Factor applied to the learning rate after every epoch (1.0 = constant).
    """

    optimizer: str
    lr: float
    weight_decay: float
    momentum: float | None
    batch_size: int
    lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam', 'sgd' or 'rmsprop', got {self.optimizer!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.batch_size < 1 or not 0 < self.lr_decay <= 1:
            raise ValueError(f"invalid optimiser defaults: {self!r}")


@dataclass(frozen=True)
class ModelSpec:
    """What a registered network needs and how its paper trained it.

    Attributes
    ----------
    name : str
        Registry name.
    features : tuple of str
        Store variables the dataset must read for one sample.
    input_shape : tuple of (int or None)
        Shape of one input sample as the network takes it, channels first;
        None marks a size that varies with the data (e.g. the number of
        masked pixels of STRCN-A).
    min_input_shape : tuple of int
        Smallest input the default network accepts (its pools need at least
        this); equal to ``input_shape`` for a network built for one size.
    doi : str
        DOI of the paper that defines the network.
    optim : OptimDefaults
        The paper's optimiser settings.
    """

    name: str
    features: tuple[str, ...]
    input_shape: tuple[int | None, ...]
    min_input_shape: tuple[int, ...]
    doi: str
    optim: OptimDefaults


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    spec: ModelSpec


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, spec: ModelSpec) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory under ``name``.

    Registering a different factory under a name already taken raises
    ``ValueError``; re-registering the same function (a module reloaded)
    warns and replaces it.

    Parameters
    ----------
    name : str
        Registry name, equal to ``spec.name``.
    spec : ModelSpec
        The model's requirements and paper defaults.
    """
    if spec.name != name:
        raise ValueError(f"spec.name {spec.name!r} differs from the registered name {name!r}")

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
        _REGISTRY[name] = _Entry(factory, spec)
        return factory

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model."""
    return _entry(name).spec


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
        The network, with its :class:`ModelSpec` as attribute ``spec``.
    """
    entry = _entry(name)
    accepted = inspect.signature(entry.factory).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} takes no argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(accepted) or 'none'}"
        )
    model = entry.factory(**kwargs)
    model.spec = entry.spec
    return model


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
