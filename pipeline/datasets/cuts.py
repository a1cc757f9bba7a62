"""Clips cut from longer frame folders, and folders found whatever the case of their names.

CAS(ME)³ part A and CAS(ME)² keep one folder of frames per recorded video
and annotate several expressions in it by frame numbers; a clip is the
frames numbered onset..offset of that folder. :class:`Folders` lists each
folder once per adapter run (a CAS(ME)³ video holds thousands of frames and
many clips) and finds a child folder whose name the sheet writes in another
case (CAS(ME)³ writes ``spNO.1`` in its sheet and, in some copies, ``spNo.1``
on disk; a public loader, ``carfnet/registry.py`` (found by code search, its
repository unnamed there), matches folders without case for that reason).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import describe_gaps, frame_gaps, numbered_frames
from .sheets import ClipFrames, finding


@dataclass(frozen=True)
class Listing:
    """The numbered frames of one folder, or why it has none (``kind`` a flag name)."""

    folder: Path
    files: tuple[str, ...] = ()
    numbers: tuple[int, ...] = ()
    kind: str = ""
    error: str | None = None


class Folders:
    """Folder listings and case-insensitive folder lookups, each done once per adapter run."""

    def __init__(self) -> None:
        self._frames: dict[Path, Listing] = {}
        self._children: dict[Path, dict[str, list[Path]]] = {}

    def frames(self, folder: Path) -> Listing:
        """The numbered frames of ``folder`` (:func:`.base.numbered_frames`), listed on first use."""
        folder = Path(folder)
        if folder not in self._frames:
            self._frames[folder] = _listing(folder)
        return self._frames[folder]

    def child(self, parent: Path, name: str) -> tuple[Path, bool]:
        """``parent / name``, or the one sub-folder whose name equals ``name`` but for case.

        Returns the folder and whether its case differs from ``name``; when
        none or several match, ``parent / name`` (which does not exist) and False.
        """
        exact = Path(parent) / name
        if exact.is_dir():
            return exact, False
        if parent not in self._children:
            folders = [p for p in Path(parent).iterdir() if p.is_dir()] if Path(parent).is_dir() else []
            self._children[parent] = {}
            for p in folders:
                self._children[parent].setdefault(p.name.lower(), []).append(p)
        found = self._children[parent].get(name.lower(), [])
        return (found[0], True) if len(found) == 1 else (exact, False)


def _listing(folder: Path) -> Listing:
    if not folder.is_dir():
        return Listing(folder, kind="missing_folder", error=f"missing folder {folder}")
    try:
        files, numbers = numbered_frames(folder)
    except ValueError as exc:
        return Listing(folder, kind="ambiguous_frames", error=str(exc))
    if not files:
        return Listing(folder, kind="no_frames", error=f"no numbered image files in {folder}")
    return Listing(folder, files, numbers)


def cut_frames(listing: Listing, first: int | None, last: int | None, sample: str, source: str = "",
               row: int | None = None) -> ClipFrames:
    """The frames numbered ``first..last`` of a listed folder, never failing.

    A folder without frames, an unknown ``first`` or ``last`` (no range to
    cut: ``no_span``) or a range holding no frame gives ``error`` and a
    quirk; missing numbers inside the range give a ``frame_gap`` quirk (gaps
    elsewhere in the video are no concern of this clip).
    """
    if listing.error is not None:
        return ClipFrames(error=listing.error, findings=finding(sample, listing.kind, listing.error, source, row))
    if first is None or last is None:
        error = f"no onset..offset known, so the clip cannot be cut from {listing.folder}"
        return ClipFrames(error=error, findings=finding(sample, "no_span", error, source, row))
    kept = [(n, f) for n, f in zip(listing.numbers, listing.files) if first <= n <= last]
    if not kept:
        error = (f"no frame numbered {first}..{last} in {listing.folder} "
                 f"(it holds {listing.numbers[0]}..{listing.numbers[-1]})")
        return ClipFrames(error=error, findings=finding(sample, "no_frames", error, source, row))
    numbers = tuple(n for n, _ in kept)
    files = tuple(f for _, f in kept)
    gaps = frame_gaps((first - 1, *numbers, last + 1))
    if gaps:
        message = (f"frames {first}..{last} of {listing.folder} miss {describe_gaps(gaps)}; "
                   "frames on either side of a gap are not treated as neighbours")
        return ClipFrames(files, numbers, findings=finding(sample, "frame_gap", message, source, row))
    return ClipFrames(files, numbers)
