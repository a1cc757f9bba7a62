"""``mepipe train``, ``mepipe evaluate`` and ``mepipe saliency``: training from a store and its results.

Registered on the main group by :func:`register`. Torch and the models are
imported inside the commands, so ``mepipe --help`` stays fast.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from .paths import data_root, store_path

log = logging.getLogger(__name__)


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

    if model not in list_models():
        raise click.BadParameter(f"unknown model {model!r}; known: {', '.join(list_models())}", param_hint="--model")
    if labels not in list_schemes():
        raise click.BadParameter(f"unknown label scheme {labels!r}; known: {', '.join(list_schemes())}",
                                 param_hint="--labels")


@click.command("train")
@click.option("--model", required=True, metavar="NAME",
              help="Network to train: shcnn, strcn-a, strcn-g, kim2017, lfm, clfm or nag2019 (SPEC §3).")
@click.option("--store", type=click.Path(path_type=Path),
              help="Feature store to train from. Default: DATA_ROOT/stores/demo.zarr.")
@click.option("--labels", required=True, metavar="SCHEME",
              help="Label scheme: casme2-5, samm-3, strcn-4, megc-3 or objective (SPEC §5).")
@click.option("--protocol", type=click.Choice(["loso", "lovo", "composite", "cross"]), default="loso",
              show_default=True, help="Evaluation protocol (SPEC §4).")
@click.option("--test-dataset", metavar="NAME", help="With --protocol cross: the dataset tested on (others train).")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Epochs per fold (of the first stage: the CNN of kim2017, lfm, clfm). Default: the model's recipe.")
@click.option("--temporal-epochs", type=click.IntRange(min=1),
              help="kim2017, lfm, clfm: epochs of the second (LSTM) stage. Default: the model's recipe.")
@click.option("--terms", metavar="LIST",
              help="kim2017: objective terms of the CNN stage, e.g. E1,E2 (Kim Table 6). Default: E1,E2,E3,E4,E5.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Mini-batch size of the first stage (kim2017: clips, each with its 5 state frames). "
                   "Default: the model's recipe.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Initial learning rate of the first stage. Default: the model's recipe.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd", "rmsprop"]),
              help="Optimiser of the first stage. Default: the model's recipe.")
@click.option("--weight-decay", type=click.FloatRange(min=0),
              help="L2 coefficient of the first stage's optimiser (gradient += wd * w). Default: the model's recipe.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when available (with mixed precision), else CPU.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of every fold.")
@click.option("--mask", type=click.Choice(["fold", "global"]), default="fold", show_default=True,
              help="STRCN-A mask from each fold's training clips (leak-free) or from all clips (as Xia et al.).")
@click.option("--in-memory", is_flag=True, help="Hold the needed features in RAM (small stores).")
@click.option("--no-augment", is_flag=True,
              help="Switch off the on-the-fly augmentation (STRCN α/frame subsets; Kim and Nag flips, rotations, "
                   "shifts and scales).")
@click.option("--patience", type=click.IntRange(min=1),
              help="Early stopping after N epochs without a lower training loss. Default: off, as in the papers.")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="Model constructor argument, e.g. n_maps=64 for STRCN. Repeatable.")
@click.option("--recipe-option", "recipe_options", multiple=True, metavar="NAME=VALUE",
              help="A named option of the model's recipe, e.g. means=batch for kim2017 or augmentation=scale for "
                   "strcn-g (the paper's way is each option's default). Repeatable.")
@click.option("--folds", type=click.IntRange(min=1), help="Run only the first N folds (quick checks).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Run folder to write. Default: runs/MODEL-STORE-LABELS-PROTOCOL.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --out.")
@click.option("--data-root", "data_root_opt", metavar="DIR",
              help="Where stores/ live. Default: $MEPIPE_DATA or ./data.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar per fold.")
def train(model, store, labels, protocol, test_dataset, epochs, temporal_epochs, terms, batch_size, lr, optimizer,
          weight_decay, device, seed, mask, in_memory, no_augment, patience, model_args, recipe_options, folds, workers,
          out, overwrite, data_root_opt, progress):
    """Train a network from a feature store under an evaluation protocol.

    Writes RUN/report.json (figures, folds, parameters, store fingerprint),
    RUN/confusion.png, RUN/curves.png and RUN/checkpoints/fold-*.pt (two-stage
    models also fold-*-stage1.pt, the CNN after its own stage; nag2019 also
    RUN/spotting.png).
    """
    from mepipe.train.report import format_report
    from mepipe.train.run import RunParams, run_training

    _check_names(model, labels)
    if terms is not None:
        from mepipe.train.models.kim2017_loss import parse_terms

        try:
            terms = parse_terms(terms)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--terms") from None
    store = store or store_path(data_root(data_root_opt), "demo")
    out = out or Path("runs") / f"{model}-{Path(str(store)).stem}-{labels}-{protocol}"
    try:
        params = RunParams(model=model, store=str(store), labels=labels, protocol=protocol, test_dataset=test_dataset,
                           out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                           weight_decay=weight_decay,
                           device=device, seed=seed,
                           mask=mask, in_memory=in_memory, folds=folds, augment=not no_augment,
                           model_args=_model_args(model_args), terms=terms, temporal_epochs=temporal_epochs,
                           recipe_options=_pairs(recipe_options, "--recipe-option"), patience=patience, workers=workers,
                           progress=progress, overwrite=overwrite)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    report = run_training(params)
    click.echo(format_report(report))
    click.echo(f"run: {out}")


@click.command("evaluate")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print report.json instead of the summary.")
@click.option("--no-plots", is_flag=True, help="Do not redraw confusion.png and curves.png.")
def evaluate(run, as_json, no_plots):
    """Reprint the figures of a finished run and redraw its plots."""
    from mepipe.train.report import format_report, plot_run, read_report

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
