"""FACS action-unit strings of the sheets -> the AU numbers a clip shows.

Every corpus writes its action units its own way: SAMM ``R12+R15``, ``R14A``,
``A1B+A2C``, ``4A/B``, ``ref(7B)+43`` and ``R12 or R14``; CASME II ``4+L10``
and ``1+R2+25``; MMEW ``AU4+AU7``; CAS(ME)³ ``4,7`` (commas, sometimes a
full-width ``，``); 4DME ``AU4+AU7(k)``; CASME ``4+(7)``; and blanks, ``/``
or ``no`` for none. :func:`parse_action_units` reads them all with one
grammar: terms separated by ``+``, ``,`` or ``;``; a term is one AU or
alternatives joined by ``or`` or ``/`` (SAMM's symbol key: ``"/" = or``),
optionally wrapped in parentheses or ``ref(...)``; an AU is an optional
``AU``, an optional prefix (``L``/``R`` unilateral, ``A`` asymmetric, ``T``/
``B`` top/bottom, as SAMM's "AU Help" says), the number, an optional FACS
intensity ``A``-``E`` (or a range ``A/B``) and optional marks ``(k)`` (4DME)
and ``?`` (SAMM: "unclear offset").

What a term says is kept in :class:`ActionUnit`; which AUs a clip is said to
*show* is :attr:`ActionUnit.shown`, and :func:`au_codes` writes those as the
canonical string stored in the sample table (``"4+10"``: ascending numbers,
``+``-separated, ``""`` for none). Two judgements are made here:

- a 4DME AU marked ``(k)`` is not shown, as MEB's ``Fourd`` loader drops it
  (tvaranka/meb, ``meb/datasets/datasets.py``);
- alternatives (``R12 or R14``) are not shown, since the sheet does not say
  which one moved; MEB replaced SAMM's five such cells by hand, after optical
  flow (same file), a choice that cannot be made from the sheet.

Unsure (``?``), parenthesised and ``ref(...)`` AUs are shown, as MEB's digit
extraction counts them (``extract_action_units`` in
``meb/datasets/dataset_utils.py``).

References
----------
P. Ekman, W. V. Friesen, J. C. Hager, "Facial Action Coding System: The
Manual", Research Nexus, 2002 (AU numbers, sides, intensities A-E).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ActionUnit", "AUCoding", "au_codes", "parse_action_units"]

KEPT = "k"
"""Mark of 4DME's ``(k)``: an AU the clip does not show as a movement (MEB's ``Fourd`` drops it)."""

ALTERNATIVE = "or"
"""Mark of an AU written as one of several alternatives (``R12 or R14``): the sheet does not say which moved."""

NONE_WORDS = frozenset({"", "/", "-", "no", "none", "n/a", "na", "nan", "null"})
"""Whole cells that mean "no action unit coded"."""

_TERMS = re.compile(r"[+,;，]")
_ALTERNATIVES = re.compile(r"\s+or\s+|(?<=[\dA-E)?])or(?=[LRATBU]?\d)|/(?=\s*(?:AU)?[LRATBU]?\d)", re.IGNORECASE)
_WRAPPED = re.compile(r"^(?P<wrap>ref\(|\()(?P<inner>.*)\)$", re.IGNORECASE)
_AU = re.compile(
    r"""^(?:AU)?(?P<prefix>[LRATBU](?:/[LRATBU])*)?(?:AU)?
        (?P<number>\d{1,2})
        (?P<grade>[A-E](?:/[A-E])*)?
        (?P<kept>\(k\))?
        (?P<unsure>\?)?$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class ActionUnit:
    """One coded action unit: its number and what the sheet wrote around it.

    Attributes
    ----------
    number : int
        FACS AU number (``12`` for ``R12``).
    prefix : str
        ``L``/``R`` (unilateral), ``A`` (asymmetric), ``T``/``B`` (top/bottom),
        ``U``, or alternatives such as ``A/L``; ``""`` when none.
    intensity : str
        FACS intensity ``A``-``E``, or a range such as ``A/B``; ``""`` when none.
    marks : tuple of str
        ``"?"`` (unsure), ``"()"`` (parenthesised), ``"ref"`` (``ref(...)``),
        :data:`KEPT` (4DME ``(k)``), :data:`ALTERNATIVE` (one of ``... or ...``).
    """

    number: int
    prefix: str = ""
    intensity: str = ""
    marks: tuple[str, ...] = ()

    @property
    def shown(self) -> bool:
        """Whether the clip shows this AU: neither a 4DME ``(k)`` AU nor one of alternatives."""
        return KEPT not in self.marks and ALTERNATIVE not in self.marks


@dataclass(frozen=True)
class AUCoding:
    """A parsed AU cell: the units read and the terms that could not be read."""

    units: tuple[ActionUnit, ...] = ()
    unparsed: tuple[str, ...] = ()

    @property
    def numbers(self) -> tuple[int, ...]:
        """The AU numbers the clip shows, ascending and unique."""
        return tuple(sorted({u.number for u in self.units if u.shown}))

    @property
    def alternatives(self) -> tuple[ActionUnit, ...]:
        """The AUs written as alternatives (``R12 or R14``), which the clip is not said to show."""
        return tuple(u for u in self.units if ALTERNATIVE in u.marks)


def _unit(text: str, marks: tuple[str, ...]) -> ActionUnit | None:
    m = _AU.match(re.sub(r"\s+", "", text))
    if m is None:
        return None
    own = tuple(mark for mark, present in (("?", m.group("unsure")), (KEPT, m.group("kept"))) if present)
    return ActionUnit(int(m.group("number")), (m.group("prefix") or "").upper(),
                      (m.group("grade") or "").upper(), marks + own)


def _term(text: str) -> list[ActionUnit] | None:
    """The AUs of one ``+``-separated term, or None when it is not one."""
    marks: tuple[str, ...] = ()
    wrapped = _WRAPPED.match(text)
    if wrapped:
        marks = ("ref",) if wrapped.group("wrap").lower() == "ref(" else ("()",)
        text = wrapped.group("inner").strip()
    unit = _unit(text, marks)
    if unit is not None:
        return [unit]
    options = [o for o in _ALTERNATIVES.split(text) if o.strip()]
    units = [_unit(o, marks + (ALTERNATIVE,)) for o in options]
    return units if len(units) > 1 and all(u is not None for u in units) else None


def parse_action_units(cell: object) -> AUCoding:
    """Read one sheet cell of action units.

    Parameters
    ----------
    cell : object
        The cell as read (text, a number such as ``12`` or ``12.0``, None or NaN).

    Returns
    -------
    AUCoding
        ``AUCoding()`` for a blank cell or one of :data:`NONE_WORDS`; terms
        that are no AU (``"soft focus"``) land in ``unparsed``.

    Examples
    --------
    >>> parse_action_units("AU4+L10").numbers
    (4, 10)
    >>> parse_action_units("R14A").units
    (ActionUnit(number=14, prefix='R', intensity='A', marks=()),)
    """
    if cell is None or (isinstance(cell, float) and cell != cell):
        return AUCoding()
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    text = str(cell).strip()
    if re.sub(r"\s+", "", text).lower() in NONE_WORDS:
        return AUCoding()
    units: list[ActionUnit] = []
    unparsed: list[str] = []
    for piece in _TERMS.split(text):
        piece = piece.strip()
        if not piece:
            continue
        read = _term(piece)
        if read is None:
            unparsed.append(piece)
        else:
            units += read
    return AUCoding(tuple(units), tuple(unparsed))


def au_codes(coding: AUCoding) -> str:
    """The canonical string of the AUs a clip shows: ``"4+10"``, ``""`` for none."""
    return "+".join(str(n) for n in coding.numbers)
