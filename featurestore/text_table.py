"""Plain-text tables for the terminal: columns padded to their widest cell, long cells wrapped and cut.

``mepipe info --clips/--features`` and ``mepipe runs compare`` print with
it. A value can be far wider than a terminal (a recipe's deviations as JSON
run to 600 characters), and one such cell would pad its whole column; so
with ``width`` a cell wraps onto lines of at most that many characters,
and a cell needing more than ``lines`` lines is cut, its last line saying
how long the whole value is (``--json`` output keeps every value whole).
"""
from __future__ import annotations

import textwrap
from collections.abc import Sequence

__all__ = ["cell_lines", "text_table"]

GAP = 2
"""Spaces between two columns."""


def cell_lines(text: str, width: int, lines: int) -> list[str]:
    """``text`` wrapped to lines of at most ``width`` characters, at most ``lines`` of them.

    Words longer than ``width`` are broken. When the text needs more lines,
    the last one kept is shortened to end with ``… (N chars)``, N the length
    of the whole value.
    """
    wrapped = textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]
    if len(wrapped) <= lines:
        return wrapped
    kept = wrapped[:lines]
    tail = f"… ({len(text)} chars)"
    kept[-1] = kept[-1][:max(width - len(tail), 1)] + tail
    return kept


def text_table(rows: Sequence[Sequence[str]], *, width: int | None = None, lines: int = 3) -> list[str]:
    """Rows of cells as lines of text, each column as wide as its widest (wrapped) cell.

    Parameters
    ----------
    rows : sequence of sequences of str
        The cells, row by row (a header is just the first row); rows may be
        shorter than others.
    width : int, optional
        Wrap cells at this many characters (see :func:`cell_lines`); None
        keeps every cell on one line, whole.
    lines : int
        With ``width``: the most lines a cell may take before it is cut.

    Returns
    -------
    list of str
        One string per printed line, trailing spaces removed.
    """
    if not rows:
        return []
    cells = [[cell_lines(c, width, lines) if width else [c] for c in row] for row in rows]
    n_columns = max(len(row) for row in cells)
    widths = [max((len(line) for row in cells if i < len(row) for line in row[i]), default=0) + GAP
              for i in range(n_columns)]
    out: list[str] = []
    for row in cells:
        for k in range(max((len(c) for c in row), default=1)):
            out.append("".join(f"{(c[k] if k < len(c) else ''):<{w}}" for c, w in zip(row, widths)).rstrip())
    return out
