"""Cache keys: one per clip per stage, chained through upstream keys.

key = sha256(stage name, stage code version, canonical JSON of the fully
resolved parameters, the upstream stages' keys, and the digest of the raw
inputs the stage reads). Changing any of them changes the key of that stage
and, through the chain, of every stage downstream of it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any


def canonical(value: Any) -> Any:
    """A JSON-able canonical form of parameters; raises on what cannot be hashed."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return value
    if hasattr(value, "item") and callable(value.item):
        return canonical(value.item())
    raise TypeError(f"cannot make a cache key from {type(value).__name__} value {value!r}")


def params_json(params: Any) -> str:
    """Canonical JSON of a parameter dataclass (sorted keys, no whitespace)."""
    return json.dumps(canonical(params), sort_keys=True, separators=(",", ":"))


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
