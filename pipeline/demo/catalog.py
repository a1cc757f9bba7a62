"""Every demo corpus by dataset name, and writing one by name (what ``mepipe demo`` and ``mepipe build`` call).

Short-clip demos (:data:`.params.PRESETS`: ``demo``, ``demo-casme2``,
``demo-smic``, ``demo-casme3``) are written by :func:`.synth.write_demo`;
the long-video demo (:data:`.long_params.LONG_PRESETS`: ``demo-lv``) by
:func:`.long_write.write_long_demo`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .long_params import LONG_PRESETS
from .long_write import LongDemoSummary, write_long_demo
from .params import PRESETS
from .synth import DemoSummary, write_demo

DEMO_NAMES = (*PRESETS, *LONG_PRESETS)
"""Every demo dataset name."""


def write_named_demo(name: str, root: Path, *, seed: int | None = None, n_subjects: int | None = None,
                     n_clips: int | None = None, videos_per_subject: int | None = None,
                     overwrite: bool = False) -> DemoSummary | LongDemoSummary:
    """Write demo ``name`` under ``root``, its preset changed where an argument is given.

    Fewer subjects or videos of the long-video demo keep the sheet quirks of
    the videos still made (:meth:`.long_params.LongDemoParams.resized`).

    Raises ValueError (one sentence) for an unknown name, a change the
    preset cannot take (``n_clips`` of the long-video demo, ``videos_per_subject``
    of a short-clip one) or a value the parameters refuse.
    """
    if name not in DEMO_NAMES:
        raise ValueError(f"unknown demo {name!r}; known: {', '.join(DEMO_NAMES)}")
    long_video = name in LONG_PRESETS
    misplaced = "n_clips" if long_video and n_clips is not None else \
        "videos_per_subject" if not long_video and videos_per_subject is not None else None
    if misplaced:
        kind = "long videos, not clips" if long_video else "clips, not long videos"
        raise ValueError(f"{misplaced} does not apply to {name}, which has {kind}")
    seeded = {} if seed is None else {"seed": seed}
    if long_video:
        params = dataclasses.replace(LONG_PRESETS[name], **seeded).resized(n_subjects, videos_per_subject)
        return write_long_demo(Path(root), params, overwrite=overwrite)
    changes = {key: value for key, value in {"n_subjects": n_subjects, "n_clips": n_clips}.items() if value is not None}
    return write_demo(Path(root), dataclasses.replace(PRESETS[name], **seeded, **changes), overwrite=overwrite)
