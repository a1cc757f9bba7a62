"""A run's plan: which clips, with which labels, in which folds, and what was left out and why.

:func:`plan_run` does everything a run does before it trains: it opens the
stores, checks that they hold and agree on what the model reads, labels the
clips (by the label scheme, by their AU codes under ``--labels au:SET``, or
by the composite list under ``megc2019``), drops what cannot be used, naming
every clip it drops, and cuts the folds (under ``meb``, naming MEB's corpora
that no store holds).
``mepipe train --dry-run --json`` prints :meth:`RunPlan.describe`; a run
(:func:`mepipe.train.run.run_training`) trains the plan's folds.

Protocols stay pure functions of the labelled table
(:mod:`mepipe.train.protocols`); the plan only decides which table.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mepipe.featurestore.errors import DataError, UsageError
from mepipe.featurestore.safety import printable

from .clips import ClipTable
from .composite import CompositeList, read_composite_list, select_composite
from .fold import FoldSides
from .labels import apply_scheme, apply_version, get_scheme
from .models import get_recipe
from .params import RunParams
from .protocols import DATASET_LISTS, FINAL, Fold, corpus, cross_dataset, final, listed, lodo, loso, lovo, megc2019, \
    person, validation_split
from .recipe import Recipe
from .targets import AU, ClassTargets, Targets, parse_targets

__all__ = ["PlanError", "RunPlan", "format_plan", "plan_run"]

log = logging.getLogger(__name__)

SHOWN = 5
"""Clip ids named in a warning line (the plan and the report list them all)."""


class PlanError(UsageError, ValueError):
    """A protocol that cannot be cut from the given stores (a dataset that is not there, too few people)."""


@dataclass
class RunPlan:
    """What a run will train and test, before anything is trained.

    Attributes
    ----------
    params : RunParams
    recipe : Recipe
    clips : ClipTable
        Every clip of the run's stores.
    table : pandas.DataFrame
        The clips used: the clip table's columns plus ``label`` (class index,
        or AU vector under AU targets).
    classes : list of str
        What the network's outputs stand for: the classes, or the AUs (``AU4``).
    folds : list of FoldSides
        Each protocol fold with its fit and validation clips.
    dropped : dict of str to list of str
        Clip ids left out, by reason: ``failed`` (its build failed),
        ``unmapped_by_scheme`` (the label scheme has no class for its label),
        ``no_action_units`` (AU targets: its sheet has no AU cell),
        ``missing_features``, ``not_in_list`` (megc2019: the composite list
        does not name it), ``not_in_protocol`` (cross: its dataset is on
        neither side; meb: its dataset is not one of MEB's corpora).
    missing : dict of str to dict of str to list of str
        megc2019: per listed dataset, the listed clips that cannot be used,
        by reason (``not in any store``, ``failed to build``, ``lacks a feature``),
        named as the list writes them.
    listed : dict of str to int
        megc2019: listed clips per dataset.
    composite : CompositeList or None
    relabelled : list of str
        megc2019: clips whose list label differs from what ``megc-3`` makes of their sheet emotion; with
        ``params.label_version``, the clips that version relabels.
    warnings : list of str
        Everything the run should tell its user (also logged).
    protocol_folds : int
        Folds the protocol cuts; more than ``len(folds)`` when ``params.folds`` keeps fewer.
    absent : list of str
        meb: MEB's corpora of which the run has no clip.
    targets : ClassTargets or AuTargets
    """

    params: RunParams
    recipe: Recipe
    clips: ClipTable
    table: pd.DataFrame
    classes: list[str]
    folds: list[FoldSides]
    dropped: dict[str, list[str]]
    missing: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)
    composite: CompositeList | None = None
    relabelled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    protocol_folds: int = 0
    absent: list[str] = field(default_factory=list)
    targets: Targets = field(default_factory=ClassTargets)

    @property
    def reads(self) -> tuple[str, ...]:
        """The features the run reads: the recipe's, as its options choose them."""
        return self.recipe.reads_for(self.params.options())

    @property
    def labels(self) -> dict[str, Any]:
        """Target of every used clip: its class index, or its AU vector."""
        return dict(zip(self.table["sample"].astype(str), self.table["label"].tolist()))

    @property
    def datasets(self) -> dict[str, str]:
        """Dataset of every used clip."""
        return dict(zip(self.table["sample"].astype(str), self.table["dataset"].astype(str)))

    def class_counts(self, samples: Any = None) -> dict[str, dict[str, int]]:
        """Clips per dataset and class, or showing each AU (of ``samples``, default every used clip)."""
        table = self.table if samples is None else self.table[self.table["sample"].isin(list(samples))]
        return {str(dataset): self.targets.counts(rows["label"].tolist())
                for dataset, rows in table.groupby("dataset", sort=True)}

    def absent_datasets(self) -> list[str]:
        """megc2019: listed datasets of which no store holds a clip; meb: MEB's corpora the run has no clip of."""
        return [d for d, reasons in self.missing.items()
                if len(reasons.get("not in any store", ())) == self.listed.get(d, -1)] + list(self.absent)

    def describe(self) -> dict[str, Any]:
        """The plan as JSON: stores, clips per dataset and class, missing and dropped clips, folds, warnings."""
        labels = self.labels
        folds = []
        for sides in self.folds:
            fit_classes = self.targets.counts([labels[s] for s in sides.fit])
            folds.append({
                "name": sides.fold.name, "n_train": len(sides.fold.train), "n_test": len(sides.test),
                "n_fit": len(sides.fit), "n_validation": len(sides.validation),
                "validation_people": list(sides.validation_people),
                "test_people": sorted({person(d, s) for d, s in self._people(sides.test)}),
                "fit_classes": fit_classes,
                "missing_fit_classes": [c for c in self.classes if not fit_classes.get(c)],
            })
        by_dataset = self.class_counts()
        clips = Counter(self.table["dataset"].astype(str))
        plan: dict[str, Any] = {
            "model": self.params.model, "labels": self.params.labels, "protocol": self.params.protocol,
            "targets": self.targets.kind, "classes": list(self.classes), "stores": self.clips.describe(),
            "epoch_selection": self.params.epoch_selection(),
            "clips": {"total": len(self.table),
                      "by_dataset": {d: {**c, "total": clips[d]} for d, c in by_dataset.items()},
                      "by_class": {c: int(sum(v[c] for v in by_dataset.values())) for c in self.classes}},
            "dropped": {reason: list(ids) for reason, ids in self.dropped.items()},
            "n_folds": len(folds), "n_protocol_folds": self.protocol_folds,
            "folds": folds, "warnings": list(self.warnings),
        }
        if self.params.label_version is not None:
            plan["label_version"] = self.params.label_version
            plan["relabelled_by_version"] = list(self.relabelled)
        if self.composite is not None:
            plan["composite_list"] = self.composite.source
            plan["listed"] = dict(self.listed)
            plan["missing"] = {d: {"count": sum(len(v) for v in reasons.values()), **reasons}
                               for d, reasons in self.missing.items()}
            plan["absent_datasets"] = self.absent_datasets()
            plan["relabelled_by_list"] = list(self.relabelled)
        if self.params.protocol == "meb":
            plan["absent_datasets"] = self.absent_datasets()
        return plan

    def _people(self, samples: Any) -> list[tuple[str, str]]:
        rows = self.table.set_index("sample").loc[list(samples)]
        return list(zip(rows["dataset"].astype(str), rows["subject"].astype(str)))


def plan_run(params: RunParams, clips: ClipTable | None = None) -> RunPlan:
    """Open the stores and plan the run; nothing is trained.

    Parameters
    ----------
    params : RunParams
    clips : ClipTable, optional
        The clips to plan over; default the stores of ``params`` (opened,
        each pinned to its store id when ``params.store_ids`` gives one).

    Raises
    ------
    MissingFeatureError
        A store lacks a feature the model reads.
    StoreMismatchError
        Two stores computed it differently.
    PlanError
        The protocol cannot be cut (an absent dataset, too few people for ``val_subjects``).
    DataError
        Nothing is left to train on, or (``strict``) a clip the protocol names cannot be used.
    """
    recipe = get_recipe(params.model)
    clips = clips if clips is not None else ClipTable.open(params.stores, params.store_ids)
    reads = recipe.reads_for(params.options())
    clips.require(reads, recipe.name)
    clips.agree(reads, recipe.name)
    samples = clips.samples
    failed = samples["status"].astype(str).eq("failed") if "status" in samples else pd.Series(False, samples.index)
    usable = pd.Series([all(clips.has(f, s) for f in reads) for s in samples["sample"]], index=samples.index)
    plan = RunPlan(params, recipe, clips, samples.iloc[:0], [], [], {}, targets=parse_targets(params.labels))
    if params.protocol == "megc2019":
        table = _composite_table(plan, samples, failed, usable)
    else:
        table = _scheme_table(plan, samples, failed, usable)
    if params.protocol == "cross":
        sides = set(params.train_datasets or set(table["dataset"].astype(str)) - {params.test_dataset})
        outside = ~table["dataset"].astype(str).isin(sides | {params.test_dataset})
        plan.dropped["not_in_protocol"] = table.loc[outside, "sample"].astype(str).tolist()
        table = table[~outside]
    if params.protocol == "meb":
        table = _meb_table(plan, table)
    plan.table = table.reset_index(drop=True)
    if plan.table.empty:
        raise DataError(f"no clip of {clips!r} is left to train on ({_dropped_counts(plan.dropped)})")
    _check_strict(plan)
    try:
        folds = _folds(plan.table, params, plan.composite)
    except ValueError as err:
        raise PlanError(f"protocol {params.protocol}: {err}") from None
    plan.protocol_folds = len(folds)
    if params.folds is not None:
        folds = first_folds(folds, plan.table, params.folds)
    plan.folds = [_sides(fold, plan.table, params) for fold in folds]
    _warn_missing_classes(plan)
    for line in plan.warnings:
        log.warning("%s", line)
    return plan


def _scheme_table(plan: RunPlan, samples: pd.DataFrame, failed: pd.Series, usable: pd.Series) -> pd.DataFrame:
    """The usable clips labelled by the run's targets; every clip left out is named under its reason."""
    params = plan.params
    plan.dropped["failed"] = samples.loc[failed, "sample"].astype(str).tolist()
    kept = apply_version(samples[~failed], params.label_version)
    changed = kept["emotion"].astype(str) != samples.loc[kept.index, "emotion"].astype(str)
    plan.relabelled = kept.loc[changed, "sample"].astype(str).tolist()
    plan.classes = list(plan.targets.names)
    labels, unlabelled = plan.targets.label(kept)
    unmapped = kept[unlabelled.to_numpy()]
    if plan.targets.kind == AU:
        plan.dropped["no_action_units"] = unmapped["sample"].astype(str).tolist()
        if len(unmapped):
            counts = Counter(unmapped["dataset"].astype(str))
            plan.warnings.append(
                f"labels {params.labels}: {_clips(len(unmapped))} have no AU cell in their sheet (no AU coding), "
                f"left out ({', '.join(f'{d}: {n}' for d, n in sorted(counts.items()))}): "
                f"{_some(plan.dropped['no_action_units'])}")
    else:
        plan.dropped["unmapped_by_scheme"] = unmapped["sample"].astype(str).tolist()
        if len(unmapped):
            column = get_scheme(params.labels).column
            raw = Counter(f"{d} {v or '(none)'}" for d, v in zip(unmapped["dataset"].astype(str),
                                                                 unmapped[column].fillna("").astype(str)))
            plan.warnings.append(
                f"labels {params.labels} have no class for {_clips(len(unmapped))}, left out "
                f"({', '.join(f'{k}: {n}' for k, n in sorted(raw.items()))}): "
                f"{_some(plan.dropped['unmapped_by_scheme'])}")
    table = kept.loc[labels.index].assign(label=labels)
    lacking = ~usable.loc[table.index]
    plan.dropped["missing_features"] = table.loc[lacking, "sample"].astype(str).tolist()
    if lacking.any():
        plan.warnings.append(f"{_clips(int(lacking.sum()))} lack one of {', '.join(plan.reads)}, left out: "
                             f"{_some(plan.dropped['missing_features'])}")
    if failed.any():
        plan.warnings.append(f"{_clips(int(failed.sum()))} failed to build, left out: {_some(plan.dropped['failed'])}")
    return table[~lacking]


def _composite_table(plan: RunPlan, samples: pd.DataFrame, failed: pd.Series, usable: pd.Series) -> pd.DataFrame:
    """The composite list's clips with the list's labels; listed clips that cannot be used, by dataset and reason."""
    listing = read_composite_list(plan.params.composite_list)
    plan.composite, plan.listed = listing, listing.counts()
    scheme = get_scheme("megc-3")
    plan.classes = list(scheme.classes)
    selection = select_composite(samples.assign(_failed=failed, _usable=usable), listing)
    plan.dropped["not_in_list"] = selection.unlisted
    outside = sorted(set(samples["dataset"].astype(str)) - set(listing.datasets))
    if outside:
        plan.warnings.append(f"{listing.source} names no clip of dataset {', '.join(outside)}; "
                             f"{sum(samples['dataset'].astype(str).isin(outside))} clips of the stores are left out"
                             " (--composite-list chooses another list)")
    table = selection.table
    plan.missing = {d: {"not in any store": names} for d, names in selection.missing.items()}
    for reason, rows in (("failed to build", table["_failed"]),
                         (f"lacks one of {', '.join(plan.reads)}", ~table["_failed"] & ~table["_usable"])):
        for dataset, ids in table.loc[rows].groupby("dataset")["sample"]:
            plan.missing.setdefault(str(dataset), {})[reason] = ids.astype(str).tolist()
    table = table[~table["_failed"] & table["_usable"]].drop(columns=["_failed", "_usable"])
    if table.empty:
        raise DataError(f"none of the stores' clips is named by {listing.source} (it lists "
                        f"{', '.join(f'{d} {n}' for d, n in plan.listed.items())}; the stores hold "
                        f"{', '.join(sorted(set(samples['dataset'].astype(str))))}); for the demo corpora pass "
                        "--composite-list demo")
    table = table.assign(label=[plan.classes.index(c) for c in table["list_label"]])
    sheet, _, _ = apply_scheme(table, scheme)
    differs = table.loc[sheet.index][sheet != table.loc[sheet.index, "label"]]
    unmapped = table.loc[table.index.difference(sheet.index)]
    plan.relabelled = pd.concat([differs, unmapped])["sample"].astype(str).tolist()
    for dataset in plan.listed:
        reasons = plan.missing.get(dataset)
        if not reasons:
            continue
        count = sum(len(v) for v in reasons.values())
        if len(reasons.get("not in any store", ())) == plan.listed[dataset]:
            plan.warnings.append(f"{dataset}: no store holds its {count} listed clips; the composite is run "
                                 "without it")
            continue
        names = [n for v in reasons.values() for n in v]
        plan.warnings.append(f"{dataset}: {count} of {plan.listed[dataset]} listed clips are left out "
                             f"({', '.join(f'{r}: {len(v)}' for r, v in reasons.items())}): {_some(names)}")
    return table


def _meb_table(plan: RunPlan, table: pd.DataFrame) -> pd.DataFrame:
    """meb: the clips of MEB's corpora only; the others named under ``not_in_protocol``, MEB's corpora without a clip
    in :attr:`RunPlan.absent`."""
    inside = listed(table["dataset"].astype(str), "meb")
    outside = table.loc[~inside]
    plan.dropped["not_in_protocol"] = outside["sample"].astype(str).tolist()
    if len(outside):
        others = ", ".join(sorted(set(outside["dataset"].astype(str))))
        plan.warnings.append(f"protocol meb: {others} {'is' if ',' not in others else 'are'} not among MEB's corpora "
                             f"({', '.join(DATASET_LISTS['meb'])}); {_clips(len(outside))} left out")
    held = {corpus(d) for d in table.loc[inside, "dataset"].astype(str)}
    if not held:
        raise PlanError(f"protocol meb: no clip of MEB's corpora ({', '.join(DATASET_LISTS['meb'])}) is in the "
                        f"stores; they hold {', '.join(sorted(set(table['dataset'].astype(str)))) or 'no usable clip'}")
    plan.absent = [c for c in DATASET_LISTS["meb"] if c not in held]
    if plan.absent and held:
        plan.warnings.append(f"protocol meb: the run holds no clip of {', '.join(plan.absent)}; the benchmark runs "
                             f"over the other {len(held)} of MEB's {len(DATASET_LISTS['meb'])} corpora")
    return table[inside]


def _folds(table: pd.DataFrame, params: RunParams, listing: CompositeList | None) -> list[Fold]:
    """Folds of the run's protocol over the labelled table."""
    if params.protocol == "loso":
        return loso(table)
    if params.protocol == "lovo":
        return lovo(table)
    if params.protocol == "megc2019":
        return megc2019(table, listing)
    if params.protocol == "lodo":
        return lodo(table)
    if params.protocol == "meb":
        return lodo(table, "meb")
    if params.protocol == FINAL:
        return final(table)
    train = params.train_datasets or sorted(set(table["dataset"].astype(str)) - {params.test_dataset})
    return cross_dataset(table, train=train, test=params.test_dataset)


def first_folds(folds: list[Fold], table: pd.DataFrame, n: int) -> list[Fold]:
    """The first ``n`` folds, taken in turn from each dataset the folds test, in the protocol's order.

    On one dataset these are simply its first ``n`` folds; on several (the
    composite, leave one dataset out) each dataset's first folds come before
    any dataset's later ones, so that every part of a composite is tested
    (the protocol orders its folds by dataset).
    """
    datasets = dict(zip(table["sample"].astype(str), table["dataset"].astype(str)))
    queues: dict[str, list[Fold]] = {}
    for fold in folds:
        queues.setdefault(datasets[str(fold.test[0])], []).append(fold)
    chosen: set[str] = set()
    for turn in range(max(map(len, queues.values()), default=0)):
        for queue in queues.values():
            if turn < len(queue) and len(chosen) < n:
                chosen.add(queue[turn].name)
    return [f for f in folds if f.name in chosen]


def _sides(fold: Fold, table: pd.DataFrame, params: RunParams) -> FoldSides:
    if params.val_subjects is None:
        return FoldSides.fixed(fold)
    try:
        split = validation_split(fold, table, params.val_subjects, params.seed)
    except ValueError as err:
        raise PlanError(str(err)) from None
    return FoldSides(fold, split.fit, split.validation, split.people)


def _warn_missing_classes(plan: RunPlan) -> None:
    """A class (AU) without clips in the run, once; one the run has but a fold's training side lacks, per fold."""
    labels, targets = plan.labels, plan.targets
    counts = targets.counts(list(labels.values()))
    empty = [c for c in plan.classes if not counts[c]]
    au = targets.kind == AU
    if empty:
        plan.warnings.append(
            f"labels {plan.params.labels}: no clip of the run shows {' or '.join(empty)} (an AU's F1 then counts "
            "only the clips predicted to show it)" if au else
            f"labels {plan.params.labels}: no clip of the run is {' or '.join(empty)} "
            "(UF1 and UAR average over the classes the run holds or predicts)")
    for sides in plan.folds:
        present = targets.counts([labels[s] for s in sides.fit])
        absent = [c for c in plan.classes if counts[c] and not present[c]]
        if absent:
            what = ("that AU" if len(absent) == 1 else "those AUs") if au else \
                ("that class" if len(absent) == 1 else "those classes")
            plan.warnings.append(f"fold {sides.fold.name}: its training clips "
                                 f"{'show' if au else 'hold'} no {' or '.join(absent)}{'' if au else ' clip'}; "
                                 f"the network cannot learn {what} in this fold")


def _check_strict(plan: RunPlan) -> None:
    if not plan.params.strict:
        return
    problems = [f"{d}: {', '.join(f'{r} {len(v)}' for r, v in reasons.items())}"
                for d, reasons in plan.missing.items()]
    problems += [f"{reason}: {_some(ids)}" for reason, ids in plan.dropped.items()
                 if ids and reason in ("failed", "missing_features")]
    if problems:
        raise DataError("--strict: clips the protocol needs cannot be used (" + "; ".join(problems) + ")")


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _some(ids: list[str]) -> str:
    """The first few ids, and how many more."""
    more = f", … ({len(ids) - SHOWN} more)" if len(ids) > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more


def _dropped_counts(dropped: dict[str, list[str]]) -> str:
    counts = [f"{reason}: {len(ids)}" for reason, ids in dropped.items() if ids]
    return "dropped " + ", ".join(counts) if counts else "the stores hold no clip"



def format_plan(plan: dict[str, Any]) -> str:
    """A plain-text summary of :meth:`RunPlan.describe`: stores, clips per dataset and class, missing, folds."""
    classes = plan["classes"]
    version = f" (label version {plan['label_version']})" if plan.get("label_version") else ""
    lines = [f"plan: {plan['model']}  labels {plan['labels']}{version}  protocol {plan['protocol']}  "
             f"epochs: {plan['epoch_selection']}"]
    lines += [f"store {s['location']}  {s['dataset']}, {s['n_clips']} clips  id {s['store_id'] or 'none'}"
              for s in plan["stores"]]
    if "composite_list" in plan:
        lines.append(f"composite list {plan['composite_list']}: "
                     + ", ".join(f"{d} {n}" for d, n in plan["listed"].items()))
    width = max([len("dataset"), *(len(d) for d in plan["clips"]["by_dataset"])]) + 2
    if plan.get("targets") == AU:
        lines.append("clips showing each AU (total: clips):")
    lines.append(f"{'dataset':<{width}}" + "".join(f"{c[:9]:>10}" for c in classes) + f"{'total':>8}")
    for dataset, counts in plan["clips"]["by_dataset"].items():
        lines.append(f"{dataset:<{width}}" + "".join(f"{counts[c]:>10}" for c in classes) + f"{counts['total']:>8}")
    lines.append(f"{'all':<{width}}" + "".join(f"{plan['clips']['by_class'][c]:>10}" for c in classes)
                 + f"{plan['clips']['total']:>8}")
    for dataset, missing in plan.get("missing", {}).items():
        reasons = ", ".join(f"{r} {len(v)}" for r, v in missing.items() if r != "count")
        lines.append(f"missing from {dataset}: {missing['count']} ({reasons})")
    if plan.get("label_version"):
        relabelled = plan["relabelled_by_version"]
        lines.append(f"label version {plan['label_version']} relabels {len(relabelled)} clip"
                     f"{'' if len(relabelled) == 1 else 's'}" + (f": {_some(relabelled)}" if relabelled else ""))
    if plan["protocol"] == "meb" and plan.get("absent_datasets"):
        lines.append(f"absent from meb (no clip in the run): {', '.join(plan['absent_datasets'])}")
    dropped = {r: len(v) for r, v in plan["dropped"].items() if v}
    if dropped:
        lines.append("left out: " + ", ".join(f"{r} {n}" for r, n in dropped.items()))
    lines.append(f"{plan['n_folds']} folds:")
    for fold in plan["folds"]:
        lacking = f"  no {', '.join(fold['missing_fit_classes'])} in training" if fold["missing_fit_classes"] else ""
        validation = f"  validation {fold['n_validation']}" if fold["n_validation"] else ""
        lines.append(f"  {fold['name']:<16} train {fold['n_fit']:>5}{validation}  test {fold['n_test']:>4}{lacking}")
    return "\n".join(printable(line) for line in lines)  # dataset and subject names come from sheets
