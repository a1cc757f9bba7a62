"""The AU parse table: each corpus's way of writing action units -> the AUs a clip shows.

Every row is a string as a real sheet writes it (SAMM, CASME II, CASME, MMEW,
CAS(ME)³, 4DME), the canonical code the sample table stores, and what is kept
beside it (prefixes, intensities, marks, unread terms).
"""
from __future__ import annotations

import math

import pytest

from mepipe.pipeline.datasets.action_units import ActionUnit, au_codes, parse_action_units

AU_TABLE = [
    # cell, canonical codes, terms not read
    ("AU4+L10", "4+10", ()),          # MMEW-style prefix and a CASME II side
    ("R12", "12", ()),                # SAMM unilateral
    ("(4)", "4", ()),                 # CASME: parenthesised AU
    ("4+7+43", "4+7+43", ()),
    ("L2", "2", ()),
    ("R14A", "14", ()),               # side and intensity
    ("12?", "12", ()),                # unsure, still shown
    ("AU1+AU2", "1+2", ()),
    ("", "", ()),
    ("no", "", ()),
    ("/", "", ()),
    ("4,7", "4+7", ()),               # CAS(ME)³ commas
    ("4，7", "4+7", ()),              # full-width comma (MEB fixes one CAS(ME)³ C cell by hand)
    ("AU4+AU7(k)", "4", ()),          # 4DME (k): not shown, as MEB's Fourd drops it
    ("12+15 ", "12+15", ()),          # trailing space
    ("R12 + R15", "12+15", ()),       # spaces around '+'
    ("15+4", "4+15", ()),             # sorted
    ("4+4", "4", ()),                 # unique
    ("4A/B", "4", ()),                # SAMM intensity range
    ("A/L12", "12", ()),              # SAMM prefix alternatives
    ("A1B+A2C", "1+2", ()),           # SAMM asymmetric with intensities
    ("13+T18+39", "13+18+39", ()),    # SAMM top
    ("ref(7B)+43C", "7+43", ()),      # SAMM ref(...)
    ("L12 or L14", "", ()),           # alternatives: neither is shown
    ("(R6 or R12)+R15", "15", ()),
    ("R14A or 17A or 24A", "", ()),
    ("12/14", "", ()),                # '/' = or
    ("R14+17+soft focus", "14+17", ("soft focus",)),
    ("xyz", "", ("xyz",)),
    ("(4", "", ("(4",)),              # unbalanced parenthesis
    (12, "12", ()),                   # a number cell
    (12.0, "12", ()),                 # Excel's float
    (None, "", ()),
    (math.nan, "", ()),
]


@pytest.mark.parametrize(("cell", "codes", "unparsed"), AU_TABLE)
def test_au_parse_table(cell, codes, unparsed):
    coding = parse_action_units(cell)
    assert au_codes(coding) == codes
    assert coding.unparsed == unparsed


def test_markers_are_kept_beside_the_numbers():
    (unit,) = parse_action_units("R14A").units
    assert unit == ActionUnit(14, prefix="R", intensity="A")
    assert parse_action_units("12?").units[0].marks == ("?",)
    assert parse_action_units("(4)").units[0].marks == ("()",)
    assert parse_action_units("ref(L10)").units[0] == ActionUnit(10, "L", "", ("ref",))
    kept = parse_action_units("AU4+AU7(k)").units
    assert [(u.number, u.shown) for u in kept] == [(4, True), (7, False)]
    options = parse_action_units("(R6 or R12)+R15")
    assert [(u.number, u.marks) for u in options.alternatives] == [(6, ("()", "or")), (12, ("()", "or"))]

