"""Parameters from a config mapping, validated to the leaf before any work starts.

``{stage: {param: value}}`` from YAML or TOML becomes the stages' frozen
parameter dataclasses, nested ones included
(``{flow_first_each: {tvl1: {lambda_: 0.1}}}``). Each value is checked
against its field's type: an unknown or misspelt key, a wrong type or a
value the dataclass refuses is a :class:`ConfigError` naming the path
(``flow_first_each.tvl1.lamda``) and, for unknown keys, the valid ones.
Fields not given keep their defaults. Lists become tuples, so parameters
stay hashable; ints are accepted where floats are expected.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from mepipe.featurestore.errors import ConfigError

__all__ = ["ConfigError", "replace_from_mapping"]


def replace_from_mapping(base: Any, values: Mapping[str, Any], path: str) -> Any:
    """``base`` (a dataclass instance) with the fields given in ``values`` replaced, checked to the leaf.

    Parameters
    ----------
    base : dataclass instance
        Defaults for every field not in ``values``.
    values : mapping
        Field name -> value; a nested dataclass field takes a mapping.
    path : str
        Where ``values`` sits in the config (``flow_first_each``), for messages.

    Raises
    ------
    ConfigError
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: expected a mapping of parameters, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(base)}
    hints = typing.get_type_hints(type(base))
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown parameter; valid keys of {path}: {', '.join(fields)}")
    changes = {name: _convert(hints[name], value, f"{path}.{name}", getattr(base, name))
               for name, value in values.items()}
    try:
        return dataclasses.replace(base, **changes)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: {err}") from None


def _convert(tp: Any, value: Any, path: str, default: Any = None) -> Any:
    if dataclasses.is_dataclass(tp):
        base = default if dataclasses.is_dataclass(default) else tp()
        return replace_from_mapping(base, value, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list ({_name(tp)}), got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{path}: expected {len(args)} values ({_name(tp)}), got {len(value)}: {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))) if args \
            else tuple(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{path}: parameters of type {_name(tp)} cannot be read from a config")


def _name(tp: Any) -> str:
    if typing.get_args(tp) or not hasattr(tp, "__name__"):
        return str(tp).replace("typing.", "")
    return tp.__name__
