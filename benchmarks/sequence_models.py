"""LOSO figures, parameter counts and CPU/GPU seconds per epoch of the sequence networks on a store.

Runs ``mepipe.train.run.run_training`` for each requested model (paper
sizes unless ``--quick``), then Kim's objective-term ablation in the
order of Kim Table 6 (E1; E1+E2; …; all five), and writes
``OUT/summary.json`` and ``OUT/summary.md``. Timings are reported with
the ratio to the fastest model of the same run, measured on the same
machine in the same process.

    python benchmarks/sequence_models.py --store data/stores/demo.zarr --out runs/bench-seq
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mepipe.train.run import RunParams, run_training

PAPER_RUNS = {
    "kim2017": {},
    "clfm": {},
    "lfm": {"model_args": (("input_size", 112),)},
    "nag2019": {"batch_size": 8, "lr": 1e-3},
}
"""Paper-size runs (LFM at 112 px instead of 224 on a CPU; Nag with 8 windows per batch and lr 1e-3)."""

QUICK_RUNS = {
    "kim2017": {"epochs": 20, "temporal_epochs": 40, "lr": 1e-3, "optimizer": "adam", "augment": False,
                "model_args": (("conv_widths", (16, 32, 32)), ("fc_widths", (128, 128)), ("hidden", 64),
                               ("lstm_layers", 1))},
    "clfm": {"epochs": 8, "temporal_epochs": 15, "model_args": (("hidden", 32),)},
    "lfm": {"epochs": 6, "temporal_epochs": 15, "model_args": (("input_size", 64), ("hidden", 32))},
    "nag2019": {"epochs": 15, "batch_size": 4, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
                "augment": False,
                "model_args": (("widths", (8, 16, 32)), ("fc6", 32), ("feature_channels", 16), ("fused", 16),
                               ("fc", 64), ("hidden", 64))},
}
"""Narrow, short CPU runs (the learnability tests' settings; Kim and Nag without augmentation, with Adam,
Nag without weight decay: see tests/test_sequence_learning.py)."""

ABLATION = (("E1",), ("E1", "E2"), ("E1", "E2", "E3"), ("E1", "E2", "E3", "E4"), ("E1", "E2", "E3", "E4", "E5"))
"""Kim Table 6: objective terms added one at a time."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True,
                        help="Feature store with frames_rgb, state_frames, lfm, clfm, flow_consecutive")
    parser.add_argument("--labels", default="samm-3", help="Label scheme (default samm-3).")
    parser.add_argument("--out", default="runs/bench-sequence", help="Folder for the runs and the summary.")
    parser.add_argument("--models", default="kim2017,clfm,lfm,nag2019", help="Comma-separated models.")
    parser.add_argument("--quick", action="store_true", help="Narrow, short runs instead of paper sizes.")
    parser.add_argument("--no-ablation", action="store_true", help="Skip Kim's term ablation.")
    parser.add_argument("--ablation-epochs", type=int, default=None, help="CNN epochs of each ablation run.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda.")
    args = parser.parse_args()
    out = Path(args.out)
    runs = QUICK_RUNS if args.quick else PAPER_RUNS
    rows = []
    for model in args.models.split(","):
        rows.append(_row(model, _train(args, out / model, model, runs[model])))
    fastest = min(r["seconds_per_epoch"] for r in rows)
    for r in rows:
        r["epoch_time_ratio"] = round(r["seconds_per_epoch"] / fastest, 2)
    ablation = []
    if not args.no_ablation:
        for terms in ABLATION:
            changes = {**runs["kim2017"], "recipe_options": (("terms", terms),)}
            if args.ablation_epochs:
                changes["epochs"] = args.ablation_epochs
            report = _train(args, out / ("kim-" + "+".join(terms)), "kim2017", changes)
            ablation.append({"terms": "+".join(terms), **{k: report["stage1"][k] for k in ("accuracy", "uf1", "uar")},
                             "lstm_accuracy": report["accuracy"]})
    summary = {"store": args.store, "labels": args.labels, "quick": args.quick, "models": rows, "kim_ablation": ablation}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(_markdown(summary))
    print(_markdown(summary))


def _train(args, out: Path, model: str, changes: dict) -> dict:
    started = time.perf_counter()
    report = run_training(RunParams(model=model, store=args.store, labels=args.labels, out=str(out),
                                    device=args.device, in_memory=True, overwrite=True, progress=False, **changes))
    report["wall_seconds"] = time.perf_counter() - started
    return report


def _row(model: str, report: dict) -> dict:
    row = {"model": model, **{k: round(report[k], 4) for k in ("accuracy", "uf1", "uar")},
           "parameters": report["parameter_count"], "seconds_per_epoch": round(report["seconds_per_epoch"], 3),
           "device": report["device"], "wall_seconds": round(report["wall_seconds"], 1)}
    if "stage1" in report:
        row["stage1_seconds_per_epoch"] = round(report["stage1"]["seconds_per_epoch"], 3)
        row["stage1_accuracy"] = round(report["stage1"]["accuracy"], 4)
    if "spotting_auc" in report:
        row["spotting_auc"] = report["spotting_auc"]
    return row


def _markdown(summary: dict) -> str:
    lines = [f"store `{summary['store']}`, labels {summary['labels']}, LOSO, "
             f"{'quick (narrow) runs' if summary['quick'] else 'paper sizes'}", "",
             "| model | accuracy | UF1 | UAR | parameters | s/epoch | ratio | stage-1 s/epoch | spotting AUC |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary["models"]:
        auc = r.get("spotting_auc")
        lines.append(f"| {r['model']} | {r['accuracy']:.3f} | {r['uf1']:.3f} | {r['uar']:.3f} | {r['parameters']:,} | "
                     f"{r['seconds_per_epoch']:.2f} | {r['epoch_time_ratio']} | {r.get('stage1_seconds_per_epoch', '')} | "
                     f"{'' if auc is None else f'{auc:.3f}'} |")
    if summary["kim_ablation"]:
        lines += ["", "Kim Table 6 on this store (CNN: Fc on the apex frame; then the LSTM):", "",
                  "| terms | CNN accuracy | CNN UF1 | CNN UAR | LSTM accuracy |", "| --- | --- | --- | --- | --- |"]
        for a in summary["kim_ablation"]:
            lines.append(f"| {a['terms']} | {a['accuracy']:.3f} | {a['uf1']:.3f} | {a['uar']:.3f} | "
                         f"{a['lstm_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
