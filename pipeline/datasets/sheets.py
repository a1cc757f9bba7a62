"""Reading annotation sheets into samples, tolerating the sheets' known quirks.

The published sheets are hand-edited spreadsheets: a free-text preamble above
the header (SAMM), subjects written as ``6`` or ``"006"``, ``/`` for a missing
apex (CASME II), an apex outside onset..offset (SAMM 028_4_1, 032_3_1). These
helpers read such a sheet without guessing row positions, keep every row, and
turn each problem into a :class:`~.base.Quirk` plus a flag on the sample, so a
build records the problem instead of stopping on it.

Flags and quirk kinds share one vocabulary: ``<field>_unparsable``,
``<field>_not_on_disk``, ``apex_outside_span``, ``onset_after_offset``,
``missing_folder``, ``no_frames``, ``ambiguous_frames``, ``frame_gap``,
``action_units_unparsable``, ``action_units_ambiguous``; rows that cannot
become samples are reported as ``incomplete_row`` or ``duplicate_sample``.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import pandas as pd

from mepipe.featurestore.errors import MissingPathError, SheetError, UsageError
from mepipe.featurestore.layout import sample_id_problem

from .action_units import parse_action_units
from .base import AdapterResult, Quirk, Sample, describe_gaps, frame_gaps, numbered_frames

log = logging.getLogger(__name__)


class SheetChoiceError(UsageError):
    """A root holds several sheets that are not versions of one another; the user must pick one."""


GT_FIELDS = ("onset", "apex", "offset")
SHEET_SUFFIXES = (".xlsx", ".xlsm", ".csv")


def is_blank(value: object) -> bool:
    """True for an empty cell: None, NaN or whitespace-only text."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def cell_text(value: object) -> str:
    """A cell as stripped text; whole floats lose their ``.0`` (Excel stores 3 as 3.0)."""
    if is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_SUBJECT = re.compile(r"^(?:sub|s)?0*(\d+)$", re.IGNORECASE)


def normalise_subject(value: object, width: int) -> str:
    """A subject id as zero-padded digits, whichever way the sheet wrote it.

    SAMM writes subject 6 as ``6`` or ``"006"`` and CASME II writes ``1`` or
    ``"01"``; the folders use the padded form, so ``6 -> "006"`` at width 3 and
    ``"sub1" -> "01"`` at width 2. Non-numeric ids are returned stripped.
    """
    text = cell_text(value)
    m = _SUBJECT.match(text)
    return m.group(1).zfill(width) if m else text


def parse_frame(value: object) -> tuple[int | None, str | None]:
    """A frame-number cell as ``(number, None)``, or ``(None, why)`` when it is not one.

    Blank cells, ``/`` (the CASME II mark for "no apex"), text and fractions
    all give ``None`` with a reason, so the caller can flag the row.
    """
    if is_blank(value):
        return None, "blank cell"
    if isinstance(value, bool):
        return None, f"not a frame number: {value!r}"
    if isinstance(value, Integral):
        number = int(value)
    elif isinstance(value, Real):
        if not float(value).is_integer():
            return None, f"not a whole frame number: {value!r}"
        number = int(value)
    else:
        text = str(value).strip()
        if text == "/":
            return None, "'/' (no value given)"
        try:
            as_float = float(text)
        except ValueError:
            return None, f"not a frame number: {text!r}"
        if not as_float.is_integer():
            return None, f"not a whole frame number: {text!r}"
        number = int(as_float)
    if number < 0:
        return None, f"negative frame number: {number}"
    return number, None


def require_dir(path: Path, what: str) -> Path:
    """``path`` as a Path, or FileNotFoundError saying which dataset root is missing."""
    path = Path(path)
    if not path.is_dir():
        raise MissingPathError(f"{what} root {path} is not a folder")
    return path


def find_sheet(root: Path, patterns: Sequence[str], annotations: Path | None = None, *,
               several: str = "newest") -> Path:
    """The annotation sheet: ``annotations`` if given, else the newest match in ``root``.

    Matches are sorted by name, so a dated or versioned sheet
    (``CASME2-coding-20190701.xlsx``, ``..._v2.xlsx``) wins over older ones.
    Excel lock files (``~$name.xlsx``) are ignored. ``several="refuse"``
    refuses a root with more than one match instead, naming them all: for
    sheets that are not versions of one another (two manifests list two
    different sets of clips).
    """
    if annotations is not None:
        path = Path(annotations)
        if not path.is_file():
            raise MissingPathError(f"annotation sheet {path} does not exist")
        return path
    root = Path(root)
    found = sorted(
        {p for pattern in patterns for p in root.glob(pattern) if p.is_file() and not p.name.startswith("~$")}
    )
    if not found:
        raise MissingPathError(
            f"no annotation sheet in {root} matching {' or '.join(repr(p) for p in patterns)}; "
            "pass the sheet with --annotations FILE"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        if several == "refuse":
            raise SheetChoiceError(f"{root} holds {len(found)} sheets matching "
                                   f"{' or '.join(repr(p) for p in patterns)}: {names}; "
                                   "choose one with --annotations FILE")
        log.warning("several annotation sheets in %s (%s); using %s", root, names, found[-1].name)
    return found[-1]


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV as text cells, ragged rows padded: preamble lines are often shorter than the table."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    width = max((len(r) for r in rows), default=0)
    padded = [[c if c.strip() else None for c in r] + [None] * (width - len(r)) for r in rows]
    return pd.DataFrame(padded, dtype=object)


def read_raw(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet of a workbook (or the one table of a CSV) with no header parsing.

    Cells stay Python objects (``"006"`` stays text) and blank lines are kept,
    so that row ``i`` of a frame is row ``i + 1`` in Excel or in the CSV file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SHEET_SUFFIXES:
        allowed = ", ".join(SHEET_SUFFIXES)
        raise SheetError(f"annotation sheet {path}: unsupported file type {suffix!r}; use one of {allowed}")
    try:
        if suffix == ".csv":
            return {"": _read_csv(path)}
        return pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    except (OSError, ValueError) as exc:
        raise SheetError(f"cannot read annotation sheet {path}: {exc}") from exc


def _header_key(text: object) -> str:
    """A header cell compared without case, spaces or punctuation ("Onset Frame" == "onsetframe")."""
    return re.sub(r"[^0-9a-z]", "", cell_text(text).lower())


def find_header_row(raw: pd.DataFrame, key: str, *, leading: bool = True) -> int | None:
    """Index of the header row: the first row whose first non-empty cell is ``key``.

    With ``leading=False`` the key may be in any cell of the row (manifests,
    whose column order is free).
    """
    wanted = _header_key(key)
    for i, values in enumerate(raw.itertuples(index=False, name=None)):
        cells = [_header_key(v) for v in values if not is_blank(v)]
        if not cells:
            continue
        if (cells[0] == wanted) if leading else (wanted in cells):
            return i
    return None


@dataclass(frozen=True)
class SheetColumns:
    """Accepted header names for each field, matched without case, spaces or punctuation.

    The first alias present in the header wins. Fields in ``required`` must be
    present; the others read as blank when their column is absent.
    """

    subject: tuple[str, ...] = ("Subject",)
    clip: tuple[str, ...] = ("Filename", "File name")
    onset: tuple[str, ...] = ("Onset Frame", "OnsetFrame", "OnsetF", "Onset")
    apex: tuple[str, ...] = ("Apex Frame", "ApexFrame", "ApexF1", "ApexF", "Apex")
    offset: tuple[str, ...] = ("Offset Frame", "OffsetFrame", "OffsetF", "Offset")
    action_units: tuple[str, ...] = ("Action Units", "Action Unit", "AUs", "AU")
    emotion: tuple[str, ...] = ("Estimated Emotion", "Emotion")
    objective_class: tuple[str, ...] = ("Objective Classes", "Objective Class")
    required: tuple[str, ...] = ("subject", "clip", "onset", "offset")


def column_fields(columns: object) -> tuple[str, ...]:
    """Field names of a column spec: every dataclass field but ``required``.

    Any frozen dataclass of alias tuples with a ``required`` field works as a
    spec (the manifest adapter has its own), so :func:`read_sheet` is shared.
    """
    return tuple(f.name for f in dataclasses.fields(columns) if f.name != "required")


@dataclass(frozen=True)
class SheetRow:
    """One data row: its 1-based row number in the file and its cells by field name."""

    row: int
    cells: Mapping[str, object]

    def get(self, name: str) -> object:
        return self.cells.get(name)


@dataclass(frozen=True)
class Sheet:
    """The data rows of an annotation sheet, below its header row."""

    path: Path
    name: str
    rows: tuple[SheetRow, ...]

    @property
    def source(self) -> str:
        """How quirks name this sheet: the file name, plus the tab when not the first."""
        return self.path.name + (f" [{self.name}]" if self.name else "")


def _column_map(header: Sequence[object], columns: object, path: Path) -> dict[str, int]:
    keys = [_header_key(h) for h in header]
    found: dict[str, int] = {}
    for name in column_fields(columns):
        for alias in getattr(columns, name):
            if _header_key(alias) in keys:
                found[name] = keys.index(_header_key(alias))
                break
    missing = [n for n in columns.required if n not in found]
    if missing:
        wanted = "; ".join(f"{n}: {' / '.join(getattr(columns, n))}" for n in missing)
        present = ", ".join(repr(cell_text(h)) for h in header if not is_blank(h))
        raise SheetError(f"annotation sheet {path}: header lacks columns ({wanted}); header has {present}")
    return found


def read_sheet(
    path: Path, columns: object = SheetColumns(), *, header_key: str = "Subject", leading: bool = True
) -> Sheet:
    """The rows of the first tab whose header row starts with ``header_key``.

    ``columns`` is :class:`SheetColumns` or another spec of the same shape;
    each row's cells are keyed by its field names.

    The header is found by content, never by position, since the SAMM sheet
    has a preamble of varying length above it. Fully blank rows are dropped.
    """
    path = Path(path)
    for index, (tab, raw) in enumerate(read_raw(path).items()):
        header_at = find_header_row(raw, header_key, leading=leading)
        if header_at is None:
            continue
        where = _column_map(list(raw.iloc[header_at]), columns, path)
        rows = []
        for i in range(header_at + 1, len(raw)):
            cells = {name: raw.iat[i, col] for name, col in where.items()}
            if all(is_blank(v) for v in cells.values()):
                continue
            rows.append(SheetRow(row=i + 1, cells=cells))
        return Sheet(path=path, name=str(tab) if index else "", rows=tuple(rows))
    how = "starting with" if leading else "containing"
    raise SheetError(
        f"annotation sheet {path}: no header row {how} {header_key!r} in any tab; "
        "is this the right sheet? pass another with --annotations FILE"
    )


@dataclass(frozen=True)
class Findings:
    """Flags for a sample and the matching quirks, gathered by the checks below."""

    flags: tuple[str, ...] = ()
    quirks: tuple[Quirk, ...] = ()

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.flags + other.flags, self.quirks + other.quirks)


@dataclass(frozen=True)
class GroundTruth:
    """Onset, apex and offset after parsing and contradiction checks, with findings."""

    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    findings: Findings = Findings()


def finding(sample: str, kind: str, message: str, source: str = "", row: int | None = None) -> Findings:
    """One flag and its quirk: ``kind`` is both the flag and the quirk kind."""
    return Findings((kind,), (Quirk(sample=sample, kind=kind, message=message, source=source, row=row),))


def check_span(gt: GroundTruth, sample: str, source: str, row: int | None) -> GroundTruth:
    """Blank out ground truth that contradicts itself, keeping the row.

    Onset after offset leaves no trustworthy field, so all three become None.
    An apex outside onset..offset (SAMM 028_4_1, 032_3_1) only loses the apex,
    which the apex stage then estimates.
    """
    on, apex, off = gt.onset, gt.apex, gt.offset
    if on is not None and off is not None and on > off:
        message = f"onset {on} > offset {off}; onset, apex and offset set to None"
        found = finding(sample, "onset_after_offset", message, source, row)
        return GroundTruth(None, None, None, gt.findings + found)
    if apex is not None and ((on is not None and apex < on) or (off is not None and apex > off)):
        span = f"{'?' if on is None else on}..{'?' if off is None else off}"
        message = f"apex {apex} outside onset..offset {span}; apex set to None"
        found = finding(sample, "apex_outside_span", message, source, row)
        return GroundTruth(on, None, off, gt.findings + found)
    return gt


def read_ground_truth(
    row: SheetRow, sample: str, source: str, *, blank_is_quirk: bool = True
) -> GroundTruth:
    """Onset/apex/offset of a sheet row, each None (with a quirk) when unreadable.

    A field whose column the sheet lacks is None without a quirk;
    ``blank_is_quirk=False`` accepts blank cells silently, for sheets where
    the fields are optional (manifests).
    """
    values: dict[str, int | None] = {}
    findings = Findings()
    for name in GT_FIELDS:
        if name not in row.cells:
            values[name] = None
            continue
        cell = row.get(name)
        values[name], why = parse_frame(cell)
        if why is not None and (blank_is_quirk or not is_blank(cell)):
            message = f"{name} cell {cell_text(cell)!r}: {why}; set to None"
            findings += finding(sample, f"{name}_unparsable", message, source, row.row)
    return check_span(GroundTruth(**values, findings=findings), sample, source, row.row)


def check_action_units(cell: object, sample: str, source: str, row: int | None) -> Findings:
    """Flag an AU cell with terms that are no AU, or with alternatives (:mod:`.action_units`).

    The cell is kept as written; the flagged terms are only left out of the
    AUs the clip is said to show (its ``au_codes``).
    """
    coding = parse_action_units(cell)
    findings = Findings()
    if coding.unparsed:
        terms = ", ".join(repr(t) for t in coding.unparsed)
        message = f"action units {cell_text(cell)!r}: {terms} read as no AU; left out of the clip's AUs"
        findings += finding(sample, "action_units_unparsable", message, source, row)
    if coding.alternatives:
        options = " or ".join(str(u.number) for u in coding.alternatives)
        message = (f"action units {cell_text(cell)!r}: AU {options} are alternatives; "
                   "none of them is counted as shown")
        findings += finding(sample, "action_units_ambiguous", message, source, row)
    return findings


@dataclass(frozen=True)
class ClipFrames:
    """The numbered frame files of a clip folder, or why there are none."""

    files: tuple[str, ...] = ()
    numbers: tuple[int, ...] = ()
    error: str | None = None
    findings: Findings = Findings()


def clip_frames(folder: Path, sample: str, source: str = "", row: int | None = None) -> ClipFrames:
    """Frame files of ``folder`` mapped by the number in their names, never failing.

    A missing folder, a folder without numbered images, or two files with one
    number each give a :class:`ClipFrames` with ``error`` set and a quirk; a
    gap in the numbers gives a ``frame_gap`` quirk listing the missing ones.
    """
    folder = Path(folder)
    if not folder.is_dir():
        error = f"missing folder {folder}"
        return ClipFrames(error=error, findings=finding(sample, "missing_folder", error, source, row))
    try:
        files, numbers = numbered_frames(folder)
    except ValueError as exc:
        error = str(exc)
        return ClipFrames(error=error, findings=finding(sample, "ambiguous_frames", error, source, row))
    if not files:
        error = f"no numbered image files in {folder}"
        return ClipFrames(error=error, findings=finding(sample, "no_frames", error, source, row))
    gaps = frame_gaps(numbers)
    if gaps:
        message = (f"frame numbers {numbers[0]}..{numbers[-1]} in {folder} miss {describe_gaps(gaps)}; "
                   "frames on either side of a gap are not treated as neighbours")
        return ClipFrames(files=files, numbers=numbers, findings=finding(sample, "frame_gap", message, source, row))
    return ClipFrames(files=files, numbers=numbers)


def check_on_disk(
    gt: GroundTruth, numbers: Sequence[int], where: str, sample: str, source: str, row: int | None
) -> Findings:
    """Flag ground-truth frame numbers that no frame file carries.

    The values are kept (they are the sheet's), but ``Sample.index_of`` will
    return None for them, so consumers fall back to estimates.
    """
    if not numbers:
        return Findings()
    present = set(numbers)
    findings = Findings()
    for name in GT_FIELDS:
        value = getattr(gt, name)
        if value is not None and value not in present:
            message = (
                f"{name} {value} is not among the frame numbers in {where} "
                f"({numbers[0]}..{numbers[-1]}, {len(numbers)} frames)"
            )
            findings += finding(sample, f"{name}_not_on_disk", message, source, row)
    return findings


@dataclass(frozen=True)
class SheetLayout:
    """How a sheet-annotated dataset maps a (subject, clip) row to a sample and a folder.

    ``sample_id`` and ``folder`` receive the normalised subject and the clip
    name; ``subject_width`` is the zero-padding of subject ids (None keeps
    the subject as the sheet writes it, for sheets whose subject is a folder
    name such as ``S01``).
    """

    dataset: str
    fps: float
    subject_width: int | None
    sample_id: Callable[[str, str], str]
    folder: Callable[[str, str], Path]


def collect_samples(
    sheet: Sheet,
    sample_id: Callable[[SheetRow], str | None],
    build: Callable[[SheetRow, str], tuple[Sample, Sequence[Quirk]]],
) -> AdapterResult:
    """One sample per sheet row via ``build``, skipping rows that cannot be one.

    ``sample_id`` returns None for a row lacking what identifies a clip; such
    rows, and repeats of an id, are reported as quirks and skipped; a row whose
    id cannot name a store folder (``../x``, 300 characters) is ``rejected``,
    which a build reports as that row's failure. Every other row becomes a sample (with ``error`` set when its frames are
    missing), so a build can list it.
    """
    result = AdapterResult(sheet=str(sheet.path))
    first_row: dict[str, int] = {}
    for row in sheet.rows:
        key = sample_id(row)
        if not key:
            message = "no value identifying the clip; row skipped"
            result.quirks.append(Quirk(f"row {row.row}", "incomplete_row", message, sheet.source, row.row))
            continue
        problem = sample_id_problem(key)
        if problem:
            shown = key if len(key) <= 60 else key[:57] + "..."
            message = f"sample id {shown!r} {problem}, so it cannot name a store folder; row not built"
            result.rejected.append(Quirk(f"row {row.row}", "bad_sample_id", message, sheet.source, row.row))
            continue
        if key in first_row:
            message = f"sample id repeats row {first_row[key]}; row skipped"
            result.quirks.append(Quirk(key, "duplicate_sample", message, sheet.source, row.row))
            continue
        first_row[key] = row.row
        sample, quirks = build(row, key)
        result.samples.append(sample)
        result.quirks.extend(quirks)
    return result


def sheet_samples(sheet: Sheet, layout: SheetLayout) -> AdapterResult:
    """Samples of a SAMM/CASME-style sheet: one per row with a subject and a clip name."""

    def ids(row: SheetRow) -> tuple[str, str]:
        cell = row.get("subject")
        subject = cell_text(cell) if layout.subject_width is None else normalise_subject(cell, layout.subject_width)
        return subject, cell_text(row.get("clip"))

    def sample_id(row: SheetRow) -> str | None:
        subject, clip = ids(row)
        return layout.sample_id(subject, clip) if subject and clip else None

    def build(row: SheetRow, key: str) -> tuple[Sample, tuple[Quirk, ...]]:
        return _sheet_sample(row, sheet, layout, *ids(row), key)

    return collect_samples(sheet, sample_id, build)


def _sheet_sample(
    row: SheetRow, sheet: Sheet, layout: SheetLayout, subject: str, clip: str, sample_id: str
) -> tuple[Sample, tuple[Quirk, ...]]:
    return row_sample(row, sheet.source, sample_id, dataset=layout.dataset, subject=subject, clip=clip,
                      fps=layout.fps, folder=layout.folder(subject, clip))


def row_sample(
    row: SheetRow,
    source: str,
    sample_id: str,
    *,
    dataset: str,
    subject: str,
    clip: str,
    fps: float,
    folder: Path,
    frames_of: Callable[[GroundTruth], ClipFrames] | None = None,
) -> tuple[Sample, tuple[Quirk, ...]]:
    """The sample of one sheet row whose frames are in ``folder``, with every finding of the row.

    ``frames_of`` picks the clip's frames from its ground truth (a clip cut
    from a longer video, :func:`.cuts.cut_frames`); by default they are all
    numbered frames of ``folder``.
    """
    gt = read_ground_truth(row, sample_id, source)
    frames = frames_of(gt) if frames_of else clip_frames(folder, sample_id, source, row.row)
    on_disk = check_on_disk(gt, frames.numbers, str(folder), sample_id, source, row.row)
    aus = check_action_units(row.get("action_units"), sample_id, source, row.row)
    findings = gt.findings + frames.findings + on_disk + aus
    sample = Sample(
        sample=sample_id,
        dataset=dataset,
        subject=subject,
        clip=clip,
        fps=float(fps),
        frame_files=frames.files,
        frame_numbers=frames.numbers,
        onset=gt.onset,
        apex=gt.apex,
        offset=gt.offset,
        emotion=cell_text(row.get("emotion")),
        objective_class=cell_text(row.get("objective_class")),
        action_units=cell_text(row.get("action_units")),
        flags=findings.flags,
        error=frames.error,
    )
    return sample, findings.quirks
