"""Small synthetic stores named like SAMM, CASME II and SMIC-HS, for tests of runs over several stores.

Each clip's flow moves a blob in a direction that depends on its megc-3
class (negative, positive, surprise at 0°, 120°, 240°, plus noise), so a
short run learns it. Subjects, clips and sample ids are written as each
dataset's adapter writes them (SAMM ``006`` / ``006_1_2``; CASME II ``01`` /
``EP02_01f`` / ``sub01_EP02_01f``; SMIC ``s1`` / ``s1_ne_01``), so the
official composite list's names (``6``, ``sub01``, ``s01_ne_01``) match them.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import finish_synthetic_store

from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.writer import StoreWriter

MEGC = ("negative", "positive", "surprise")
EMOTIONS = {
    "samm": ("Anger", "Happiness", "Surprise"),
    "casme2": ("disgust", "happiness", "surprise"),
    "smic": ("negative", "positive", "surprise"),
}
"""Per dataset, a raw emotion of each megc-3 class (in :data:`MEGC` order)."""

AUS = {"samm": ("R4+7", "AU12", "1+2"), "casme2": ("4+7", "12", "1+2"), "smic": ("", "", "")}
"""Per dataset, the AU cell of each megc-3 class as its sheet writes it (SMIC codes no AUs), with ``aus=True``."""


def names(dataset: str, subject: int, cls: int, k: int) -> tuple[str, str, str]:
    """(subject, clip, sample id) as the dataset's adapter writes them."""
    if dataset == "samm":
        subject_id = f"{subject:03d}"
        clip = f"{subject_id}_{cls + 1}_{k + 1}"
        return subject_id, clip, clip
    if dataset == "casme2":
        subject_id = f"{subject:02d}"
        clip = f"EP{cls + 2:02d}_{k + 1:02d}f"
        return subject_id, clip, f"sub{subject_id}_{clip}"
    subject_id = f"s{subject}"
    clip = f"{subject_id}_{('ne', 'po', 'sur')[cls]}_{k + 1:02d}"
    return subject_id, clip, clip


def composite_rows(dataset: str, subjects: range, n_clips: int) -> list[str]:
    """The lines a composite list writes for these clips (subjects and SMIC clips in the list's own style)."""
    rows = []
    for s in subjects:
        for c in range(3):
            for k in range(n_clips):
                subject, clip, _ = names(dataset, s, c, k)
                listed = {"samm": str(s), "casme2": f"sub{s:02d}", "smic": f"s{s:02d}"}[dataset]
                if dataset == "smic":
                    clip = f"s{s:02d}" + clip[len(subject):]
                rows.append(f"{dataset},{listed},{clip},{c}")
    return rows


MAGNIFY = {"alphas": (5.0, 8.0), "test_alpha": 8.0}
"""The magnification the synthetic stores record (two alphas keep their magnified flows small)."""


def write_corpus_store(path: Path, dataset: str, *, subjects: range = range(1, 4), n_clips: int = 2,
                       n_fields: int = 3, seed: int = 0, failed: tuple[str, ...] = (), extra_emotion: str = "",
                       aus: bool = False, **params) -> Path:
    """A complete store of ``dataset`` with ``flow_first_each``, ``flow_onset_apex`` and ``frame``, and STRCN-G's
    magnified flows (``flow_onset_apex_magnified`` for alphas 5 and 8, one pair, and ``subset_pair``).

    Parameters
    ----------
    subjects : range
        Subject numbers.
    n_clips : int
        Clips per subject and class.
    failed : tuple of str
        Sample ids recorded as failed builds (their features are not written).
    extra_emotion : str
        Adds one clip of this raw emotion to the first subject (e.g. one a scheme does not map).
    aus : bool
        Write each clip's AU cell and codes (:data:`AUS`); by default the sample table has none.
    params
        Stage parameters recorded in the build record (``flow_first_each={"size": ...}``).
    """
    rng = np.random.default_rng(seed)
    writer = StoreWriter(path)
    writer.create()
    yy, xx = np.mgrid[0:112, 0:112] / 111.0
    plan = [(s, c, k, EMOTIONS[dataset][c]) for s in subjects for c in range(3) for k in range(n_clips)]
    if extra_emotion:
        plan.append((subjects[0], 0, n_clips, extra_emotion))
    rows = []
    for s, c, k, emotion in plan:
        subject, clip, sample = names(dataset, s, c, k)
        row = dict.fromkeys(SAMPLE_COLUMNS, "")
        row.update(sample=sample, dataset=dataset, subject=subject, clip=clip, fps=200.0, n_frames=n_fields + 1,
                   emotion=emotion, onset=10, apex=11 + n_fields // 2, offset=10 + n_fields, status="ok",
                   onset_est=None, apex_est=None, offset_est=None, apex_ncc=None)
        if aus:
            cell = AUS[dataset][c]
            row.update(action_units=cell, au_codes="+".join(re.findall(r"\d+", cell)))
        if sample in failed:
            rows.append({**row, "status": "failed"})
            continue
        angle = 2 * np.pi * c / 3 + rng.normal(0, 0.3)
        cy, cx = rng.uniform(0.3, 0.7, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
        ramp = np.sin(np.linspace(0.3, np.pi - 0.3, n_fields))
        field = np.stack([np.cos(angle) * blob, np.sin(angle) * blob])
        flow = np.stack([2 * r * field for r in ramp]) + rng.normal(0, 0.15, (n_fields, 2, 112, 112))
        writer.write_feature(sample, "flow_first_each", flow.astype(np.float32), "synthetic")
        onset_apex = rng.normal(0, 0.1, (2, 245, 300))
        onset_apex[:, 60:172, 90:202] += flow[n_fields // 2]
        writer.write_feature(sample, "flow_onset_apex", onset_apex.astype(np.float32), "synthetic")
        magnified = np.stack([onset_apex * (1 + alpha) / 9 for alpha in MAGNIFY["alphas"]])[:, None]
        writer.write_feature(sample, "flow_onset_apex_magnified", magnified.astype(np.float32), "synthetic")
        writer.write_feature(sample, "onset_apex_pairs", np.array([[0, 1 + n_fields // 2]], np.int32), "synthetic")
        writer.write_feature(sample, "subset_pair", np.zeros(5, np.int32), "synthetic")
        writer.write_feature(sample, "frame", np.arange(10, 11 + n_fields), "synthetic")
        rows.append(row)
    writer.write_samples(pd.DataFrame(rows))
    finish_synthetic_store(writer, dataset, **{"magnify": MAGNIFY, **params})
    return path
