"""``mepipe spot``: a spotter over the long videos of one or more stores, scored as MEGC scores spotting.

Registered on the main group by :func:`register`; torch and the spotters are imported inside the command.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from .train_cmd import _model_args, _pairs

SPOTTERS = """\b
Spotters:
  baseline  MEGC 2020 spotting baseline: He, Wang, Li, Yap 2020, IEEE FG, doi:10.1109/FG47880.2020.00036
  nag2019   Nag, Bhunia, Konwer, Roy 2019, ICASSP, doi:10.48550/arXiv.1902.03514
Scoring: MEGC 2020 (IoU >= 0.5, micro and macro apart), with the baseline's published F1 beside ours."""


def _default_out(spotter: str, stores: tuple[str, ...], protocol: str) -> Path:
    names = "+".join(Path(s.rstrip("/")).stem for s in stores)
    return Path("runs") / f"spot-{spotter}-{names}-{protocol}"


@click.command("spot", epilog=SPOTTERS)
@click.option("--store", "stores", multiple=True, required=True, metavar="PATH|URL",
              help="Long-video store (mepipe build --dataset samm-lv, casme-sq or demo-lv). Repeat for several "
                   "(their videos are named DATASET/VIDEO).")
@click.option("--store-id", "store_ids", multiple=True, metavar="ID",
              help="The store id each --store must have (one per --store, same order).")
@click.option("--spotter", required=True, metavar="NAME",
              help="baseline (the MEGC 2020 baseline, training-free) or nag2019 (Nag et al. 2019's network over "
                   "sliding windows, trained per fold).")
@click.option("--protocol", type=click.Choice(["loso"]), default="loso", show_default=True,
              help="Leave one subject out: each person's videos are spotted by a spotter fitted without them.")
@click.option("--final", is_flag=True,
              help="Fit one spotter on every person of the stores (no test fold, so no test figure) and keep it for "
                   "later use; settings are chosen on held-out people as in a fold.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A spotter parameter, e.g. p=chosen (baseline: choose p on the training people) or epochs=5, "
                   "threshold=0.4, val_people=2 (nag2019). An unknown NAME is answered with the spotter's "
                   "parameters. Repeatable.")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="nag2019: an argument of the network, e.g. widths=[8,16,32] or hidden=64. Repeatable.")
@click.option("--control", type=click.Choice(["relocated"]),
              help="relocated: train on the training people's intervals moved to random places in their videos "
                   "(the shuffled-label control; the result should be chance).")
@click.option("--folds", type=click.IntRange(min=1), help="Run only the first N folds (quick checks).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of every fold.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when available, else CPU.")
@click.option("--in-memory", is_flag=True, help="Hold the features the spotter reads in RAM (small stores).")
@click.option("--dry-run", is_flag=True, help="Print the plan (videos, intervals, folds, held-out people); fit nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Run folder. Default: runs/spot-SPOTTER-STORES-PROTOCOL. A killed run started again with the "
                   "same settings keeps its finished folds.")
@click.option("--overwrite", is_flag=True, help="Replace a finished or unfinished run in --out (start over).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar per fold.")
def spot(stores, store_ids, spotter, protocol, final, params, model_args, control, folds, seed, device, in_memory,
         dry_run, as_json, out, overwrite, progress):
    """Spot micro- and macro-expression intervals in long videos and score them as MEGC does.

    Writes RUN/report.json (the MEGC table: TP, FP, FN, precision, recall
    and F1 per dataset and kind, every dataset pooled, chance figures and the
    MEGC 2020 baseline's published F1; folds with what each chose and on
    whom; stores with their ids), RUN/intervals.csv (dataset, video, onset,
    apex, offset, kind, score) and RUN/timelines/VIDEO.png, and RUN/folds/ as
    each fold finishes, so a killed run resumes. `mepipe evaluate RUN`
    reprints it.
    """
    from mepipe.train.spotters.report import format_spot_report
    from mepipe.train.spotters.run import SpotParams, plan_spot, run_spot

    if as_json and not dry_run:
        raise click.UsageError("--json prints the plan of --dry-run; add --dry-run")
    protocol = "final" if final else protocol
    changes = _pairs(params, "--param")
    if model_args:
        changes += (("model_args", _model_args(model_args)),)
    out = out or _default_out(spotter, stores, protocol)
    run = SpotParams(spotter=spotter, store=stores, store_ids=store_ids, protocol=protocol, params=changes,
                     control=control, folds=folds, seed=seed, device=device, out=str(out), in_memory=in_memory,
                     progress=progress, overwrite=overwrite)
    plan = plan_spot(run)
    if dry_run:
        described = plan.describe()
        click.echo(json.dumps(described, indent=2) if as_json else format_plan(described))
        return
    report = run_spot(run, plan)
    click.echo(format_spot_report(report))
    click.echo(f"run: {out}")


def format_plan(plan: dict) -> str:
    """The plan of ``--dry-run`` in lines."""
    from mepipe.featurestore.safety import printable

    lines = [f"spotter {plan['spotter']}  protocol {plan['protocol']}"
             + (f"  control {plan['control']}" if plan["control"] else ""),
             "reads " + ", ".join(plan["reads"]),
             "parameters " + ", ".join(f"{k}={v}" for k, v in plan["parameters"].items()),
             *(f"store {s['location']}  {s['dataset']}: {s['n_videos']} videos, intervals "
               + ", ".join(f"{n} {k}" for k, n in s["n_intervals"].items()) for s in plan["stores"]),
             f"{len(plan['people'])} people; {plan['n_folds']} of {plan['n_protocol_folds']} folds:"]
    for fold in plan["folds"]:
        held = fold["validation_people"]
        lines.append(f"  {printable(fold['name'])}: test {len(fold['test'])} videos, fit {fold['n_fit']}"
                     + (f", choose on {', '.join(map(printable, held))}" if held else ""))
    for why in plan["left_out"]:
        lines.append(f"left out: {why}")
    return "\n".join(lines)


def register(cli_group: click.Group) -> None:
    """Add ``spot`` to the ``mepipe`` group."""
    cli_group.add_command(spot)
