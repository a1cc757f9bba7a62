"""A store's build record: what made it, written by the build and read by ``info``, ``diff`` and training.

The record lives in the root group's attributes (so it travels with the
store and a remote open reads it in one request). It is parsed into typed
dataclasses: a reader asks ``record.stages["flow_first_each"].params``,
never a free-form dict with fall-backs, and a record missing a field is an
error naming it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .errors import DataError

__all__ = ["BuildInfo", "BuildRecord", "ProvenanceError", "SheetRecord", "StageRecord"]


class ProvenanceError(DataError, ValueError):
    """A store's build record is missing or malformed."""


@dataclass(frozen=True)
class StageRecord:
    """How one stage was run.

    Attributes
    ----------
    version : str
        The stage's code version.
    params : dict
        Its fully resolved parameters, as canonical JSON (tuples as lists).
    outputs : tuple of str
        The features it writes.
    upstream : tuple of str
        The stages it reads from.
    """

    version: str
    params: dict[str, Any]
    outputs: tuple[str, ...]
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class SheetRecord:
    """The annotation sheet a build read: where it was and its content hash."""

    path: str
    sha256: str


@dataclass(frozen=True)
class BuildInfo:
    """Where, when and how a build ran (shown by ``info``; not a difference for ``diff``).

    ``fingerprint`` is how unchanged sources were recognised (``stat`` or ``content``).
    """

    host: str
    user: str
    started: str
    finished: str
    seconds: float
    scheduler: str
    fingerprint: str
    n_samples: int
    n_ok: int
    n_failed: int


@dataclass(frozen=True)
class BuildRecord:
    """Provenance of a complete store.

    Attributes
    ----------
    schema_version : int
    mepipe_version : str
    dataset : str
        Dataset adapter name (``samm``, ``casme2``, ``demo``, ...).
    source_root : str
        The dataset folder the build read.
    annotations : SheetRecord or None
    quirks : tuple of str
        Sheet and data quirks the adapter handled.
    features : tuple of str
        Every feature readable for at least one clip, whichever build wrote it.
    stages : dict of str to StageRecord
        The stages whose outputs the store holds, with the parameters they ran with.
    shared_params : dict
        Settings that are not a stage but enter the keys of stages reading sources (``frames``).
    build : BuildInfo
        The last build.
    """

    schema_version: int
    mepipe_version: str
    dataset: str
    source_root: str
    annotations: SheetRecord | None
    quirks: tuple[str, ...]
    features: tuple[str, ...]
    stages: dict[str, StageRecord]
    shared_params: dict[str, dict[str, Any]]
    build: BuildInfo

    def stage_params(self) -> dict[str, dict[str, Any]]:
        """Parameters of every recorded stage and shared setting, by name (what feature sizes follow from)."""
        return {**self.shared_params, **{name: stage.params for name, stage in self.stages.items()}}

    def producer(self, feature: str) -> str | None:
        """The recorded stage that wrote ``feature``, or None."""
        return next((name for name, s in self.stages.items() if feature in s.outputs), None)

    def to_attrs(self) -> dict[str, Any]:
        """JSON-able root attributes."""
        out = asdict(self)
        out["stages"] = {name: asdict(s) for name, s in self.stages.items()}
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str = "store") -> BuildRecord:
        """Parse root attributes; raises :class:`ProvenanceError` naming a missing or malformed field."""
        try:
            sheet = attrs["annotations"]
            return cls(
                schema_version=int(attrs["schema_version"]),
                mepipe_version=str(attrs["mepipe_version"]),
                dataset=str(attrs["dataset"]),
                source_root=str(attrs["source_root"]),
                annotations=SheetRecord(**sheet) if sheet else None,
                quirks=_strings(attrs["quirks"], "quirks"),
                features=_strings(attrs["features"], "features"),
                stages={name: StageRecord(version=str(s["version"]), params=dict(s["params"]),
                                          outputs=_strings(s["outputs"], f"stages.{name}.outputs"),
                                          upstream=_strings(s["upstream"], f"stages.{name}.upstream"))
                        for name, s in attrs["stages"].items()},
                shared_params={name: dict(p) for name, p in attrs["shared_params"].items()},
                build=BuildInfo(**attrs["build"]),
            )
        except KeyError as err:
            raise ProvenanceError(f"{where}: its build record lacks {err.args[0]!r}; rebuild it with "
                                  "`mepipe build`") from None
        except (TypeError, ValueError, AttributeError) as err:
            raise ProvenanceError(f"{where}: its build record is malformed ({err}); rebuild it with "
                                  "`mepipe build`") from None


def _strings(value: Any, field: str) -> tuple[str, ...]:
    """A record field that must be a list of strings (a string would read as its characters, numbers would not sort)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{field} is not a list of names but {type(value).__name__} {value!r:.80}")
    return tuple(value)
