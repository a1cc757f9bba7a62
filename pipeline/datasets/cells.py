"""Sheet cells are data: bounded in length, and formulas never taken for values.

A sheet comes from whoever annotated the corpus (or wrote a manifest). One
oversized cell must fail its row, not the build: Python's CSV reader stops
the whole file at its 131 072-character field limit, so the limit is raised
for the read and each cell an adapter reads is held to :data:`MAX_CELL_CHARS`
(:func:`read_sheet <.sheets.read_sheet>` fails the row of a longer one).

An xlsx formula cell reads as its saved value, which a spreadsheet program
stores when it saves the file; a sheet written by a script (openpyxl,
pandas) has none, and the cell would read as blank. :func:`formula_cells`
finds such cells, so each is reported on its row instead of passing as an
empty label.
"""
from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

MAX_CELL_CHARS = 4096
"""Longest cell an adapter reads, in characters: a path (PATH_MAX is 4096 bytes) or a label is far shorter."""


@contextlib.contextmanager
def csv_fields_up_to(n_chars: int) -> Iterator[None]:
    """Let :mod:`csv` read fields of up to ``n_chars`` characters (its limit is process-wide; restored after)."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, n_chars))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def long_cell_problem(field: str, value: object) -> str | None:
    """Why a cell is too long to read, or None."""
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return f"the {field} cell holds {len(value)} characters, more than the {MAX_CELL_CHARS} a cell may"
    return None


def formula_cells(path: Path) -> dict[str, dict[tuple[int, int], str]]:
    """The formula cells of an xlsx workbook that hold no saved value, by tab: ``{(row, col): "=..."}``.

    Rows and columns are 0-based, as in :func:`.sheets.read_raw`'s frames. A
    formula cell with a saved value reads as that value and is not listed. A
    CSV has no formulas: a cell starting with ``=`` is text.
    """
    import openpyxl

    path = Path(path)
    if path.suffix.lower() == ".csv":
        return {}
    found: dict[str, dict[tuple[int, int], str]] = {}
    formulas = openpyxl.load_workbook(path, read_only=True, data_only=False)
    values = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for tab in formulas.worksheets:
            cells = {(c.row - 1, c.column - 1): str(c.value) for row in tab.iter_rows() for c in row
                     if getattr(c, "data_type", None) == "f"}
            if not cells:
                continue
            saved = {(c.row - 1, c.column - 1): c.value for row in values[tab.title].iter_rows() for c in row
                     if (getattr(c, "row", None), getattr(c, "column", None)) != (None, None)}
            found[tab.title] = {at: text for at, text in cells.items() if saved.get(at) is None}
    finally:
        formulas.close()
        values.close()
    return found
