"""A spotting run (``mepipe spot``): a spotter fitted and tested under leave-one-subject-out, or fitted on everyone.

For each LOSO fold (one person's videos tested) the spotter is fitted on
the fold's training side only (:class:`~.base.FitContext`): a trained
spotter holds ``val_people`` people out of it to choose its epoch and
threshold; a training-free one chooses on the whole side. Only once
:attr:`~.base.Spotter.fit` has returned are the test videos read, and
spotted with what was fixed. The run pools every fold's intervals into the
MEGC table (:func:`~mepipe.train.spotting_eval.spotting_table`, every video
counted), with chance figures beside it (:func:`~.controls.chance_table`).

``final`` fits one spotter on every person (no test fold; settings chosen
on held-out people as in a fold) and keeps it for later use; its report
says it has no test figure.

A run folder is resumable like a training run's
(:class:`~mepipe.train.runstate.RunState`): each finished fold is kept, and
a rerun with the same parameters, stores and folds trains only the others.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mepipe.featurestore.errors import UsageError

from ..fold import FoldResult
from ..loop import describe_device, resolve_device
from ..protocols import Fold, loso, person, validation_split
from ..report import checkpoint_path
from ..run import mepipe_version
from ..runstate import FOLDS_DIR, ExistingRunError, RunState
from ..spotting_eval import ALL, MEGC2020_BASELINE, interval_table, spotting_table
from .base import FitContext, Fitted, Spotter, get_spotter, resolve_params
from .controls import chance_table, relocate
from .report import CURVES_SUFFIX, INTERVALS_FILE, REPORT_FILE, TIMELINE_DIR, SpotReport, write_spot_report
from .selection import pass_rows
from .videos import VideoTable

__all__ = ["CONTROLS", "PROTOCOLS", "SpotParams", "SpotPlan", "plan_spot", "run_spot"]

log = logging.getLogger(__name__)

PROTOCOLS = ("loso", "final")
"""``loso``: leave one subject out; ``final``: fit on everyone, test nothing."""

CONTROLS = ("relocated",)
"""``relocated``: the training side's intervals moved to random places (:func:`~.controls.relocate`)."""

EXECUTION_FIELDS = ("out", "progress", "overwrite", "in_memory")
"""Fields that change how a run executes, not what it computes."""


@dataclass(frozen=True)
class SpotParams:
    """Everything that defines a spotting run (recorded in ``report.json``).

    Attributes
    ----------
    spotter : str
        Registered spotter (:func:`~.base.list_spotters`).
    store : tuple of str
        Long-video stores; videos of several are named ``dataset/video``.
    store_ids : tuple of str or None
        One per store: the id its manifest must have.
    protocol : {"loso", "final"}
    params : tuple of (str, value)
        Changes of the spotter's parameters (``--param NAME=VALUE``).
    control : {"relocated"} or None
        A control run (see :data:`CONTROLS`).
    folds : int, optional
        Only the first N folds.
    seed : int
    device : {"auto", "cpu", "cuda"}
    out : str
    in_memory : bool
        Hold every video's features in RAM.
    progress : bool
    overwrite : bool
    """

    spotter: str
    store: tuple[str, ...]
    store_ids: tuple[str | None, ...] = ()
    protocol: str = "loso"
    params: tuple[tuple[str, Any], ...] = ()
    control: str | None = None
    folds: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str = "runs/spot"
    in_memory: bool = False
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        stores = (self.store,) if isinstance(self.store, str) else tuple(str(s) for s in self.store)
        object.__setattr__(self, "store", stores)
        object.__setattr__(self, "store_ids", tuple(self.store_ids))
        object.__setattr__(self, "params", tuple((str(k), v) for k, v in self.params))
        if not stores:
            raise UsageError("a spotting run needs at least one store (--store)")
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.control is not None and self.control not in CONTROLS:
            raise UsageError(f"control must be one of {', '.join(CONTROLS)}, got {self.control!r}")
        if self.folds is not None and self.folds < 1:
            raise UsageError(f"folds must be >= 1, got {self.folds}")
        resolve_params(get_spotter(self.spotter), self.params)

    def spotter_params(self) -> Any:
        """The spotter's parameters with this run's changes."""
        return resolve_params(get_spotter(self.spotter), self.params)

    def defining(self) -> dict[str, Any]:
        """The fields that define what the run computes, JSON-able."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in EXECUTION_FIELDS}


@dataclass(frozen=True)
class SpotSides:
    """One fold of a spotting run: videos fitted on, videos settings are chosen on, videos tested."""

    fold: Fold
    fit: tuple[str, ...]
    validation: tuple[str, ...] = ()
    validation_people: tuple[str, ...] = ()

    @property
    def test(self) -> tuple[str, ...]:
        return tuple(self.fold.test)


@dataclass
class SpotPlan:
    """What a spotting run will do, before it does anything."""

    params: SpotParams
    spotter: Spotter
    spotter_params: Any
    videos: VideoTable
    folds: list[SpotSides]
    n_protocol_folds: int

    @property
    def reads(self) -> tuple[str, ...]:
        """The store features the spotter reads under the run's parameters."""
        return self.spotter.features(self.spotter_params)

    def describe(self) -> dict[str, Any]:
        """JSON-able plan (``mepipe spot --dry-run --json``)."""
        table = self.videos.samples
        truth = self.videos.truth
        return {
            "spotter": self.spotter.name, "protocol": self.params.protocol, "control": self.params.control,
            "parameters": _jsonable(dataclasses.asdict(self.spotter_params)), "reads": list(self.reads),
            "stores": self.videos.describe(),
            "videos": {str(d): int(n) for d, n in table.groupby("dataset").size().items()},
            "people": sorted({person(d, s) for d, s in zip(table["dataset"], table["subject"])}),
            "intervals": {str(k): int(n) for k, n in truth.groupby("kind").size().items()},
            "left_out": self.videos.left_out,
            "n_folds": len(self.folds), "n_protocol_folds": self.n_protocol_folds,
            "folds": [{"name": s.fold.name, "test": list(s.test), "n_fit": len(s.fit),
                       "validation_people": list(s.validation_people)} for s in self.folds],
        }


def plan_spot(params: SpotParams, videos: VideoTable | None = None) -> SpotPlan:
    """Open the stores, check they hold what the spotter reads, cut the folds and the held-out people."""
    spotter = get_spotter(params.spotter)
    spotter_params = params.spotter_params()
    videos = videos if videos is not None else VideoTable.open(params.store, params.store_ids)
    reads = spotter.features(spotter_params)
    videos.require(reads, f"spotter {spotter.name}")
    videos.agree(reads, f"spotter {spotter.name}")
    table = videos.samples[["sample", "subject", "dataset"]].astype(str)
    n_people = getattr(spotter_params, "val_people", 0)
    if params.protocol == "final":
        everyone = tuple(table["sample"])
        folds = [Fold("final", everyone, ())]
    else:
        folds = loso(table)
        if len(folds) < 2:
            raise UsageError(f"leave-one-subject-out needs at least two people; the stores hold {len(folds)}")
    n_protocol = len(folds)
    folds = folds[:params.folds] if params.folds else folds
    sides = []
    for fold in folds:
        if n_people:
            split = validation_split(fold, table, n_people, params.seed)
            sides.append(SpotSides(fold, split.fit, split.validation, split.people))
        else:
            sides.append(SpotSides(fold, tuple(fold.train)))
    return SpotPlan(params, spotter, spotter_params, videos, sides, n_protocol)


def _identity(plan: SpotPlan) -> dict[str, Any]:
    return {"parameters": _jsonable(plan.params.defining()),
            "stores": [{"location": s["location"], "store_id": s["store_id"]} for s in plan.videos.describe()],
            "fingerprint": plan.videos.fingerprint(plan.reads, plan.videos.ids),
            "folds": [[s.fold.name, list(s.test), list(s.validation)] for s in plan.folds]}


def run_spot(params: SpotParams, plan: SpotPlan | None = None) -> dict[str, Any]:
    """Run the plan's folds (keeping those a killed attempt finished), write the run folder, return the report.

    Raises
    ------
    ExistingRunError
        ``params.out`` holds a finished run, or an unfinished one with other settings (``overwrite`` replaces).
    """
    out = Path(params.out)
    if (out / REPORT_FILE).exists() and not params.overwrite:
        raise ExistingRunError(f"{out} already holds a finished run; choose another --out or pass --overwrite")
    started = time.time()
    plan = plan if plan is not None else plan_spot(params)
    videos = plan.videos
    state = RunState.begin(out, _identity(plan), overwrite=params.overwrite, outputs=(INTERVALS_FILE, TIMELINE_DIR))
    device = resolve_device(params.device)
    if params.in_memory:
        videos.hold(plan.reads, videos.ids)
    results = []
    for number, sides in enumerate(plan.folds, start=1):
        result = state.finished.get(sides.fold.name)
        if result is None:
            result = _run_fold(plan, sides, device, out, f"fold {number}/{len(plan.folds)} {sides.fold.name}")
            state.save(result)
        results.append(result)
    report = _assemble(plan, results, device, time.time() - started, list(state.kept))
    write_spot_report(out, SpotReport(report, _curves(out, results)))
    return report


def fit_context(plan: SpotPlan, sides: SpotSides, device: torch.device, checkpoint: Path, desc: str) -> FitContext:
    """The fold's training side as the spotter sees it: its videos only (reading a test video raises)."""
    seen = tuple(sides.fit) + tuple(sides.validation)
    videos = plan.videos.subset(seen)
    truth = videos.intervals_of(seen)
    if plan.params.control == "relocated":
        truth = relocate(truth, _frames(videos, seen), seed=plan.params.seed)
    return FitContext(videos, tuple(sides.fit), tuple(sides.validation), tuple(sides.validation_people), truth,
                      plan.spotter_params, plan.params.seed, device, checkpoint, plan.params.progress, desc)


def _run_fold(plan: SpotPlan, sides: SpotSides, device: torch.device, out: Path, desc: str) -> FoldResult:
    started = time.time()
    checkpoint = checkpoint_path(out, sides.fold.name)
    fitted = plan.spotter.fit(fit_context(plan, sides, device, checkpoint, desc))
    described = fitted.describe()
    if "checkpoint" in described:
        described["checkpoint"] = str(Path(described["checkpoint"]).relative_to(out))
    # The spotter is fixed: only now are the test videos read.
    rows, thresholds, curves, meta = [], {}, {}, {}
    videos = plan.videos
    for video in sides.test:
        numbers = videos.frame_numbers(video)
        meta[video] = {"dataset": str(videos.value(video, "dataset")), "fps": float(videos.value(video, "fps")),
                       "first_frame": int(numbers[0]), "n_frames": int(len(numbers))}
        video_curves = fitted.curves(videos, video)
        for spot_pass in fitted.passes:
            threshold, spotted = pass_rows(spot_pass, video_curves[spot_pass.curve], fitted.settings[spot_pass.name],
                                           plan.videos, video)
            thresholds.setdefault(video, {})[spot_pass.name] = threshold
            rows += [{**r, "fold": sides.fold.name} for r in spotted]
        curves[video] = video_curves
    files = [_save_curves(out, sides.fold.name, curves)] if sides.test else []
    report = {"name": sides.fold.name, "test": list(sides.test), "n_fit": len(sides.fit),
              "fit": list(sides.fit), "validation": {"people": list(sides.validation_people),
                                                      "videos": list(sides.validation)},
              "spotter": described, "settings": dict(fitted.settings), "thresholds": thresholds, "videos": meta,
              "passes": {p.name: p.curve for p in fitted.passes},
              "checkpoint": described.get("checkpoint"), "files": files, "seconds": round(time.time() - started, 3)}
    return FoldResult(report, sorted(rows, key=lambda r: (r["dataset"], r["video"], r["onset"])))


def _save_curves(out: Path, fold: str, curves: dict[str, dict[str, np.ndarray]]) -> str:
    """The fold's test curves as ``folds/fold-<name>.curves.npz`` (arrays named ``<i>.<pass>``, videos in order
    under ``videos``); returns its path relative to the run."""
    path = Path(out) / FOLDS_DIR / (checkpoint_path(out, fold).stem + CURVES_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{i}.{name}": curve for i, (_, by_pass) in enumerate(curves.items()) for name, curve in by_pass.items()}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, videos=np.array(list(curves), dtype=str), **arrays)
    tmp.replace(path)
    return str(path.relative_to(out))


def _curves(out: Path, results: list[FoldResult]) -> dict[str, dict[str, np.ndarray]]:
    """Every tested video's curves, read back from the folds' files."""
    curves: dict[str, dict[str, np.ndarray]] = {}
    for result in results:
        for name in result.report.get("files", []):
            with np.load(Path(out) / name, allow_pickle=False) as saved:
                for i, video in enumerate(saved["videos"].tolist()):
                    prefix = f"{i}."
                    curves[video] = {k[len(prefix):]: saved[k] for k in saved.files if k.startswith(prefix)}
    return curves


def _frames(videos: VideoTable, ids) -> dict[str, tuple[int, int]]:
    out = {}
    for video in ids:
        numbers = videos.frame_numbers(video)
        out[video] = (int(numbers[0]), int(numbers[-1] - numbers[0] + 1))
    return out


def _assemble(plan: SpotPlan, results: list[FoldResult], device: torch.device, seconds: float,
              resumed: list[str]) -> dict[str, Any]:
    params, spotter, videos = plan.params, plan.spotter, plan.videos
    reads = plan.reads
    tested = [v for r in results for v in r.report["test"]]
    predictions = [row for r in results for row in r.predictions]
    report: dict[str, Any] = {
        "kind": "spotting", "spotter": spotter.name, "protocol": params.protocol, "control": params.control,
        "spotter_info": spotter.describe(),
        "parameters": {"run": _jsonable(dataclasses.asdict(params)),
                       "spotter": _jsonable(dataclasses.asdict(plan.spotter_params))},
        "store": {"stores": videos.describe(), "fingerprint": videos.fingerprint(reads, videos.ids),
                  "features": list(reads), "left_out": videos.left_out},
        "plan": {k: v for k, v in plan.describe().items() if k not in ("stores", "left_out", "parameters")},
        "folds": [r.report for r in results], "predictions": predictions, "resumed_folds": resumed,
        "seconds": round(seconds, 3), "device": describe_device(device), "torch": torch.__version__,
        "mepipe": mepipe_version(),
    }
    if params.protocol == "final":
        report["test_figure"] = None
        report["note"] = ("final spotter: fitted on every person of the stores, no test fold, so no test figure; "
                          "its settings were chosen as the folds' are")
        return report
    truth = videos.intervals_of(tested)
    listed = [(str(videos.value(v, "dataset")), v) for v in tested]
    predicted = interval_table(pd.DataFrame.from_records(predictions) if predictions else pd.DataFrame(),
                               "predictions")
    report["table"] = [row.as_record() for row in spotting_table(predicted, truth, videos=listed)]
    chance = chance_table(predicted, interval_table(truth, "truth"),
                          {(d, v): f for (d, v), f in zip(listed, _frames(videos, tested).values())},
                          seed=params.seed)
    report["chance"] = [{"dataset": d, "kind": k, **figures} for (d, k), figures in chance.items()]
    report["published"] = [dataclasses.asdict(p) for p in MEGC2020_BASELINE]
    report["truth"] = _jsonable(truth.to_dict("records"))
    report["n_videos"] = len(tested)
    report["all"] = {r["kind"]: r for r in report["table"] if r["dataset"] == ALL}
    return report


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def restore_final(run: str | Path, device: str = "cpu") -> Fitted:
    """The spotter a ``final`` run fitted, ready to spot the videos of any store holding what it reads."""
    from .report import read_spot_report

    report = read_spot_report(run)
    if report["protocol"] != "final":
        raise UsageError(f"{run} is a {report['protocol']} run; only a final run (--final) keeps one spotter for "
                         "later use")
    spotter = get_spotter(report["spotter"])
    params = resolve_params(spotter, report["parameters"]["run"]["params"])
    return spotter.restore(params, report["folds"][0]["spotter"], Path(run), resolve_device(device))
