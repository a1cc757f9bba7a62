"""Which back-end reads a location: a registry of :class:`~.base.StoreBackend` classes, like xarray's engines.

Back-ends are tried newest first, each asked ``guess_can_open(target)``:
a back-end registered later (a third party's, or a package's entry point
in the group :data:`ENTRY_POINT_GROUP`) sees a location before the
built-in ones, which are registered from the most general (a local folder)
to the most particular (a zip at a URL). A location may also name its
back-end (``locate(..., backend="zip")``).

>>> from mepipe.featurestore.backends import register_backend, StoreBackend
>>> @register_backend                                              # doctest: +SKIP
... class LabArchive(StoreBackend):
...     name = "labarchive"
...     @classmethod
...     def guess_can_open(cls, target): return target.startswith("lab://")
...     ...

References
----------
xarray, ``xarray/backends/plugins.py`` (``list_engines``, ``guess_engine``) and the
``xarray.backends`` entry point group.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import UnknownNameError, UsageError
from .base import StoreBackend

if TYPE_CHECKING:
    from ..location import StoreLocation

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mepipe.store_backends"
"""Packages that install a back-end name its class under this entry point group."""

_BACKENDS: dict[str, type[StoreBackend]] = {}
_plugins_loaded = False


def register_backend(cls: type[StoreBackend] | None = None, *, replace: bool = False):
    """Register a back-end class (usable as a decorator); it is tried before those registered earlier.

    Raises
    ------
    ValueError
        Another class is registered under the same ``name`` and ``replace`` is False.
    """
    def add(backend: type[StoreBackend]) -> type[StoreBackend]:
        if not (isinstance(backend, type) and issubclass(backend, StoreBackend)):
            raise TypeError(f"{backend!r} is not a StoreBackend subclass")
        known = _BACKENDS.get(backend.name)
        if known is not None and known is not backend and not replace:
            raise ValueError(f"a store back-end named {backend.name!r} is registered already "
                             f"({known.__module__}.{known.__qualname__}); pass replace=True to replace it")
        _BACKENDS.pop(backend.name, None)
        _BACKENDS[backend.name] = backend
        return backend
    return add if cls is None else add(cls)


def unregister_backend(name: str) -> None:
    """Remove a registered back-end (a test's, say)."""
    if _BACKENDS.pop(name, None) is None:
        raise UnknownNameError(f"no store back-end named {name!r}; registered: {', '.join(available_backends())}")


def available_backends() -> dict[str, type[StoreBackend]]:
    """The registered back-ends by name, in the order they are tried."""
    _load_plugins()
    return dict(reversed(list(_BACKENDS.items())))


def backend_class(location: StoreLocation) -> type[StoreBackend]:
    """The back-end that reads ``location``: the one it names, else the first whose guess accepts its target.

    Raises
    ------
    UnknownNameError
        The location names a back-end that is not registered.
    UsageError
        No back-end accepts the target.
    """
    backends = available_backends()
    if location.backend is not None:
        try:
            return backends[location.backend]
        except KeyError:
            raise UnknownNameError(f"no store back-end named {location.backend!r}; registered: "
                                   f"{', '.join(backends)}") from None
    for cls in backends.values():
        if cls.guess_can_open(location.target):
            return cls
    raise UsageError(f"{location.where}: no store back-end reads this location; registered: {', '.join(backends)}")


def open_backend(location: StoreLocation) -> StoreBackend:
    """The store at ``location``, opened for reading by its back-end."""
    return backend_class(location).open(location)


def writable_backend(location: StoreLocation) -> StoreBackend:
    """A handle to write a store at ``location`` (see :meth:`.base.StoreBackend.for_writing`)."""
    return backend_class(location).for_writing(location)


def _load_plugins() -> None:
    """Register the back-ends that installed packages declare (once; a broken one is logged and skipped)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_backend(point.load())
        except Exception as err:  # noqa: BLE001 -- a broken plugin must not break every open
            log.warning("store back-end %s (%s) could not be loaded: %s", point.name, point.value, err)
