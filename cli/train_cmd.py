"""``mepipe train``, ``mepipe evaluate`` and ``mepipe saliency``: training from a store and its results.

Registered on the main group by :func:`register`. Torch and the models are
imported inside the commands, so ``mepipe --help`` stays fast.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import click

from mepipe.train.protocols import PROTOCOLS

from .paths import data_root, store_path

log = logging.getLogger(__name__)


class FiniteFloatRange(click.FloatRange):
    """A float option in a range that is also finite: ``nan`` passes every comparison and ``inf`` every lower
    bound, so FloatRange alone lets them through."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _pairs(items: tuple[str, ...], hint: str) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` pairs as text (the recipe parses and checks each value)."""
    out = []
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=hint)
        key, value = (part.strip() for part in item.split("=", 1))
        out.append((key, value))
    return tuple(out)


def _model_args(items: tuple[str, ...]) -> tuple[tuple[str, object], ...]:
    """``KEY=VALUE`` pairs; values are read as JSON when they parse (numbers, lists), else kept as text."""
    out = []
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--model-arg")
        key, value = (part.strip() for part in item.split("=", 1))
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.append((key, tuple(parsed) if isinstance(parsed, list) else parsed))
    return tuple(out)


def _check_names(model: str, labels: str) -> None:
    from mepipe.train.labels import list_schemes
    from mepipe.train.models import list_models
    from mepipe.train.targets import AU_PREFIX, known_labels, parse_targets

    if model not in list_models():
        raise click.BadParameter(f"unknown model {model!r}; known: {', '.join(list_models())}", param_hint="--model")
    if labels.startswith(AU_PREFIX):
        try:
            parse_targets(labels)
        except KeyError as err:
            raise click.BadParameter(str(err.args[0]), param_hint="--labels") from None
    elif labels not in list_schemes():
        raise click.BadParameter(f"unknown label scheme {labels!r}; known: {', '.join(known_labels())}",
                                 param_hint="--labels")


def _composite_list(value: str | None) -> str | None:
    """``--composite-list``: a file, or ``demo`` for the demo corpora's list (shipped with the pipeline)."""
    if value != "demo":
        return value
    from mepipe.pipeline.demo.composite import COMPOSITE_PATH

    return str(COMPOSITE_PATH)


def _default_out(model: str, stores: tuple[str, ...], labels: str, protocol: str) -> Path:
    names = "+".join(Path(s.rstrip("/")).stem for s in stores)
    return Path("runs") / f"{model}-{names}-{labels}-{protocol}"


PAPERS = """\b
Papers (README, "Papers"):
  shcnn             Miao, Xu, Han, Zhu 2019, IEEE Access 7, doi:10.1109/ACCESS.2019.2921220
  strcn-a, strcn-g  Xia, Hong, Gao, Feng, Zhao 2020, IEEE TMM 22(3), doi:10.1109/TMM.2019.2931351
  kim2017           Kim, Baddar, Jang, Ro 2017, IEEE TAFFC, doi:10.1109/TAFFC.2017.2699999
  lfm, clfm         Choi, Song 2020, IEEE Access 8, doi:10.1109/ACCESS.2020.3006958
  nag2019           Nag, Bhunia, Konwer, Roy 2019, ICASSP, doi:10.48550/arXiv.1902.03514
  megc2019, megc-3  See, Yap, Li, Hong, Wang 2019, IEEE FG, doi:10.1109/FG.2019.8756611
  objective         Davison, Merghani, Yap 2018, J. Imaging 4(10), doi:10.3390/jimaging4100119
  meb, au:SET       Varanka, Li, Peng, Zhao 2024, IEEE TAFFC 15(1), doi:10.1109/TAFFC.2023.3265063

\b
Label schemes (what each keeps and merges): README, "Label schemes"."""
"""Citations under ``mepipe train --help`` (click keeps ``\\b`` paragraphs unwrapped)."""


@click.command("train", epilog=PAPERS)
@click.option("--model", required=True, metavar="NAME",
              help="Network to train: shcnn (Miao et al. 2019), strcn-a or strcn-g (Xia et al. 2020), kim2017 "
                   "(Kim et al. 2017), lfm or clfm (Choi & Song 2020), nag2019 (Nag et al. 2019); DOIs below. Or "
                   "one a --plugin or an installed package (entry-point group mepipe.models) registers.")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE|FILE.py",
              help="Import this module first (a name on PYTHONPATH or a .py file); it registers your own models "
                   "(mepipe.train.api.register). Repeatable.")
@click.option("--store", "stores", multiple=True, metavar="PATH|URL",
              help="Feature store to train from: a folder, a .zip or a URL. Repeat for several stores (their clips "
                   "are named DATASET/CLIP). Default: DATA_ROOT/stores/demo.zarr.")
@click.option("--store-id", "store_ids", multiple=True, metavar="ID",
              help="The store id each --store must have (one per --store, same order); any other content is "
                   "refused.")
@click.option("--labels", required=True, metavar="SCHEME",
              help="Label scheme: casme2-5, samm-3 (Miao et al. 2019), strcn-4 (Xia et al. 2020), megc-3 (See et "
                   "al. 2019) or objective (Davison et al. 2018). What each keeps and merges: README, 'Label "
                   "schemes'. Or au:SET to detect action units, one output per AU with binary cross-entropy, F1 "
                   "per AU (Varanka et al. 2024, MEB): au:meb-cross (MEB's 12 AUs), au:casme2, ... or AU numbers "
                   "(au:4+12).")
@click.option("--label-version", metavar="NAME",
              help="Relabel the clips as an older version of their sheet gives them before the scheme maps them: "
                   "casme2-2014 = the CASME II labels the papers used (surprise 25, sadness 7; the 2019 sheet "
                   "relabels three sadness clips as surprise). Recorded in the run. Default: the labels as stored.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="loso", show_default=True,
              help="Evaluation protocol: leave one subject/video out, the MEGC 2019 composite (See et al. 2019; "
                   "its list decides clips and labels), cross-dataset, leave one dataset out, or meb: leave one "
                   "dataset out over MEB's corpora (CASME, CASME II, SAMM, 4DME, MMEW, CAS(ME)³; Varanka et al. "
                   "2024), of those the stores hold (--dry-run names the absent ones), or final (= --final).")
@click.option("--final", is_flag=True,
              help="Train one model on every clip of the stores (no test fold, so no test figure) and keep it for "
                   "later use (mepipe predict); epochs fixed, or chosen on held-out people with --val-subjects. "
                   "Same as --protocol final.")
@click.option("--train-dataset", "train_datasets", multiple=True, metavar="NAME",
              help="With --protocol cross: a dataset trained on (repeatable). Default: all but --test-dataset.")
@click.option("--test-dataset", metavar="NAME", help="With --protocol cross: the dataset tested on.")
@click.option("--composite-list", metavar="FILE|demo",
              help="With --protocol megc2019: the composite list (dataset,subject,clip,class). Default: the "
                   "official MEGC 2019 list; 'demo' is the list of the demo corpora.")
@click.option("--strict", is_flag=True,
              help="Refuse to run when a clip the protocol names is missing, failed or lacks a feature (default: "
                   "report them and run with what is present).")
@click.option("--val-subjects", type=click.IntRange(min=1), metavar="N",
              help="Choose each stage's epoch on N people held out of every fold's training side (best validation "
                   "UF1; with --patience, stop early). Default: fixed epochs. The test fold never chooses.")
@click.option("--dry-run", is_flag=True, help="Print the plan (clips per dataset and class, missing clips, folds); "
                                              "train nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Epochs per fold (of the first stage: the CNN of kim2017, lfm, clfm). Default: the model's recipe.")
@click.option("--temporal-epochs", type=click.IntRange(min=1),
              help="kim2017, lfm, clfm: epochs of the second (LSTM) stage. Default: the model's recipe.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Mini-batch size of the first stage (kim2017: clips, each with its 5 state frames). "
                   "Default: the model's recipe.")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True),
              help="Initial learning rate of the first stage. Default: the model's recipe.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd", "rmsprop"]),
              help="Optimiser of the first stage. Default: the model's recipe.")
@click.option("--weight-decay", type=FiniteFloatRange(min=0),
              help="L2 coefficient of the first stage's optimiser (gradient += wd * w). Default: the model's recipe.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when available (with mixed precision), else CPU.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of every fold.")
@click.option("--in-memory", is_flag=True, help="Hold the needed features in RAM (small stores).")
@click.option("--no-augment", is_flag=True,
              help="Switch off the on-the-fly augmentation (STRCN α/frame subsets; Kim and Nag flips, rotations, "
                   "shifts and scales).")
@click.option("--patience", type=click.IntRange(min=1),
              help="Early stopping after N epochs without improvement: of the validation UF1 with --val-subjects, "
                   "else of the training loss. Default: off, as in the papers.")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="Model constructor argument, e.g. n_maps=64 for STRCN. Repeatable.")
@click.option("--recipe-option", "recipe_options", multiple=True, metavar="NAME=VALUE",
              help="A named option of the model's recipe, e.g. terms=E1,E2 (Kim Table 6) or means=batch for kim2017, "
                   "mask=global for strcn-a, augmentation=scale for strcn-g; each option's default is the paper's "
                   "way, and an unknown NAME is answered with the model's options. Repeatable.")
@click.option("--folds", type=click.IntRange(min=1),
              help="Run only N folds (quick checks): the first ones, in turn from each dataset tested.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Run folder to write. Default: runs/MODEL-STORES-LABELS-PROTOCOL. A killed run started again "
                   "with the same settings keeps its finished folds.")
@click.option("--overwrite", is_flag=True, help="Replace a finished or unfinished run in --out (start over).")
@click.option("--data-root", "data_root_opt", metavar="DIR",
              help="Where stores/ live. Default: $MEPIPE_DATA or ./data.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar per fold.")
def train(model, plugins, stores, store_ids, labels, label_version, protocol, final, train_datasets, test_dataset,
          composite_list, strict, val_subjects, dry_run, as_json, epochs, temporal_epochs, batch_size, lr, optimizer, weight_decay,
          device, seed, in_memory, no_augment, patience, model_args, recipe_options, folds, workers, out,
          overwrite, data_root_opt, progress):
    """Train a network from one or more feature stores under an evaluation protocol.

    Writes RUN/report.json (figures whole and per dataset, folds, parameters,
    the plan, store ids), RUN/confusion.png, RUN/curves.png,
    RUN/checkpoints/fold-*.pt (two-stage models also fold-*-stage1.pt, the
    CNN after its own stage; nag2019 also RUN/spotting.png), and
    RUN/folds/fold-*.json as each fold finishes, so a killed run resumes.
    """
    from mepipe.train.plan import format_plan, plan_run
    from mepipe.train.report import format_report
    from mepipe.train.run import RunParams, run_training

    if plugins:
        from mepipe.train.models import import_plugin

        for plugin in plugins:
            import_plugin(plugin)
    _check_names(model, labels)
    if as_json and not dry_run:
        raise click.UsageError("--json prints the plan of --dry-run; add --dry-run")
    if final:
        if protocol not in ("loso", "final"):
            raise click.UsageError(f"--final trains on everyone; it does not go with --protocol {protocol}")
        protocol = "final"
    stores = stores or (str(store_path(data_root(data_root_opt), "demo")),)
    out = out or _default_out(model, stores, labels, protocol)
    params = RunParams(model=model, store=stores, store_ids=store_ids, labels=labels, label_version=label_version,
                       protocol=protocol,
                       train_datasets=train_datasets, test_dataset=test_dataset,
                       composite_list=_composite_list(composite_list), strict=strict, val_subjects=val_subjects,
                       out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                       weight_decay=weight_decay, device=device, seed=seed, in_memory=in_memory,
                       folds=folds, augment=not no_augment, model_args=_model_args(model_args),
                       temporal_epochs=temporal_epochs, recipe_options=_pairs(recipe_options, "--recipe-option"),
                       patience=patience, workers=workers, progress=progress, overwrite=overwrite)
    plan = plan_run(params)
    if dry_run:
        click.echo(json.dumps(plan.describe(), indent=2) if as_json else format_plan(plan.describe()))
        return
    report = run_training(params, plan)
    click.echo(format_report(report))
    click.echo(f"run: {out}")


@click.command("evaluate")
@click.argument("run", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--predictions", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Score the --out folder of mepipe predict against --store's annotations instead: MEGC spotting "
                   "F1, analysis F1 of the true-positive intervals and STRS (MEGC 2024); also writes "
                   "PREDICTIONS/score.json.")
@click.option("--store", metavar="PATH|URL", help="With --predictions: the long-video store holding the truth.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json (or the score) instead of the summary.")
@click.option("--no-plots", is_flag=True, help="Do not redraw confusion.png and curves.png.")
def evaluate(run, predictions, store, as_json, no_plots):
    """Reprint the figures of a finished run (mepipe train or mepipe spot) and redraw its plots, or score predictions.

    \b
    mepipe evaluate RUN
    mepipe evaluate --predictions DIR --store STORE
    """
    from mepipe.train.report import format_report, plot_run, read_report
    from mepipe.train.spotters.report import format_spot_report, is_spot_report, read_spot_report

    if predictions is not None:
        if run is not None or store is None:
            raise click.UsageError("--predictions takes --store STORE and no RUN")
        from .predict_cmd import evaluate_predictions

        evaluate_predictions(predictions, store, as_json)
        return
    if run is None or store is not None:
        raise click.UsageError("give a RUN folder (or --predictions DIR --store STORE)")

    if is_spot_report(run):
        report = read_spot_report(run)
        click.echo(json.dumps(report, indent=2) if as_json else format_spot_report(report))
        return
    report = read_report(run)
    if not no_plots:
        plot_run(run, report)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@click.command("saliency", short_help="SHCNN saliency map of one test clip of a run.")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("clip")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG file to write.")
@click.option("--frame", type=click.IntRange(min=0),
              help="Flow field index (field t: frame 0 -> t + 1). Default: the field ending at the apex.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Device for the gradient.")
def saliency(run, clip, out, frame, device):
    """SHCNN saliency map (Miao eq. 9-12, shrinkage M = max|o|) of one test clip of a run."""
    from mepipe.train.explain import draw_saliency, saliency_map

    try:
        result = saliency_map(run, clip, frame=frame, device=device)
    except (KeyError, ValueError, IndexError) as err:
        raise click.UsageError(str(err.args[0] if err.args else err)) from None
    draw_saliency(result, out)
    click.echo(f"{out}: {clip} field {result.frame} (fold {result.fold}), true {result.true}, "
               f"predicted {result.predicted}")


def register(cli_group: click.Group) -> None:
    """Add ``train``, ``evaluate`` and ``saliency`` to the ``mepipe`` group."""
    for command in (train, evaluate, saliency):
        cli_group.add_command(command)
