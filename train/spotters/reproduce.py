"""The spotting rows of ``mepipe reproduce``: every spotter over every long-video store, the MEGC 2020 baseline's
published F1 beside ours.

For each long-video store among the stores given (its dataset standing for
SAMM Long Videos or CAS(ME)², :func:`~mepipe.train.published.corpus_of`)
and each registered spotter, one LOSO run per seed
(:func:`~.run.run_spot`, in ``OUT/runs/spot-<spotter>-<dataset>/seed-<k>``;
kept when an earlier reproduce ran the same parameters). ``--quick`` takes
each spotter's :attr:`~.base.Spotter.quick` parameters and at most
:data:`~mepipe.train.reproduce.QUICK_FOLDS` folds.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mepipe.featurestore import open_store
from mepipe.featurestore.errors import MepipeError

from ..published import CORPORA, corpus_of
from ..spotting_eval import ALL, KINDS, MEGC2020_BASELINE, OVERALL
from .base import get_spotter, list_spotters
from .report import read_spot_report
from .run import SpotParams, run_spot

if TYPE_CHECKING:
    from ..reproduce import ReproduceParams

__all__ = ["spotting_markdown", "spotting_rows"]

log = logging.getLogger(__name__)


def spotting_rows(params: ReproduceParams, stores: list[dict[str, Any]], out: Path, quick_folds: int) -> list[dict]:
    """One row per long-video store and spotter: our micro, macro and overall counts and F1 (mean over seeds),
    chance, the published baseline's F1, wall and CPU seconds; a run that cannot go says why."""
    from ..reproduce import cpu_seconds, finished_or_run

    rows = []
    for store in stores:
        if open_store(store["location"]).unit != "video":
            continue
        for name in list_spotters():
            spotter = get_spotter(name)
            changes = tuple(spotter.quick) if params.quick else ()
            row: dict[str, Any] = {"spotter": name, "title": spotter.title, "dataset": store["dataset"],
                                   "corpus": corpus_of(store["dataset"]), "store_id": store["store_id"],
                                   "quick": params.quick, "params": [list(c) for c in changes], "status": "ran",
                                   "reason": "", "runs": [], "reports": []}
            started, cpu = time.time(), cpu_seconds()
            try:
                for seed in range(params.seeds):
                    run = SpotParams(name, (store["location"],), store_ids=(store["store_id"],) if params.store_ids
                                     else (), params=changes, folds=quick_folds if params.quick else None,
                                     seed=seed, device=params.device, in_memory=True, progress=params.progress,
                                     overwrite=params.overwrite,
                                     out=str(out / "runs" / f"spot-{name}-{store['dataset']}" / f"seed-{seed}"))
                    row["reports"].append(finished_or_run(run, read_spot_report, run_spot))
                    row["runs"].append(run.out)
            except MepipeError as err:
                row.update(status="not run", reason=f"cannot run: {err}")
            except Exception as err:  # one spotter's bug must not lose the other rows; its traceback is logged
                log.exception("spotter %s on %s failed", name, store["location"])
                row.update(status="failed", reason=f"{type(err).__name__}: {err} (traceback in the log)")
            row.update(seconds=round(time.time() - started, 1), cpu_seconds=round(cpu_seconds() - cpu, 1))
            rows.append(_summarise(row))
    return rows


def _summarise(row: dict[str, Any]) -> dict[str, Any]:
    """The row's figures from its runs' reports (dropped from the row after)."""
    reports = row.pop("reports")
    published = {p.kind: p.f1 for p in MEGC2020_BASELINE if p.corpus == row["corpus"]}
    row["published_f1"] = published
    if not reports:
        return row
    ours = {}
    for kind in (*KINDS, OVERALL):
        records = [next(r for r in report["table"] if r["dataset"] == ALL and r["kind"] == kind) for report in reports]
        chance = [next(c for c in report["chance"] if c["dataset"] == ALL and c["kind"] == kind) for report in reports]
        ours[kind] = {"f1": sum(r["f1"] for r in records) / len(records),
                      "tp": records[0]["tp"], "fp": records[0]["fp"], "fn": records[0]["fn"],
                      "chance_f1": sum(c["f1"] for c in chance) / len(chance)}
    row["ours"] = ours
    row["folds"] = f"{reports[0]['plan']['n_folds']} of {reports[0]['plan']['n_protocol_folds']}"
    return row


def spotting_markdown(rows: list[dict[str, Any]]) -> str:
    """The spotting section of ``reproduce.md`` ("" without long-video stores)."""
    if not rows:
        return ""
    lines = ["", "## Spotting (MEGC 2020 scoring: IoU >= 0.5, micro and macro apart, LOSO)", "",
             "| spotter | dataset | stands for | folds | micro F1 (TP/FP/FN) | macro F1 (TP/FP/FN) | overall F1 | "
             "chance F1 micro / macro / overall | published F1 micro / macro / overall | wall s | CPU s | notes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        ours = row.get("ours", {})

        def cell(kind: str) -> str:
            f = ours.get(kind)
            return "—" if f is None else f"{f['f1']:.3f} ({f['tp']}/{f['fp']}/{f['fn']})"

        chance = " / ".join(f"{ours[k]['chance_f1']:.3f}" for k in (*KINDS, OVERALL)) if ours else "—"
        published = " / ".join(f"{row['published_f1'][k]:.4f}" for k in (*KINDS, OVERALL)
                               if k in row["published_f1"]) or "—"
        notes = [f"**{row['status']}**: {row['reason']}"] if row["status"] != "ran" else []
        if row["params"]:
            notes.append("quick: " + ", ".join(f"{k}={v}" for k, v in row["params"]))
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in (
            row["spotter"], row["dataset"], CORPORA.get(row["corpus"], "—") if row["corpus"] else "—",
            row.get("folds", "—"), cell("micro"), cell("macro"), cell(OVERALL).split(" ")[0] if ours else "—",
            chance, published, f"{row['seconds']:.0f}", f"{row['cpu_seconds']:.0f}", "; ".join(notes) or "—")) + " |")
    lines += ["", "Published: the MEGC 2020 baseline (He, Wang, Li, Yap, FG 2020, doi:10.1109/FG47880.2020.00036), "
              "on the corpus each dataset stands for. Chance: the same intervals at random places in their videos."]
    return "\n".join(lines) + "\n"
