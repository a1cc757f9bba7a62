"""``mepipe reproduce`` and ``mepipe runs compare``: the papers' figures beside ours, and runs side by side.

Registered on the main group by :func:`register`; the logic is in
:mod:`mepipe.train.reproduce` and :mod:`mepipe.train.compare`.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from .paths import data_root, store_path


def _models(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(m.strip() for m in value.split(",") if m.strip())


def _composite_list(value: str | None, stores: tuple[str, ...]) -> str | None:
    """``--composite-list``: a file, ``demo`` for the demo corpora's list, or (unset) the demo list when every
    store is a demo corpus, else the official list."""
    from mepipe.pipeline.demo.composite import COMPOSITE_PATH
    from mepipe.pipeline.demo.params import PRESETS

    if value == "demo":
        return str(COMPOSITE_PATH)
    if value is not None:
        return value
    from mepipe.train.clips import ClipTable

    datasets = {s["dataset"] for s in ClipTable.open(stores).describe()}
    return str(COMPOSITE_PATH) if datasets and datasets <= set(PRESETS) else None


@click.command("reproduce")
@click.option("--store", "stores", multiple=True, metavar="PATH|URL",
              help="Feature store (folder, .zip or URL); repeat for each corpus. Its dataset decides which corpus "
                   "it is (demo, demo-casme2 and demo-smic stand for SAMM, CASME II and SMIC-HS). Default: the "
                   "three demo stores under DATA_ROOT/stores.")
@click.option("--store-id", "store_ids", multiple=True, metavar="ID",
              help="The store id each --store must have (one per --store, same order).")
@click.option("--models", metavar="LIST",
              help="Comma-separated networks, e.g. shcnn,strcn-g. Default: every network with a published figure.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per experiment (seeds 0..N-1); the table gives mean ± std.")
@click.option("--quick", is_flag=True,
              help="Short schedules, narrow networks and at most 3 folds per protocol (each row says what it ran): "
                   "checks that every protocol runs, not the papers' figures.")
@click.option("--composite-list", metavar="FILE|demo",
              help="The MEGC 2019 composite list. Default: the demo corpora's list when every store is a demo "
                   "corpus, else the official list.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when available (with mixed precision), else CPU; recorded in the table.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/reproduce"),
              show_default=True, help="Folder for reproduce.md, reproduce.json and the runs.")
@click.option("--overwrite", is_flag=True,
              help="Run every experiment again (default: keep the finished runs of an earlier reproduce with the "
                   "same settings).")
@click.option("--data-root", "data_root_opt", metavar="DIR",
              help="Where stores/ live. Default: $MEPIPE_DATA or ./data.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="A progress bar over the table's runs (experiments x seeds), with an ETA and the row running.")
def reproduce(stores, store_ids, models, seeds, quick, composite_list, device, out, overwrite, data_root_opt,
              progress):
    """Run each paper's protocol over the stores and write the table of our figures beside the published ones.

    Writes OUT/reproduce.md and OUT/reproduce.json: one row per network and
    corpus (accuracy, UF1, UAR; the published figure and its table; clips
    per class beside the papers'; store ids, seeds, wall time; each of the
    recipe's deviations from the paper, and why a published figure has no
    figure of ours beside it), and a figure per row that ran, ours beside the
    published (OUT/figures/). CASME II experiments train with the labels the
    papers used (label version casme2-2014). Each row is printed as it
    finishes; a row that cannot run says why.
    """
    from mepipe.train.reproduce import REPRODUCE_MD, ReproduceParams, format_row_lines
    from mepipe.train.reproduce import reproduce as run_reproduce

    if not stores:
        root = data_root(data_root_opt)
        stores = tuple(str(store_path(root, d)) for d in ("demo", "demo-casme2", "demo-smic"))
    params = ReproduceParams(stores=stores, store_ids=store_ids, out=str(out), models=_models(models), seeds=seeds,
                             quick=quick, composite_list=_composite_list(composite_list, stores), device=device,
                             overwrite=overwrite, progress=progress)

    table = run_reproduce(params, on_row=lambda row: click.echo(format_row_lines(row, out)))
    for row in table["spotting"]:
        ours = row.get("ours")
        figures = ", ".join(f"{k} F1 {v['f1']:.3f}" for k, v in ours.items()) if ours else \
            f"{row['status']}: {row['reason']}"
        click.echo(f"{row['spotter']:<8} {'spotting (LOSO)':<40} {row['dataset']:<24} {figures}")
    ran = sum(r["status"] == "ran" for r in table["rows"])
    click.echo(f"{ran} of {len(table['rows'])} rows ran in {table['seconds']:.0f} s; table: {out / REPRODUCE_MD}")


@click.group("runs")
def runs() -> None:
    """Finished training runs: compare them."""


@runs.command("compare")
@click.argument("run_folders", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw each run's per-class recall, as grouped bars, into this PNG file.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (long values whole).")
def compare(run_folders, png, as_json):
    """Figures, differing parameters and store ids of runs side by side; with --png, their per-class recall.

    Settings of how a run executed (its folder, progress bars, workers) are
    not compared; long values wrap, and are cut after three lines (--json
    keeps them whole). Runs of `mepipe reproduce` are named by their row and
    seed.
    """
    from mepipe.train.compare import compare_runs, format_comparison, plot_recall

    try:
        table = compare_runs(run_folders)
    except (FileNotFoundError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    click.echo(json.dumps(table, indent=2, default=str) if as_json else format_comparison(table))
    if png is not None:
        plot_recall(table, png)
        click.echo(f"per-class recall: {png}", err=as_json)


def register(cli_group: click.Group) -> None:
    """Add ``reproduce`` and ``runs`` to the ``mepipe`` group."""
    cli_group.add_command(reproduce)
    cli_group.add_command(runs)
