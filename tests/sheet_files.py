"""Writing annotation sheets and frame folders the way the released datasets lay them out (for adapter tests).

Frame files are empty: adapters map files by name and never decode them.
"""
from __future__ import annotations

import os
from pathlib import Path

import openpyxl

from mepipe.pipeline.datasets import AdapterResult, Sample


def write_xlsx(path: Path, rows: list[list[object]], title: str | None = None,
               more: dict[str, list[list[object]]] | None = None) -> Path:
    """A workbook with ``rows`` from A1 down on its first tab (empty lists are blank rows).

    ``title`` names the first tab; ``more`` adds tabs after it, by name.
    """
    wb = openpyxl.Workbook()
    ws = wb.active
    if title:
        ws.title = title
    for sheet, sheet_rows in [(ws, rows), *((wb.create_sheet(name), r) for name, r in (more or {}).items())]:
        for i, row in enumerate(sheet_rows, start=1):
            for j, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(row=i, column=j, value=value)
    wb.save(path)
    return path


def _empty_file(path: str) -> None:
    """Create an empty file; ``mknod`` skips the open/close of ``write_bytes`` (the real-sheet trees hold ~29k)."""
    try:
        os.mknod(path)
    except (AttributeError, PermissionError):
        Path(path).write_bytes(b"")


def touch_frames(folder: Path, numbers, name) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = os.fspath(folder)
    for n in numbers:
        _empty_file(os.path.join(base, name(n)))


def by_id(result: AdapterResult) -> dict[str, Sample]:
    return {s.sample: s for s in result.samples}


def kinds(result: AdapterResult, sample: str) -> set[str]:
    return {q.kind for q in result.quirks if q.sample == sample}
