"""Where a build may write, and which clips it may remove.

A build writes into ``--store`` and, when it ends, removes the clips its
dataset no longer lists, so that the store matches its sample table. Pointed
at the wrong folder, or at a store of other data, that would delete what the
build never wrote. So:

- ``--store`` is a new or empty folder, or a mepipe store; a file, or a
  non-empty folder without a store's root ``zarr.json`` (the dataset root,
  a home folder), is refused before anything is written.
- A store's build record names the sources it holds (:class:`Sources`:
  dataset adapter, resolved root, adapter options). A build from other
  sources is refused unless ``replace`` is given; with it, the store is
  rebuilt from the new sources: clips they lack are removed, and so are the
  features of stages the build does not run (the old sources made them).
- A build of the same sources whose dataset lists fewer clips (rows deleted
  from the sheet) removes those clips only with ``prune``.

The sheet is not part of the sources: sheets are corrected in place and a
newer one may sit beside the old, and what a changed sheet would remove is
caught by the ``prune`` rule. Every clip removed is named in the build
report.
"""
from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mepipe.featurestore.cachekey import canonical
from mepipe.featurestore.errors import UsageError
from mepipe.featurestore.layout import PRIVATE_DIR, dataset_feature_path, feature_path
from mepipe.featurestore.provenance import BuildRecord
from mepipe.featurestore.writer import StoreWriter

from .stages import STAGES

__all__ = ["DestinationError", "Removal", "Sources", "apply_removal", "check_destination", "plan_removal"]

SHOWN = 10
"""Clip ids and folder entries a refusal names before saying how many more."""


class DestinationError(UsageError):
    """``--store`` names something a build must not write into, or the build would remove clips unasked."""


@dataclass(frozen=True)
class Sources:
    """What a store is built from; two builds of equal sources may share a store.

    Attributes
    ----------
    dataset : str
        The adapter name (``--dataset``).
    root : str
        The dataset root, resolved (symlinks followed).
    options : dict or None
        The adapter's options in canonical form; None where a store's record
        predates them (then they are not compared).
    """

    dataset: str
    root: str
    options: dict[str, Any] | None

    @classmethod
    def of(cls, dataset: str, root: str | Path, options: Mapping[str, Any]) -> Sources:
        """The sources of a build about to run."""
        return cls(dataset, str(Path(root).resolve()), canonical(dict(options)))

    @classmethod
    def recorded(cls, record: BuildRecord) -> Sources:
        """The sources a store's build record names."""
        options = None if record.adapter_options is None else canonical(record.adapter_options)
        return cls(record.dataset, record.source_root, options)

    def differences(self, build: Sources) -> list[str]:
        """How ``build`` (the sources of a new build) differs from these, one phrase each."""
        out = []
        if self.dataset != build.dataset:
            out.append(f"dataset {self.dataset!r}, not {build.dataset!r}")
        if self.root != build.root:
            out.append(f"root {self.root}, not {build.root}")
        if self.options is not None and self.options != build.options:
            out.append(f"adapter options {_shown(self.options)}, not {_shown(build.options)}")
        return out


@dataclass(frozen=True)
class Removal:
    """What a build will remove when it ends (:func:`plan_removal`).

    Attributes
    ----------
    clips : tuple of str
        Clips of the store that the build's dataset does not list.
    replaced : str
        With ``replace`` over other sources, which ones (for the report); empty otherwise.
    foreign_stages : bool
        Also remove the features of stages this build does not run (they came from the replaced sources).
    """

    clips: tuple[str, ...] = ()
    replaced: str = ""
    foreign_stages: bool = False


def check_destination(store: Path) -> None:
    """Refuse a ``--store`` that is a file, or a non-empty folder that is not a store (nothing is written).

    Raises
    ------
    DestinationError
    """
    if store.exists() and not store.is_dir():
        raise DestinationError(f"--store {store} is a file, not a store folder; give a new folder or an existing "
                               "store")
    if store.is_dir() and not (store / "zarr.json").is_file():
        entries = sorted(p.name for p in store.iterdir() if p.name != PRIVATE_DIR)  # .mepipe/: a build's own
        if entries:
            raise DestinationError(
                f"--store {store} is a folder that holds files ({_some(entries)}) and is not a mepipe store; a build "
                "writes only into a new or empty folder or a store, so choose another --store")


def plan_removal(writer: StoreWriter, build: Sources, keep: Collection[str], *, replace: bool = False,
                 prune: bool = False) -> Removal:
    """The clips (and features) a build of ``build`` listing the clips ``keep`` will remove from the store.

    Raises
    ------
    DestinationError
        The store holds other sources and ``replace`` is not given, or the
        build would remove clips and neither ``prune`` nor ``replace`` is.
    """
    attrs = _root_attrs(writer)
    held = Sources.recorded(BuildRecord.from_attrs(attrs, str(writer.path))) if "build" in attrs else None
    differences = held.differences(build) if held is not None else []
    gone = tuple(c for c in writer.clip_ids() if c not in set(keep))
    if differences and not replace:
        also = f" (removing {len(gone)} clips it lacks: {_some(gone)})" if gone else ""
        raise DestinationError(
            f"{writer.path} was built from other sources ({'; '.join(differences)}); pass --replace to rebuild "
            f"it from this build's sources{also}, or choose another --store")
    if gone and not (prune or replace):
        raise DestinationError(
            f"{writer.path}: this build would remove {len(gone)} clips its dataset no longer lists ({_some(gone)}); "
            "pass --prune to remove them, or restore their rows and sources")
    replaced = f"{held.dataset} from {held.root}" if differences else ""
    return Removal(clips=gone, replaced=replaced, foreign_stages=bool(differences))


def apply_removal(writer: StoreWriter, removal: Removal, keep: Collection[str], stages: Collection[str]) -> list[str]:
    """Remove what :func:`plan_removal` planned; returns the clips removed.

    ``stages`` are the stages the build ran; with ``removal.foreign_stages``
    every other stage's features go too, clip by clip and dataset-wide.
    """
    removed = writer.prune_clips(set(keep))
    if removal.foreign_stages:
        others = [f for s in STAGES.values() if s.name not in stages for f in s.writes]
        for feature in others:
            if feature.scope == "dataset":
                writer.discard(dataset_feature_path(feature.name))
            else:
                for sample in writer.clip_ids():
                    writer.discard(feature_path(sample, feature.name))
    return removed


def _root_attrs(writer: StoreWriter) -> dict[str, Any]:
    try:
        return writer.root_attrs()
    except FileNotFoundError:
        return {}


def _some(names: Collection[str]) -> str:
    names = list(names)
    more = f", … ({len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _shown(options: Mapping[str, Any] | None) -> str:
    return json.dumps(options, sort_keys=True) if options else "none"
