"""Cache keys: one per clip per stage, chained through upstream keys.

key = sha256(stage name, stage code version, canonical JSON of the fully
resolved parameters, the upstream stages' keys, and the digest of the raw
inputs the stage reads). Changing any of them changes the key of that stage
and, through the chain, of every stage downstream of it.

A parameter field whose metadata is :data:`NOT_IN_KEY` is left out of the key
(but kept in the recorded provenance): a limit that only decides whether an
input is refused never changes what an accepted input produces.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

NOT_IN_KEY = {"cache_key": False}
"""Field metadata (``field(default=..., metadata=NOT_IN_KEY)``) of parameters that do not change outputs:
limits that only refuse inputs, and settings of how something runs (workers, progress bars, output folders)."""


def fields_not_in_key(params: Any) -> tuple[str, ...]:
    """Names of the fields of a parameter dataclass (class or instance) tagged :data:`NOT_IN_KEY`."""
    return tuple(f.name for f in dataclasses.fields(params) if f.metadata.get("cache_key") is False)


def canonical(value: Any, *, for_key: bool = False) -> Any:
    """A JSON-able canonical form of parameters; raises on what cannot be hashed.

    ``for_key`` drops dataclass fields tagged :data:`NOT_IN_KEY`.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        dropped = fields_not_in_key(value) if for_key else ()
        return {f.name: canonical(getattr(value, f.name), for_key=for_key) for f in dataclasses.fields(value)
                if f.name not in dropped}
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k], for_key=for_key) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v, for_key=for_key) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return value
    if hasattr(value, "item") and callable(value.item):
        return canonical(value.item(), for_key=for_key)
    raise TypeError(f"cannot make a cache key from {type(value).__name__} value {value!r}")


def params_json(params: Any) -> str:
    """Canonical JSON of a parameter dataclass as it enters a key (sorted keys, no whitespace)."""
    return json.dumps(canonical(params, for_key=True), sort_keys=True, separators=(",", ":"))


def stage_key(stage: str, version: str, params: Any, upstream: Mapping[str, str] | None = None,
              inputs_digest: str | None = None) -> str:
    """The cache key of one stage for one clip (hex, 32 characters)."""
    h = hashlib.sha256()
    for part in (stage, str(version), params_json(params),
                 json.dumps(dict(sorted((upstream or {}).items())), separators=(",", ":")),
                 inputs_digest or ""):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]
