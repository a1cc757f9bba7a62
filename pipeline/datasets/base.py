"""The sample table every dataset adapter produces.

An adapter turns a dataset root plus its annotation sheet into a list of
:class:`Sample` records and a list of :class:`Quirk` reports. Labels stay raw;
label schemes are applied at training time. Frame numbers are the numbers in
the source (file names or video frame indices), never positions in a folder.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import pandas as pd

from mepipe.featurestore.errors import UnknownNameError

from .action_units import au_codes, parse_action_units


@dataclass(frozen=True)
class Sample:
    """One clip of one subject, as the adapter read it from disk and sheet.

    ``onset``/``apex``/``offset`` are source frame numbers (``None`` when the
    sheet has none or the value contradicts the rest of the row); ``flags``
    lists the quirks found for this row; ``error`` is set when the clip cannot
    be built at all (missing folder, no frames) so the build can record it
    without stopping.
    """

    sample: str
    dataset: str
    subject: str
    clip: str
    fps: float
    frame_files: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    video: str | None = None
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    emotion: str = ""
    objective_class: str = ""
    action_units: str = ""
    flags: tuple[str, ...] = ()
    error: str | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frame_numbers)

    @property
    def au_codes(self) -> str:
        """The AUs the clip shows as the sample table stores them (``"4+10"``; :mod:`.action_units`)."""
        return au_codes(parse_action_units(self.action_units))

    def index_of(self, frame_number: int | None) -> int | None:
        """Position of a source frame number in this clip, or None if absent."""
        if frame_number is None:
            return None
        try:
            return self.frame_numbers.index(int(frame_number))
        except ValueError:
            return None


@dataclass(frozen=True)
class Quirk:
    """A problem found in a sheet row or on disk, handled rather than fatal."""

    sample: str
    kind: str
    message: str
    source: str = ""
    row: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}" + (f" row {self.row}" if self.row is not None else "")
        return f"{self.sample}: {self.kind}: {self.message}" + (f" ({where})" if where else "")


@dataclass
class AdapterResult:
    """What an adapter returns: the samples, every quirk it handled, and the rows it refused.

    ``rejected`` rows could not become samples at all (e.g. a sample id that
    cannot name a store folder); a build reports each as a failure of that
    row alone. ``assumptions`` are one line each about a format the public
    loaders leave uncertain, said where the adapter had to choose (a build
    summary prints them). ``unit`` says what the samples are: annotated
    clips (``"clip"``) or whole long videos (``"video"``), whose annotated
    intervals are then ``intervals`` (the columns of
    :data:`~mepipe.featurestore.schema.INTERVAL_COLUMNS` but ``interval``).
    """

    samples: list[Sample] = field(default_factory=list)
    quirks: list[Quirk] = field(default_factory=list)
    sheet: str | None = None
    rejected: list[Quirk] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    unit: str = "clip"
    intervals: pd.DataFrame | None = None

    def table(self) -> pd.DataFrame:
        """The samples as a DataFrame, one row per clip (frame lists omitted, ``au_codes`` added)."""
        rows = []
        for s in self.samples:
            row = dataclasses.asdict(s)
            row.pop("frame_files")
            row.pop("frame_numbers")
            row["n_frames"] = s.n_frames
            row["au_codes"] = s.au_codes
            row["flags"] = "; ".join(s.flags)
            rows.append(row)
        return pd.DataFrame(rows)


class Adapter(Protocol):
    """A dataset adapter: ``load(root, annotations=None) -> AdapterResult``."""

    name: str

    def __call__(self, root: Path, annotations: Path | None = None) -> AdapterResult: ...


_ADAPTERS: dict[str, Callable[..., AdapterResult]] = {}


def register_adapter(name: str):
    """Register an adapter function under a dataset name (``--dataset NAME``)."""

    def deco(fn):
        if name in _ADAPTERS:
            raise ValueError(f"adapter {name!r} registered twice")
        _ADAPTERS[name] = fn
        return fn

    return deco


def get_adapter(name: str) -> Callable[..., AdapterResult]:
    """The adapter for a dataset name; raises with the list of known names."""
    try:
        return _ADAPTERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(sorted(_ADAPTERS))}") from None


def adapter_names() -> list[str]:
    return sorted(_ADAPTERS)


UNIT_OPTIONS = {"videos": "video", "clips": "clip"}
"""Values of an adapter's ``unit`` option (``--option unit=videos``), and the unit of store each gives."""


def adapter_unit(name: str, options: Mapping[str, Any]) -> str:
    """What an adapter's samples are under ``options``: ``"video"`` or ``"clip"``, from its ``unit`` option (an
    adapter without one reads clips). An unknown value is the adapter's to refuse; it reads as clips here."""
    default = inspect.signature(get_adapter(name)).parameters.get("unit")
    if default is None:
        return "clip"
    return UNIT_OPTIONS.get(str(options.get("unit", default.default)), "clip")


_NUMBER = re.compile(r"(\d+)(?=\.[A-Za-z0-9]+$)")


def frame_number_of(path: str | Path) -> int | None:
    """The frame number in a frame file name: the last digit run before the extension."""
    m = _NUMBER.search(Path(path).name)
    return int(m.group(1)) if m else None


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def numbered_frames(folder: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Image files in ``folder`` ordered by the number in their names.

    Files without a number are ignored; two files with one number raise, since
    the mapping from frame number to file would be ambiguous.
    """
    pairs: dict[int, str] = {}
    for p in folder.iterdir():
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        n = frame_number_of(p)
        if n is None:
            continue
        if n in pairs:
            raise ValueError(f"{folder}: frame number {n} appears twice ({Path(pairs[n]).name}, {p.name})")
        pairs[n] = str(p)
    numbers = tuple(sorted(pairs))
    return tuple(pairs[n] for n in numbers), numbers


def frame_gaps(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of frame numbers missing between consecutive entries of ascending ``numbers``.

    Each gap is ``(first_missing, last_missing)``: ``[1, 2, 5, 9]`` has gaps
    ``[(3, 4), (6, 8)]``. Positions ``t`` with ``numbers[t + 1] - numbers[t] > 1``
    are not neighbours in time, whatever their positions in the clip.
    """
    return [(a + 1, b - 1) for a, b in zip(numbers, numbers[1:]) if b - a > 1]


def describe_gaps(gaps: Sequence[tuple[int, int]], limit: int = 8) -> str:
    """``"1005, 1010-1012 (4 frames)"``: the missing numbers, shortened after ``limit`` runs."""
    runs = [f"{a}" if a == b else f"{a}-{b}" for a, b in gaps]
    shown = ", ".join(runs[:limit]) + (f", ... ({len(runs) - limit} more runs)" if len(runs) > limit else "")
    count = sum(b - a + 1 for a, b in gaps)
    return f"{shown} ({count} frame{'s' if count != 1 else ''})"
