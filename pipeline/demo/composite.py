"""The demo corpora's MEGC 2019 composite list, in the official list's format.

The MEGC 2019 composite protocol takes its clips and labels from the
organisers' list (``dataset, subject, clip, class``; no header; class 0 =
negative, 1 = positive, 2 = surprise), not from the sheets. The demo
corpora are not in that list, so they get their own, written exactly as the
official one writes its entries, quirks included, so that the code matching
a list to stores is exercised on the demo as it will be on real data:

- dataset: the demo's dataset name (``demo``, ``demo-casme2``, ``demo-smic``);
- subject: SAMM-style as an unpadded number (``1`` for folder ``001``, like
  the official ``6`` for ``006``), CASME II-style as ``sub01`` (the adapter's
  subject is ``01``), SMIC-style zero-padded as ``s01`` while the folders
  say ``s1`` (as the official list writes ``s01`` for SMIC-HS's ``s1``);
- clip: the folder name, except SMIC's, zero-padded the same way
  (``s01_ne_01`` for folder ``s1_ne_01``);
- which clips: every clip whose emotion the MEGC 2019 grouping maps
  (SAMM: anger, contempt, disgust, fear, sadness → negative; CASME II:
  disgust, repression → negative; SMIC as labelled), less CASME II's
  ``others`` and the preset's ``composite_skip`` — the official list, too,
  leaves out clips the sheet would map (145 of the 2019 sheet's 150).

:data:`COMPOSITE_NAME` beside this module is that list for :data:`.params.PRESETS`,
shipped so a protocol can find it without generating any demo; a test
checks it equals :func:`composite_rows`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from . import layouts
from .params import PRESETS, DemoParams
from .synth import clip_name, clip_plan

COMPOSITE_NAME = "megc2019-composite-3class-demo.csv"
COMPOSITE_PATH = Path(__file__).with_name(COMPOSITE_NAME)
"""The shipped list for the three demo presets of the composite's corpora."""

MEGC_CLASSES = ("negative", "positive", "surprise")
"""Class index in the list = position here (the official list's coding)."""

MEGC_GROUPS = {
    "samm": {"anger": 0, "contempt": 0, "disgust": 0, "fear": 0, "sadness": 0, "happiness": 1, "surprise": 2},
    "casme2": {"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2},
    "smic": {"negative": 0, "positive": 1, "surprise": 2},
}
"""MEGC 2019's three classes per layout, by lower-case emotion (See et al. 2019)."""


def list_subject(layout: str, number: int) -> str:
    """A subject as the official list writes it for the layout's dataset."""
    return {"samm": str(number), "casme2": f"sub{number:02d}", "smic": f"s{number:02d}"}[layout]


def list_clip(layout: str, number: int, clip: str) -> str:
    """A clip as the official list writes it: SMIC clip names take the zero-padded subject."""
    if layout == "smic":
        return f"s{number:02d}" + clip[len(layouts.subject_id("smic", number)):]
    return clip


def composite_rows(presets: dict[str, DemoParams] = PRESETS) -> list[tuple[str, str, str, int]]:
    """(dataset, subject, clip, class) of every listed demo clip, datasets in name order.

    Only the demos of the composite's corpora (SAMM, CASME II, SMIC) are
    listed; only clip plans are computed (no frames), so this is instant.
    """
    rows = []
    for dataset in sorted(d for d, params in presets.items() if params.layout in MEGC_GROUPS):
        params = presets[dataset]
        groups = MEGC_GROUPS[params.layout]
        for number, cls, clip_number in clip_plan(params):
            folder_subject = layouts.subject_id(params.layout, number)
            clip = clip_name(folder_subject, cls, clip_number, params.layout)
            subject = list_subject(params.layout, number)
            label = groups.get(cls.name.lower())
            key = layouts.clip_key(params.layout, folder_subject, clip, cls.name)
            if label is None or key in params.composite_skip:
                continue
            rows.append((dataset, subject, list_clip(params.layout, number, clip), label))
    return rows


def composite_text(presets: dict[str, DemoParams] = PRESETS) -> str:
    """The list as CSV text, no header, ``\\n`` line ends."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(composite_rows(presets))
    return out.getvalue()


def write_composite(path: Path, presets: dict[str, DemoParams] = PRESETS) -> Path:
    """Write the demo composite list to ``path``; returns the path."""
    Path(path).write_text(composite_text(presets))
    return Path(path)
