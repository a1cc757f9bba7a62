"""``mepipe reproduce``: each paper's protocol over the given stores, beside the figure the paper publishes.

For every network asked for, :func:`reproduce` runs each of its published
experiments (its recipe's :attr:`~mepipe.train.recipe.Recipe.published`:
label scheme, protocol, corpus) on the stores that hold that corpus, with the
recipe's defaults (the paper's settings, SPEC §3) through
:func:`mepipe.train.run.run_training`, once per seed, and writes
``reproduce.json`` and ``reproduce.md`` to its folder: one row per
network and corpus with our accuracy, UF1 and UAR (mean ± std over seeds)
beside the published figure (and, for each long-video store, one row per
spotter with its MEGC spotting F1 beside the MEGC 2020 baseline's:
:mod:`mepipe.train.spotters.reproduce`), the stores and their ids, the seeds, the wall
time, and what differs from the paper (the recipe's
:attr:`~mepipe.train.recipe.Recipe.deviations`, the entry's note, and the
short schedules of ``quick``). An experiment that cannot run (no store
holds its corpus, a store lacks a feature the network reads) keeps its row,
which says why.

A store's dataset stands for a corpus by :func:`mepipe.train.published.corpus_of`:
``demo``, ``demo-casme2`` and ``demo-smic`` stand for SAMM, CASME II and
SMIC-HS, so the whole table runs on the demo corpora.

Each run is written to ``OUT/runs/<experiment>/seed-<k>``; a reproduce
started again with the same settings keeps the runs it finished.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import platform
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mepipe.featurestore.errors import MepipeError, UsageError
from mepipe.featurestore.location import public_address

from .clips import ClipTable
from .models import get_recipe, list_models
from .params import EXECUTION_FIELDS, RunParams
from .published import CORPORA, Published, corpus_of
from .report import REPORT_FILE, read_report
from .run import mepipe_version, run_training
from .spotters.reproduce import spotting_markdown, spotting_rows

__all__ = ["REPRODUCE_JSON", "REPRODUCE_MD", "ReproduceParams", "format_markdown", "published_of", "quick_of",
           "reproduce"]

log = logging.getLogger(__name__)

REPRODUCE_JSON = "reproduce.json"
REPRODUCE_MD = "reproduce.md"
QUICK_FOLDS = 3
"""``--quick`` runs at most this many folds of a protocol (:attr:`RunParams.folds`: the first ones, in turn from
each dataset, so a composite tests one person of each corpus), unless the recipe's ``quick`` says otherwise.
Measured on the three demo corpora (one fold of each experiment, torch on one thread): the whole quick table
cost about 630 CPU seconds with every fold and about 380 with three (SHCNN's six SAMM folds alone 124)."""

QUICK_THREADS = 1
"""``--quick`` trains with torch on this many threads (restored afterwards). Its networks are so small that a
second thread mostly spins: SHCNN's quick CASME II LOSO on the demo took 26 CPU s on one thread and 46 on two,
and longer in wall time too (48-85 s against 89-123 s, on the shared 2-core machine at load 5-7)."""

ID_SHOWN = 12
"""Characters of a store id shown in a table row (the stores table and the JSON have them in full)."""



def published_of(model: str) -> tuple[Published, ...]:
    """The figures the network's paper publishes (its recipe's :attr:`~mepipe.train.recipe.Recipe.published`)."""
    return get_recipe(model).published


def quick_of(model: str) -> dict[str, Any]:
    """The run settings ``quick`` uses for the network: its recipe's :attr:`~mepipe.train.recipe.Recipe.quick`,
    with at most :data:`QUICK_FOLDS` folds."""
    return {"folds": QUICK_FOLDS, **dict(get_recipe(model).quick)}


@dataclass(frozen=True)
class ReproduceParams:
    """What ``mepipe reproduce`` runs.

    Attributes
    ----------
    stores : tuple of str
        Feature stores (folders, zips or URLs); each one's dataset decides which corpus it is.
    out : str
        Folder for ``reproduce.json``, ``reproduce.md`` and the runs.
    models : tuple of str, optional
        Networks to reproduce; default every network with a published figure.
    seeds : int
        Runs per experiment, seeds 0..seeds-1; the table gives mean ± std.
    quick : bool
        Short schedules, narrow networks (each recipe's ``quick``) and at most :data:`QUICK_FOLDS` folds;
        each row says what it ran.
    store_ids : tuple of str or None
        One per store: the store id its manifest must have.
    composite_list : str, optional
        The MEGC 2019 composite list (default the official one shipped with mepipe).
    device : {"auto", "cpu", "cuda"}
    overwrite : bool
        Run every experiment again, replacing earlier runs in ``out``.
    progress : bool
        A progress bar per fold.
    """

    stores: tuple[str, ...]
    out: str = "runs/reproduce"
    models: tuple[str, ...] | None = None
    seeds: int = 1
    quick: bool = False
    store_ids: tuple[str | None, ...] = ()
    composite_list: str | None = None
    device: str = "auto"
    overwrite: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stores", tuple(map(public_address, self.stores)))
        object.__setattr__(self, "store_ids", tuple(self.store_ids))
        if not self.stores:
            raise UsageError("reproduce needs at least one store (--store)")
        if self.seeds < 1:
            raise UsageError(f"seeds must be >= 1, got {self.seeds}")
        if self.store_ids and len(self.store_ids) != len(self.stores):
            raise UsageError(f"{len(self.store_ids)} store ids for {len(self.stores)} stores; give one per store")
        published = [m for m in list_models() if published_of(m)]
        models = tuple(self.models) if self.models is not None else tuple(published)
        unknown = [m for m in models if m not in list_models()]
        if unknown:
            raise UsageError(f"unknown model {unknown[0]!r}; known: {', '.join(list_models())}")
        without = [m for m in models if m not in published]
        if without:
            raise UsageError(f"no published figure of {without[0]!r} to reproduce; those with one: "
                             f"{', '.join(published)}")
        object.__setattr__(self, "models", models)


@dataclass(frozen=True)
class Experiment:
    """One set of runs: a network, labels, protocol and the stores it reads, and the published rows it answers."""

    model: str
    labels: str
    protocol: str
    stores: tuple[str, ...]
    entries: tuple[Published, ...]
    datasets: tuple[str, ...] = ()
    test_dataset: str | None = None

    @property
    def name(self) -> str:
        """Folder name of its runs."""
        parts = (self.model, self.protocol, self.labels, "+".join(self.datasets))
        if self.test_dataset:
            parts += ("to", self.test_dataset)
        return "-".join(x for x in parts if x).replace("/", "_")


def reproduce(params: ReproduceParams, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every published experiment of ``params.models`` that the stores allow; write and return the table.

    Parameters
    ----------
    params : ReproduceParams
    on_row : callable, optional
        Called with each row as it is finished (the CLI prints them).

    Returns
    -------
    dict
        The content of ``reproduce.json``: ``rows`` (one per network and
        corpus, each with ``status`` ``ran``, ``not run`` or ``failed``
        (an unexpected error, whose traceback is logged) and its
        ``reason``; ``seconds`` and ``cpu_seconds`` of its runs; with
        ``quick``, ``quick_changes`` in words), ``stores`` (location,
        dataset, clips, store id), ``mepipe``, ``torch``, ``quick``,
        ``seeds``, ``seconds``, ``cpu_seconds`` (user and system, this
        process and its children), ``threads`` (torch's), ``machine`` and
        ``deviations`` (per network, the recipe's).

    Raises
    ------
    UsageError, DataError
        A store cannot be opened (the whole table would be about other stores).
    """
    import torch

    started, cpu = time.time(), cpu_seconds()
    out = Path(params.out)
    out.mkdir(parents=True, exist_ok=True)
    stores = ClipTable.open(params.stores, params.store_ids).describe()
    rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    if params.quick:
        torch.set_num_threads(QUICK_THREADS)
    try:
        for experiment, missing in plan_experiments(params.models, stores):
            if missing:
                new = [_row(experiment.model, entry, params, stores_used=[], reason=missing)
                       for entry in experiment.entries]
            else:
                new = _run_experiment(experiment, params, stores, out)
            for row in new:
                rows.append(row)
                if on_row is not None:
                    on_row(row)
        spotting = spotting_rows(params, stores, out, QUICK_FOLDS)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    table = {
        "mepipe": mepipe_version(), "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "device": params.device, "quick": params.quick,
        "quick_settings": {m: _jsonable(quick_of(m)) for m in params.models} if params.quick else {},
        "seeds": list(range(params.seeds)), "models": list(params.models), "stores": stores,
        "composite_list": params.composite_list,
        "deviations": {m: [dataclasses.asdict(d) for d in get_recipe(m).deviations] for m in params.models},
        "rows": rows, "spotting": spotting, "seconds": round(time.time() - started, 1),
        "cpu_seconds": round(cpu_seconds() - cpu, 1),
        "threads": used,
    }
    (out / REPRODUCE_JSON).write_text(json.dumps(table, indent=2, default=str))
    (out / REPRODUCE_MD).write_text(format_markdown(table) + spotting_markdown(spotting))
    return table


def plan_experiments(models: Sequence[str], stores: Sequence[dict[str, Any]]) -> list[tuple[Experiment, str]]:
    """The experiments of ``models`` over the stores, in their recipes' order, each with why it cannot run
    ("" if it can).

    A per-corpus experiment (LOSO) runs once on each store that holds its
    corpus; a composite experiment (``megc2019``) runs once over every store
    and answers the whole composite and each part; a cross-dataset one
    trains on the stores of one corpus and tests on those of the other.
    """
    by_corpus: dict[str, list[dict[str, Any]]] = {}
    for store in stores:
        corpus = corpus_of(store["dataset"])
        if corpus is not None:
            by_corpus.setdefault(corpus, []).append(store)
    out: list[tuple[Experiment, str]] = []
    seen: set[tuple] = set()
    for model in models:
        entries = list(published_of(model))
        for entry in entries:
            if entry.protocol == "megc2019":
                key = (model, "megc2019")
                if key in seen:
                    continue
                seen.add(key)
                parts = tuple(p for p in entries if p.protocol == "megc2019")
                held = [s for c in ("smic", "casme2", "samm") for s in by_corpus.get(c, [])]
                missing = "" if held else "no store holds SMIC-HS, CASME II or SAMM"
                out.append((Experiment(model, entry.labels, "megc2019", _locations(held), parts, _datasets(held)),
                            missing))
            elif entry.protocol == "cross":
                trained, tested = by_corpus.get(entry.train_corpus, []), by_corpus.get(entry.corpus, [])
                absent = [CORPORA[c] for c, held in ((entry.train_corpus, trained), (entry.corpus, tested)) if not held]
                missing = f"no store holds {' or '.join(absent)}" if absent else ""
                test = tested[0]["dataset"] if tested else None
                used = trained + tested[:1]
                out.append((Experiment(model, entry.labels, "cross", _locations(used), (entry,),
                                       _datasets(trained), test_dataset=test), missing))
            else:
                held = by_corpus.get(entry.corpus, [])
                if not held:
                    out.append((Experiment(model, entry.labels, entry.protocol, (), (entry,)),
                                f"no store holds {CORPORA[entry.corpus]}"))
                for store in held:
                    out.append((Experiment(model, entry.labels, entry.protocol, _locations([store]), (entry,),
                                           _datasets([store])), ""))
    return out


def _locations(stores: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(s["location"] for s in stores)


def _datasets(stores: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(str(s["dataset"]) for s in stores)


def run_params(experiment: Experiment, params: ReproduceParams, seed: int, out: Path,
               stores: Sequence[dict[str, Any]]) -> RunParams:
    """The :class:`RunParams` of one seed of an experiment: the recipe's defaults, its ``quick`` ones with ``quick``."""
    ids = {s["location"]: s["store_id"] for s in stores}
    pinned = tuple(ids.get(loc) for loc in experiment.stores) if params.store_ids else ()
    changes = quick_of(experiment.model) if params.quick else {}
    return RunParams(model=experiment.model, store=experiment.stores, store_ids=pinned, labels=experiment.labels,
                     protocol=experiment.protocol, test_dataset=experiment.test_dataset,
                     composite_list=params.composite_list if experiment.protocol == "megc2019" else None,
                     out=str(out / "runs" / experiment.name / f"seed-{seed}"), device=params.device, seed=seed,
                     in_memory=True, progress=params.progress, overwrite=params.overwrite, **changes)


def cpu_seconds() -> float:
    """CPU seconds (user and system, every thread) this process and its finished children have used so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_experiment(experiment: Experiment, params: ReproduceParams, stores: Sequence[dict[str, Any]],
                    out: Path) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    wall = 0.0
    cpu = cpu_seconds()
    for seed in range(params.seeds):
        started = time.time()
        try:
            reports.append(finished_or_run(run_params(experiment, params, seed, out, stores)))
        except MepipeError as err:
            return _not_run(experiment, params, stores, "not run", f"cannot run: {err}")
        except Exception as err:  # a bug in one network must not lose the other rows; its traceback is logged
            log.exception("%s failed", experiment.name)
            return _not_run(experiment, params, stores, "failed", f"{type(err).__name__}: {err} (traceback in the log)")
        wall += time.time() - started
    return [_row(experiment.model, e, params, stores_used=_used(experiment, stores), reports=reports, seconds=wall,
                 cpu=cpu_seconds() - cpu, experiment=experiment) for e in experiment.entries]


def _not_run(experiment: Experiment, params: ReproduceParams, stores: Sequence[dict[str, Any]], status: str,
             reason: str) -> list[dict[str, Any]]:
    log.warning("%s: %s", experiment.name, reason)
    rows = [_row(experiment.model, e, params, stores_used=_used(experiment, stores), reason=reason)
            for e in experiment.entries]
    return [{**row, "status": status} for row in rows]


def finished_or_run(run: Any, read: Callable[[Path], dict[str, Any]] = read_report,
                    start: Callable[[Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run's report: kept from an earlier reproduce when it ran the same parameters (``read`` reads it), else
    run now (``start``, default :func:`~.run.run_training`; a spotting run's are
    :func:`~.spotters.report.read_spot_report` and :func:`~.spotters.run.run_spot`)."""
    folder = Path(run.out)
    if (folder / REPORT_FILE).exists() and not run.overwrite:
        report = read(folder)
        earlier = {k: v for k, v in report["parameters"]["run"].items() if k not in EXECUTION_FIELDS}
        if earlier == json.loads(json.dumps(run.defining())):
            log.info("%s: kept the finished run", folder)
            return report
        run = dataclasses.replace(run, overwrite=True)
    return (start or run_training)(run)


def _used(experiment: Experiment, stores: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in stores if s["location"] in experiment.stores]


def _row(model: str, entry: Published, params: ReproduceParams, *, stores_used: list[dict[str, Any]], reason: str = "",
         reports: Sequence[dict[str, Any]] = (), seconds: float = 0.0, cpu: float = 0.0,
         experiment: Experiment | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": model, "corpus": entry.corpus, "part": entry.part, "train_corpus": entry.train_corpus,
        "experiment": entry.describe(), "labels": entry.labels, "protocol": entry.protocol,
        "published": dict(entry.figures), "source": entry.source, "note": entry.note,
        "deviations": [d.topic for d in get_recipe(model).deviations],
        "quick": params.quick, "seeds": list(range(params.seeds)) if reports else [],
        "stores": [{k: s[k] for k in ("location", "dataset", "store_id")} for s in stores_used],
        "status": "ran" if reports else "not run", "reason": reason, "ours": {}, "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1), "quick_changes": "",
    }
    if not reports:
        return row
    dataset = _tested_dataset(entry, reports[0])
    if entry.part is not None and dataset is None:
        row.update(status="not run", reason=f"no store holds {CORPORA[entry.part]}, the composite's part")
        return row
    figures = [r["per_dataset"][dataset] if entry.part is not None else r for r in reports]
    row["dataset"] = dataset or "+".join(sorted(r for r in reports[0]["per_dataset"]))
    row["n_test_clips"] = int(figures[0]["n_test_clips"])
    row["classes"] = list(reports[0]["classes"])
    for metric in ("accuracy", "uf1", "uar"):
        row["ours"][metric] = _spread([float(f[metric]) for f in figures])
    aucs = [r.get("spotting_auc") for r in reports]
    if entry.part is None and any(a is not None for a in aucs):
        row["ours"]["spotting_auc"] = _spread([float(a) for a in aucs if a is not None])
    row["runs"] = [r["parameters"]["run"]["out"] for r in reports]
    if params.quick:
        row["quick_changes"] = quick_changes(model, reports[0])
    row["epoch_selection"] = reports[0].get("epoch_selection")
    row["mepipe"] = reports[0].get("mepipe")
    if experiment is not None and entry.protocol == "megc2019" and entry.part is None:
        held = {corpus_of(s["dataset"]) for s in stores_used}
        absent = [CORPORA[c] for c in ("smic", "casme2", "samm") if c not in held]
        if absent:
            row["note"] = "; ".join(x for x in (row["note"], f"composite of the given corpora only (no "
                                                               f"{', '.join(absent)})") if x)
    return row


def quick_changes(model: str, report: dict[str, Any]) -> str:
    """What a run changed from the recipe, in words, from its report: the folds run of the protocol's, each
    stage's epochs, recipe options and network sizes (e.g. "3 of 6 folds; 5 epochs (recipe 100); network widths
    [8, 16, 32]")."""
    recipe = get_recipe(model)
    plan, run = report["plan"], report["parameters"]["run"]
    ran, total = int(plan["n_folds"]), int(plan.get("n_protocol_folds") or plan["n_folds"])
    words = [f"{ran} of {total} folds" if ran < total else f"all {total} folds" if total > 1 else "its 1 fold"]
    stages = report["parameters"]["stages"]
    for stage, used in zip(recipe.stages, stages):
        epochs = int(used["train"]["epochs"])
        named = f"{stage.name} " if len(stages) > 1 else ""
        words.append(f"{named}{epochs} epoch{'s' if epochs != 1 else ''}"
                     + (f" (recipe {stage.epochs})" if epochs != stage.epochs else ""))
    defaults = {c.name: c.default for c in recipe.choices}
    words += [f"{name} {value} (recipe {defaults.get(name)})" for name, value in run.get("recipe_options") or ()
              if value != defaults.get(name)]
    if run.get("lr") is not None:
        words.append(f"lr {run['lr']} (recipe " + ", ".join(str(s.optimiser.lr) for s in recipe.stages) + ")")
    sizes = ", ".join(f"{name} {value}" for name, value in run.get("model_args") or ())
    if sizes:
        words.append(f"network {sizes}")
    return "; ".join(words)


def _tested_dataset(entry: Published, report: dict[str, Any]) -> str | None:
    """The dataset of the report whose figures answer the entry (the composite part's; the only one otherwise)."""
    datasets = list(report["per_dataset"])
    if entry.part is None:
        return datasets[0] if len(datasets) == 1 else None
    return next((d for d in datasets if corpus_of(d) == entry.part), None)


def _spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof 1; 0 for one value) and the values."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": values}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def machine() -> str:
    """The machine in a few words: CPU, cores, OS (and the GPU when torch sees one)."""
    import torch

    cpu = platform.processor() or platform.machine()
    words = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    if torch.cuda.is_available():
        words += f", {torch.cuda.get_device_name(0)}"
    return words


_METRICS = (("accuracy", "acc"), ("f1", "F1"), ("uf1", "UF1"), ("uar", "UAR"), ("spotting_auc", "spotting AUC"))


def _ours(row: dict[str, Any], metric: str) -> str:
    value = row["ours"].get(metric)
    if value is None:
        return "—"
    return f"{value['mean']:.3f} ± {value['std']:.3f}" if len(value["values"]) > 1 else f"{value['mean']:.3f}"


def _published(row: dict[str, Any]) -> str:
    return ", ".join(f"{name} {row['published'][key]:.3f}" for key, name in _METRICS if key in row["published"])


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_markdown(table: dict[str, Any]) -> str:
    """``reproduce.md``: the header (version, machine, seeds, schedules), the stores, one row per network and
    corpus, and every network's deviations from its paper."""
    quick = table["quick"]
    seeds = table["seeds"]
    lines = [
        "# mepipe reproduce",
        "",
        f"mepipe {table['mepipe']}, torch {table['torch']}, {table['date']}, {table['machine']}, "
        f"device {table['device']}; seeds {', '.join(map(str, seeds))}"
        f"{' (mean ± sample std)' if len(seeds) > 1 else ''}; wall time {table['seconds']:.0f} s, CPU time "
        f"{table.get('cpu_seconds', 0):.0f} s (torch on {table.get('threads', '?')} thread"
        f"{'' if table.get('threads') == 1 else 's'}).",
        "",
    ]
    if quick:
        lines += ["**Quick schedules** (`--quick`): short schedules and narrow networks, not the papers' (settings "
                  "below); these figures check that each protocol runs end to end and are not comparable with the "
                  "published ones.", ""]
    lines += ["Stores:", "", "| store | dataset | stands for | clips | store id |", "| --- | --- | --- | --- | --- |"]
    for s in table["stores"]:
        corpus = corpus_of(s["dataset"])
        lines.append(f"| `{s['location']}` | {s['dataset']} | {CORPORA.get(corpus, '—') if corpus else '—'} | "
                     f"{s['n_clips']} | `{s['store_id'] or 'none'}` |")
    lines += ["", "| network | corpus | dataset | labels | protocol | accuracy | UF1 | UAR | published | source | "
              "store ids | seeds | wall s | CPU s | deviations and notes |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in table["rows"]:
        notes = []
        if row["status"] != "ran":
            notes.append(f"**{row['status']}**: {row['reason']}")
        if "spotting_auc" in row["ours"]:
            notes.append(f"spotting AUC {_ours(row, 'spotting_auc')}")
        if row["deviations"]:
            notes.append("recipe deviations: " + "; ".join(row["deviations"]))
        if row["note"]:
            notes.append(row["note"])
        if quick and row["status"] == "ran":
            notes.append(f"quick schedule: {row.get('quick_changes') or 'see below'}")
        lines.append("| " + " | ".join(_cell(c) for c in (
            row["model"], row["experiment"], row.get("dataset") or "—", row["labels"], row["protocol"],
            _ours(row, "accuracy"), _ours(row, "uf1"), _ours(row, "uar"), _published(row), row["source"],
            " ".join(f"{s['dataset']}:{(s['store_id'] or 'none')[:ID_SHOWN]}" for s in row["stores"]) or "—",
            len(row["seeds"]) or "—", f"{row['seconds']:.0f}" if row["status"] == "ran" else "—",
            f"{row.get('cpu_seconds', 0):.0f}" if row["status"] == "ran" else "—",
            "; ".join(notes) or "—")) + " |")
    lines += ["", f"Store ids are shown by their first {ID_SHOWN} characters (in full above and in `reproduce.json`); "
              "the runs are under `runs/`."]
    if quick and table.get("quick_settings"):
        lines += ["", "Quick settings (folds run, and what replaces the recipe's epochs and network widths):", ""]
        for model, changes in table["quick_settings"].items():
            lines.append(f"- {model}: " + ", ".join(f"{k} = {v}" for k, v in changes.items()))
    deviations = {m: d for m, d in table["deviations"].items() if d}
    if deviations:
        lines += ["", "## Deviations from the papers (each recipe's own declaration)", ""]
        for model, entries in deviations.items():
            for d in entries:
                lines.append(f"- **{model} — {d['topic']}**: paper: {d['paper']}; here: {d['here']}; "
                             f"why: {d['reason']}")
    return "\n".join(lines) + "\n"
