"""Spotting scored as the MEGC challenges score it: interval tables in, the MEGC table out.

A spotter predicts intervals (onset..offset, inclusive frame numbers) of
micro- and macro-expressions in videos; the annotation gives the true
intervals. This module counts them exactly as the official evaluation of
the MEGC 2020 baseline project does (``MDMD_results/result_helper.py``,
``pred_clips_analysis``, with the ``precision_small`` / ``F1_small`` it
reports in ``MEGC2020_results.txt`` and the FG 2020 baseline paper [1]_):

- **IoU on inclusive frame indices**: ``|P ∩ T| / |P ∪ T|`` counted in
  frames, ``[a, b]`` holding ``b - a + 1`` frames (:func:`interval_iou`).
- **A truth is found** when some prediction of its video and kind has
  IoU >= 0.5 with it (each truth counts once however many predictions find
  it). Micro-expression predictions are scored against micro-expression
  truths only, macro against macro.
- **Pooled over videos**, per dataset and kind: ``M`` truths, ``N``
  predictions, ``A`` truths found; ``TP = A``, ``FP = N - A``,
  ``FN = M - A``; ``recall = A / M``, ``precision = A / N`` (so a second
  prediction on a found truth lowers precision), ``F1 = 2 P R / (P + R)``;
  each is 0 where its denominator is 0 (``recall_precision_f1``).
- **Overall** pools the micro and macro counts (``MEGC2020_results.txt``:
  6558 predictions = 5035 micro + 1523 macro); **all** pools the datasets.
- Every video of the evaluation counts: predictions in a video without truth
  are false positives, truths of a video without predictions false negatives.

The matching order does not matter under these rules (a truth is found or
not). One corner of the official arithmetic is kept as it is: a prediction
that finds two truths (possible only when the truths overlap, or when it is
exactly two adjacent truths of equal length) adds 2 to ``A`` and 1 to
``N``, so ``FP`` can be negative and precision exceed 1, as
``pred_clips_analysis`` computes them.

Where the official versions differ
----------------------------------
The 2020 ``calc_iou`` returns 0 for an interval of one frame
(``clip[1] <= clip[0]``) and counts one shared frame between disjoint
intervals (``max(0, min - max) + 1``); the MEGC 2023/2024 STRS code
(``genbing99/STRS-Metric``, ``strs_metric.py``, ``_calculate_iou``) counts
the frames of the two ranges exactly. Disjoint intervals of two frames or
more have a 2020 IoU of at most 1/3, so at IoU >= 0.5 the two differ only
on one-frame intervals, which the baseline's figures never contain (its
intervals are at least 7 frames long, CAS(ME)², and 47, SAMM); the exact
count is used here. The STRS code pairs each prediction with the truths it
claims (see :mod:`mepipe.train.strs`), which differs from the 2020 count
only when one prediction finds two truths; the table here is the 2020
baseline's, whose published figures it is compared with
(:data:`MEGC2020_BASELINE`).

Interval tables are pandas DataFrames or lists of records (mappings or
dataclass instances) with columns ``dataset, video, onset, offset, kind``
(``micro`` or ``macro``); other columns (``apex``, ``score``, ``emotion``)
are carried along. ``mepipe spot`` writes its ``intervals.csv`` in this
form; a long-video store's annotated intervals give the truth.

References
----------
.. [1] Y. He, S.-J. Wang, J. Li, M. H. Yap, "Spotting macro- and
   micro-expression intervals in long video sequences", IEEE FG 2020,
   pp. 238-244. https://doi.org/10.1109/FG47880.2020.00036; code:
   https://github.com/HeyingGithub/Baseline-project-for-MEGC2020_spotting
   (``MDMD_results/result_helper.py``, ``evaluation_all_p.py``,
   ``eval_res_txt/MEGC2020_results.txt``, commit 7751490).
.. [2] G.-B. Liong, J. See, C. S. Chan, "Spot-then-recognize: a
   micro-expression analysis network for seamless evaluation of long
   videos", Signal Processing: Image Communication 110, 2023.
   https://doi.org/10.1016/j.image.2022.116875; code:
   https://github.com/genbing99/STRS-Metric (``strs_metric.py``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mepipe.featurestore.safety import printable

from .published import CORPORA, corpus_of

__all__ = ["ALL", "COLUMNS", "IOU", "KINDS", "MEGC2020_BASELINE", "MEGC2020_SOURCE", "OVERALL",
           "PublishedSpotting", "SpottingCounts", "SpottingRow", "format_spotting_table", "found_truths",
           "interval_iou", "interval_table", "iou_matrix", "spotting_counts", "spotting_table"]

KINDS = ("micro", "macro")
"""Kinds of expression interval, scored apart (the MEGC spotting tracks)."""

OVERALL = "overall"
"""Row of a dataset's micro and macro counts pooled."""

ALL = "all"
"""Row of every dataset's counts pooled."""

IOU = 0.5
"""IoU a prediction needs with a truth to find it (every MEGC spotting track)."""

COLUMNS = ("dataset", "video", "onset", "offset", "kind")
"""Columns every interval table has; onset and offset are inclusive frame numbers."""


# --- intervals --------------------------------------------------------------------------------


def interval_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """IoU of two inclusive frame intervals ``(onset, offset)``: shared frames over frames in either."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def iou_matrix(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """:func:`interval_iou` of every (prediction, truth) pair.

    Parameters
    ----------
    predicted, truth : array-like of int, shape (P, 2) and (T, 2)
        Inclusive (onset, offset) rows.

    Returns
    -------
    ndarray, shape (P, T), float64
    """
    p = np.asarray(predicted, dtype=np.int64).reshape(-1, 2)
    t = np.asarray(truth, dtype=np.int64).reshape(-1, 2)
    inter = np.clip(np.minimum(p[:, None, 1], t[None, :, 1]) - np.maximum(p[:, None, 0], t[None, :, 0]) + 1, 0, None)
    union = (p[:, 1] - p[:, 0] + 1)[:, None] + (t[:, 1] - t[:, 0] + 1)[None, :] - inter
    return inter / union


def found_truths(predicted: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], iou: float = IOU) -> np.ndarray:
    """Which truths of one video some prediction finds (IoU >= ``iou``), as a bool array of shape (T,)."""
    if len(truth) == 0:
        return np.zeros(0, dtype=bool)
    if len(predicted) == 0:
        return np.zeros(len(truth), dtype=bool)
    return (iou_matrix(predicted, truth) >= iou).any(axis=0)


@dataclass(frozen=True)
class SpottingCounts:
    """True positives, false positives and false negatives, and what the MEGC code derives from them.

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
    ``F1 = 2 P R / (P + R)``; each 0 where its denominator is 0, as the MEGC
    2020 baseline (``recall_precision_f1``) and the STRS code
    (``calculate_metrics``) set them. Counts add (``a + b``) for pooling.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @classmethod
    def found(cls, truths: int, predictions: int, found: int) -> SpottingCounts:
        """MEGC 2020 counts: ``M`` truths, ``N`` predictions, ``A`` truths found -> TP A, FP N - A, FN M - A."""
        return cls(found, predictions - found, truths - found)

    @property
    def truths(self) -> int:
        return self.tp + self.fn

    @property
    def predictions(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        return self.tp / self.predictions if self.predictions else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.truths if self.truths else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: SpottingCounts) -> SpottingCounts:
        return SpottingCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_record(self) -> dict[str, int | float]:
        """Counts and figures as a JSON-ready dict."""
        return {"truths": self.truths, "predictions": self.predictions, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "precision": self.precision, "recall": self.recall, "f1": self.f1}


def spotting_counts(predicted: Sequence[Sequence[Sequence[int]]], truth: Sequence[Sequence[Sequence[int]]],
                    iou: float = IOU) -> SpottingCounts:
    """MEGC 2020 counts pooled over videos (one kind): truths, predictions and truths found.

    Parameters
    ----------
    predicted, truth : sequence (one per video) of sequences of (onset, offset)
        Inclusive intervals of each video, in the same video order.
    iou : float
        IoU a prediction needs to find a truth.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"got predicted intervals of {len(predicted)} videos and truths of {len(truth)}")
    total = SpottingCounts()
    for spotted, real in zip(predicted, truth):
        total += SpottingCounts.found(len(real), len(spotted), int(found_truths(spotted, real, iou).sum()))
    return total


# --- interval tables --------------------------------------------------------------------------


def interval_table(records: pd.DataFrame | Iterable, what: str = "intervals", required: tuple[str, ...] = (),
                   kinds: tuple[str, ...] = KINDS) -> pd.DataFrame:
    """An interval table checked and normalised: str dataset, video, kind; int64 onset, offset; row order kept.

    Parameters
    ----------
    records : DataFrame, or iterable of mappings or dataclass instances
        With at least :data:`COLUMNS` (and ``required``).
    what : str
        What the table is ("predictions", "truth"), for messages.
    required : tuple of str
        Further columns the caller needs (e.g. ``emotion``, kept as text);
        no kept row may lack a value.
    kinds : tuple of str
        The kinds kept; rows of the others are checked, then left out.

    Raises
    ------
    ValueError
        Naming the table, row (its position in ``records``), dataset and
        video: a missing column or value, an unknown kind, a frame that is
        not an integer, or offset < onset.
    """
    if isinstance(records, pd.DataFrame):
        frame = records.reset_index(drop=True)
    else:
        rows = [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r) for r in records]
        frame = pd.DataFrame.from_records(rows)
    extra = tuple(c for c in required if c not in COLUMNS)
    if frame.empty and not len(frame.columns):
        frame = pd.DataFrame(columns=list(COLUMNS + extra))
    missing = [c for c in COLUMNS + extra if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: no column {', '.join(map(repr, missing))}; an interval table has the columns "
                         f"{', '.join(COLUMNS + extra)}")
    frame = frame.copy()
    _refuse_blanks(frame, COLUMNS, what)
    for column in ("dataset", "video", "kind"):
        frame[column] = frame[column].astype(str)
    unknown = ~frame["kind"].isin(KINDS)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"{what} {_where(frame, row)}: kind {_shown(frame['kind'][row])} is neither "
                         f"{' nor '.join(KINDS)}")
    for column in ("onset", "offset"):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what} {_where(frame, row)}: {column} {_shown(frame[column][row])} is not "
                             f"a frame number")
        frame[column] = values.astype(np.int64)
    reversed_ = frame["offset"] < frame["onset"]
    if reversed_.any():
        row = int(np.flatnonzero(reversed_)[0])
        raise ValueError(f"{what} {_where(frame, row)}: offset {frame['offset'][row]} is before onset "
                         f"{frame['onset'][row]}")
    frame = frame[frame["kind"].isin(kinds)].copy()
    _refuse_blanks(frame, extra, what)
    for column in extra:
        frame[column] = frame[column].astype(str)
    return frame.reset_index(drop=True)


def _refuse_blanks(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    for column in columns:
        blank = frame[column].isna().to_numpy()
        if blank.any():
            row = int(frame.index[np.flatnonzero(blank)[0]])
            raise ValueError(f"{what} {_where(frame, row)}: no {column}; every interval needs a {column}")


def _shown(value) -> str:
    """A value read from a table, as repr and escaped (numpy scalars as the Python number)."""
    return printable(repr(value.item() if isinstance(value, np.generic) else value))


def _where(frame: pd.DataFrame, row: int) -> str:
    """``row N (dataset D, video V)`` for the row labelled N."""
    return f"row {row} (dataset {printable(frame['dataset'][row])}, video {printable(frame['video'][row])})"


def _intervals(frame: pd.DataFrame) -> np.ndarray:
    return frame[["onset", "offset"]].to_numpy(dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class SpottingRow:
    """One row of the MEGC spotting table: a dataset (or :data:`ALL`), a kind (or :data:`OVERALL`), its counts."""

    dataset: str
    kind: str
    counts: SpottingCounts

    def as_record(self) -> dict[str, str | int | float]:
        return {"dataset": self.dataset, "kind": self.kind, **self.counts.as_record()}


def spotting_table(predictions: pd.DataFrame | Iterable, truth: pd.DataFrame | Iterable, *, iou: float = IOU,
                   videos: Iterable[tuple[str, str]] | None = None) -> list[SpottingRow]:
    """The MEGC spotting table of predicted intervals against the true ones.

    Parameters
    ----------
    predictions, truth : interval tables
        See :func:`interval_table`.
    iou : float
        IoU a prediction needs to find a truth (MEGC: 0.5).
    videos : iterable of (dataset, video), optional
        Every video of the evaluation. Given, a prediction or truth of
        another video is refused (a misspelt video name would otherwise count
        as a video without truth), and a listed video without either still
        counts (it adds nothing). By default the videos of both tables.

    Returns
    -------
    list of SpottingRow
        Per dataset (sorted): micro, macro, overall; then :data:`ALL`: micro,
        macro, overall pooled over the datasets.
    """
    if not 0 < iou <= 1:
        raise ValueError(f"iou must be in (0, 1], got {iou!r}")
    pred = interval_table(predictions, "predictions")
    real = interval_table(truth, "truth")
    keys = {(d, v) for d, v in zip(pred["dataset"], pred["video"])} | {(d, v) for d, v in zip(real["dataset"],
                                                                                                  real["video"])}
    if videos is not None:
        listed = {(str(d), str(v)) for d, v in videos}
        strays = sorted(keys - listed)
        if strays:
            names = ", ".join(f"{printable(d)}/{printable(v)}" for d, v in strays[:5])
            raise ValueError(f"{len(strays)} video(s) with intervals are not among the evaluated videos: {names}"
                             f"{' ...' if len(strays) > 5 else ''}; check the predictions' dataset and video names")
        keys |= listed
    pred_groups = dict(tuple(pred.groupby(["dataset", "video", "kind"], sort=False)))
    real_groups = dict(tuple(real.groupby(["dataset", "video", "kind"], sort=False)))
    empty = np.zeros((0, 2), dtype=np.int64)
    per: dict[tuple[str, str], SpottingCounts] = {}
    for dataset, video in keys:
        for kind in KINDS:
            p = pred_groups.get((dataset, video, kind))
            t = real_groups.get((dataset, video, kind))
            p = empty if p is None else _intervals(p)
            t = empty if t is None else _intervals(t)
            counts = SpottingCounts.found(len(t), len(p), int(found_truths(p, t, iou).sum()))
            per[(dataset, kind)] = per.get((dataset, kind), SpottingCounts()) + counts
    datasets = sorted({d for d, _ in keys})
    rows = []
    for dataset in datasets + [ALL]:
        members = datasets if dataset == ALL else [dataset]
        by_kind = {kind: sum((per.get((d, kind), SpottingCounts()) for d in members), SpottingCounts())
                   for kind in KINDS}
        rows += [SpottingRow(dataset, kind, by_kind[kind]) for kind in KINDS]
        rows.append(SpottingRow(dataset, OVERALL, sum(by_kind.values(), SpottingCounts())))
    return rows


# --- published figures ------------------------------------------------------------------------

MEGC2020_SOURCE = ("He, Wang, Li, Yap, FG 2020 (MEGC 2020 spotting baseline, MDMD), "
                   "doi:10.1109/FG47880.2020.00036; counts from eval_res_txt/MEGC2020_results.txt of "
                   "HeyingGithub/Baseline-project-for-MEGC2020_spotting")
"""Where :data:`MEGC2020_BASELINE` comes from."""


@dataclass(frozen=True)
class PublishedSpotting:
    """A published spotting figure: F1 of one corpus and kind, with the counts behind it.

    Attributes
    ----------
    corpus : str
        A :data:`mepipe.train.published.CORPORA` key (``casme-sq``: CAS(ME)², ``samm-lv``: SAMM Long Videos).
    kind : str
        ``micro``, ``macro`` or ``overall``.
    f1 : float
        As published (four decimals).
    truths, predictions, found : int
        ``M``, ``N`` and ``A`` of the official evaluation's output.
    source : str
    """

    corpus: str
    kind: str
    f1: float
    truths: int
    predictions: int
    found: int
    source: str = MEGC2020_SOURCE

    @property
    def counts(self) -> SpottingCounts:
        return SpottingCounts.found(self.truths, self.predictions, self.found)


MEGC2020_BASELINE = (
    PublishedSpotting("casme-sq", "micro", 0.0082, truths=57, predictions=5035, found=21),
    PublishedSpotting("casme-sq", "macro", 0.1196, truths=300, predictions=1523, found=109),
    PublishedSpotting("casme-sq", "overall", 0.0376, truths=357, predictions=6558, found=130),
    PublishedSpotting("samm-lv", "micro", 0.0364, truths=159, predictions=1436, found=29),
    PublishedSpotting("samm-lv", "macro", 0.0629, truths=343, predictions=356, found=22),
    PublishedSpotting("samm-lv", "overall", 0.0445, truths=502, predictions=1792, found=51),
)
"""The MEGC 2020 baseline's spotting F1 on CAS(ME)² (98 videos) and SAMM Long Videos (147 videos), leave-one-
subject-out; all intervals scored at IoU >= 0.5 (:data:`MEGC2020_SOURCE`)."""


def _published_entry(dataset: str, kind: str, published: Sequence[PublishedSpotting]) -> PublishedSpotting | None:
    corpus = corpus_of(dataset)
    return next((p for p in published if p.corpus == corpus and p.kind == kind), None)


def format_spotting_table(rows: Sequence[SpottingRow], *, published: Sequence[PublishedSpotting] = MEGC2020_BASELINE,
                          markdown: bool = False) -> str:
    """The spotting table for the terminal (aligned columns) or as Markdown, published F1 beside ours.

    A dataset that stands for a published corpus (:func:`~mepipe.train.published.corpus_of`,
    e.g. ``demo-lv`` for SAMM Long Videos) gets the published F1 of its kind
    in the last column, and the table ends with the figures' corpora and source.
    """
    header = ("dataset", "kind", "truths", "predictions", "TP", "FP", "FN", "precision", "recall", "F1",
              "published F1")
    body, cited = [], {}
    for row in rows:
        c = row.counts
        theirs = None if row.dataset == ALL else _published_entry(row.dataset, row.kind, published)
        if theirs is not None:
            cited.setdefault(theirs.source, set()).add(CORPORA.get(theirs.corpus, theirs.corpus))
        body.append((printable(row.dataset), row.kind, str(c.truths), str(c.predictions), str(c.tp), str(c.fp),
                     str(c.fn), f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}",
                     "—" if theirs is None else f"{theirs.f1:.4f}"))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in body]
    else:
        widths = [max(len(h), *(len(cells[i]) for cells in body)) for i, h in enumerate(header)]
        lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
                 for cells in (header, *body)]
    if cited:
        lines.append("")
    for source, corpora in cited.items():
        lines.append(f"published F1 ({', '.join(sorted(corpora))}): {source}")
    return "\n".join(lines)
