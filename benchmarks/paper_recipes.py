"""Each network at its paper's recipe under LOSO on a store, and on a copy whose labels are shuffled.

For every requested model, trains a narrow network for a short schedule
with the recipe's own optimiser, augmentation and weight decay (SPEC §3;
only sizes and epoch counts are changed, see :data:`QUICK`), under LOSO,
then the same run on a copy of the store whose emotions are permuted over
the clips (a network that learned the expressions must fall to chance
there). Writes ``OUT/summary.json`` and ``OUT/summary.md`` with accuracy,
UF1, UAR and the wall and CPU seconds of each run.

    python benchmarks/paper_recipes.py --store data/stores/demo.zarr --out runs/bench-recipes

``--set MODEL.KEY=VALUE`` changes one run setting (JSON values), e.g.
``--set kim2017.epochs=2``; ``--recipe-option MODEL.NAME=VALUE`` sets a
recipe option (stores without per-α flows: ``strcn-g.augmentation=scale``).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from mepipe.featurestore import open_store
from mepipe.featurestore.writer import StoreWriter
from mepipe.train.run import RunParams, run_training

NARROW_KIM = (("conv_widths", (16, 32, 32)), ("fc_widths", (128, 128)), ("hidden", 64), ("lstm_layers", 1))
NARROW_NAG = (("widths", (8, 16, 32)), ("fc6", 32), ("feature_channels", 16), ("fused", 16), ("fc", 64),
              ("hidden", 64))

QUICK = {
    "shcnn": {"epochs": 5, "model_args": (("widths", (8, 16, 32)), ("hidden", 64))},
    "strcn-a": {"epochs": 10, "model_args": (("n_maps", 16),)},
    "strcn-g": {"epochs": 10, "model_args": (("n_maps", 8),)},
    "kim2017": {"epochs": 20, "temporal_epochs": 40, "model_args": NARROW_KIM},
    "clfm": {"epochs": 8, "temporal_epochs": 15, "model_args": (("hidden", 32),)},
    "lfm": {"epochs": 6, "temporal_epochs": 15, "model_args": (("input_size", 64), ("hidden", 32))},
    "nag2019": {"epochs": 5, "model_args": NARROW_NAG},
}
"""Narrow networks and short schedules; optimiser, learning rate, batch, weight decay and augmentation are the
recipes' own (the paper's)."""


def shuffled_copy(store: str, out: Path, seed: int = 1) -> Path:
    """A copy of ``store`` whose emotions are permuted over the clips."""
    path = out / "shuffled.zarr"
    if path.exists():
        shutil.rmtree(path)
    shutil.copytree(store, path)
    table = open_store(path).samples.copy()
    table["emotion"] = np.random.default_rng(seed).permutation(table["emotion"].to_numpy())
    writer = StoreWriter(path)
    writer.write_samples(table)
    writer.consolidate()
    return path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train(store: str, out: Path, model: str, labels: str, changes: dict) -> dict:
    """One LOSO run; its report with the wall and CPU seconds it took."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    report = run_training(RunParams(model=model, store=store, labels=labels, out=str(out), device="cpu",
                                    in_memory=True, overwrite=True, progress=False, **changes))
    report["wall_seconds"] = time.perf_counter() - wall
    report["cpu_seconds"] = _cpu_seconds() - cpu
    return report


def _figures(report: dict) -> dict:
    row = {k: round(report[k], 4) for k in ("accuracy", "uf1", "uar")}
    row.update(wall_seconds=round(report["wall_seconds"], 1), cpu_seconds=round(report["cpu_seconds"], 1))
    for key in ("spotting_auc", "spotting"):
        if key in report:
            row[key] = report[key]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="Feature store with every feature the models read.")
    parser.add_argument("--labels", default="samm-3")
    parser.add_argument("--out", default="runs/bench-recipes")
    parser.add_argument("--models", default=",".join(QUICK))
    parser.add_argument("--no-shuffled", action="store_true", help="Skip the shuffled-label runs.")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE")
    parser.add_argument("--recipe-option", action="append", default=[], metavar="MODEL.NAME=VALUE")
    parser.add_argument("--tag", default="", help="Label of this run in the summary (e.g. before, after).")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {m: dict(QUICK[m]) for m in args.models.split(",")}
    for item in args.set:
        key, value = item.split("=", 1)
        model, name = key.split(".", 1)
        runs[model][name] = json.loads(value)
    options: dict[str, list] = {}
    for item in args.recipe_option:
        key, value = item.split("=", 1)
        model, name = key.split(".", 1)
        options.setdefault(model, []).append((name, value))
    for model, pairs in options.items():
        runs[model]["recipe_options"] = tuple(pairs)
    shuffled = None if args.no_shuffled else shuffled_copy(args.store, out)
    rows = []
    for model, changes in runs.items():
        row = {"model": model, "settings": {k: v for k, v in changes.items()}}
        row["learned"] = _figures(train(args.store, out / model, model, args.labels, changes))
        print(model, "learned", row["learned"], flush=True)
        if shuffled is not None:
            row["shuffled"] = _figures(train(str(shuffled), out / f"{model}-shuffled", model, args.labels, changes))
            print(model, "shuffled", row["shuffled"], flush=True)
        rows.append(row)
        (out / "summary.json").write_text(json.dumps({"store": args.store, "tag": args.tag, "rows": rows},
                                                     indent=2, default=str))
    (out / "summary.md").write_text(markdown(args.store, args.tag, rows))
    print(markdown(args.store, args.tag, rows))


def markdown(store: str, tag: str, rows: list[dict]) -> str:
    lines = [f"store `{store}`, LOSO, paper recipes (narrow, short){f', {tag}' if tag else ''}", "",
             "| model | accuracy | UF1 | UAR | shuffled accuracy | shuffled UAR | CPU s (learned + shuffled) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        a, s = r["learned"], r.get("shuffled")
        cpu = a["cpu_seconds"] + (s["cpu_seconds"] if s else 0.0)
        shuffled = ("", "") if s is None else (f"{s['accuracy']:.3f}", f"{s['uar']:.3f}")
        lines.append(f"| {r['model']} | {a['accuracy']:.3f} | {a['uf1']:.3f} | {a['uar']:.3f} | "
                     f"{shuffled[0]} | {shuffled[1]} | {cpu:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
