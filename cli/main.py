"""The ``mepipe`` command line: a thin layer over the pipeline, store and training APIs."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from .errors import PrintableFormatter, ReportingGroup
from .paths import data_root, dataset_root, store_path
from .predict_cmd import register as register_predict_commands
from .reproduce_cmd import register as register_reproduce_commands
from .spot_cmd import register as register_spot_commands
from .store_cmd import register as register_store_commands
from .train_cmd import register as register_train_commands


@click.group(cls=ReportingGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info and tracebacks of errors, -vv debug, with distributed's own log).")
@click.version_option(package_name="mepipe", prog_name="mepipe", message="%(prog)s %(version)s")
def cli(verbose: int) -> None:
    """mepipe: micro-expression datasets -> shareable Zarr feature stores -> published networks.

    \b
    The networks and label schemes come from their papers; `mepipe train --help`
    lists them with authors, year and DOI. The README's "Label schemes" says
    what each scheme (casme2-5, samm-3, strcn-4, megc-3, objective, and one of
    each corpus's own emotions) keeps and merges; its "Papers" gives the full
    references.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)], handlers=[handler])


def _adapter_names() -> list[str]:
    from mepipe.pipeline.datasets import adapter_names

    return adapter_names()


def _import_stage_plugins(ctx, param, specs) -> None:
    """Import the modules that register stages, before any other option is checked against the registry.

    A ``.py`` file is imported by its name with its folder first on
    ``sys.path``, the path a build's worker processes start with, so they
    import the same module when they receive the stage's tasks.
    """
    import importlib

    for spec in specs:
        name = spec
        if spec.endswith(".py"):
            path = Path(spec).resolve()
            if not path.is_file():
                raise click.BadParameter(f"{spec}: no such file", param_hint="--plugin")
            sys.path.insert(0, str(path.parent))
            name = path.stem
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 -- any failure of the plugin's code is reported as the plugin's
            raise click.BadParameter(f"{spec} failed to import: {type(err).__name__}: {err}",
                                     param_hint="--plugin") from None


stage_plugin_option = click.option(
    "--plugin", multiple=True, metavar="MODULE|FILE.py", expose_value=False, is_eager=True,
    callback=_import_stage_plugins,
    help="A module (importable name or .py file) that registers stages of its own; they are then built, "
         "configured and drawn like the built-in ones (example: tests/toy_stage.py). Repeatable.")


@cli.command()
@stage_plugin_option
@click.option("--dataset", required=True, type=click.Choice(_adapter_names()),
              help="Dataset adapter: how the root's folders and annotation sheet are read.")
@click.option("--root", type=click.Path(path_type=Path),
              help="Dataset folder. Default: DATA_ROOT/datasets/DATASET (the demo is synthesised there if absent).")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Annotation sheet, when it is not inside the root.")
@click.option("--store", type=click.Path(path_type=Path),
              help="Output store folder. Default: DATA_ROOT/stores/DATASET.zarr.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Worker processes of the local Dask pool (one thread each).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on a dask.distributed scheduler (tcp://host:8786) instead of local processes; "
                   "'sync' runs everything in this process (debugging).")
@click.option("--features", "stages", metavar="LIST",
              help="Comma-separated features to build (plus what they need): group, stage or feature names, e.g. "
                   "flow, flow_first_each, clfm (an unknown name is refused with the known ones). Default: all. "
                   "Long videos (samm-lv, casme-sq, demo-lv, manifest with unit=videos) build landmarks, align, "
                   "kim, flow_consecutive, flow_apart and roi_motion, window by window.")
@click.option("--force", multiple=True, metavar="STAGE",
              help="Recompute STAGE (and what depends on it) even if cached. Repeatable.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML/TOML file of stage parameters ({stage: {param: value}}); recorded in the store. The demo "
                   "corpora build with three alphas, no frame-subset flows, the first->each flow at 112 px and a "
                   "cheaper TV-L1 (pipeline/demo/build_config.py); values given here override those.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Adapter option, e.g. release=cropped for casme2, modality=NIR for smic, unit=clips for samm-lv "
                   "or casme-sq (short clips of their intervals instead of long videos), unit=videos and "
                   "intervals=FILE for a manifest of long videos. Repeatable.")
@click.option("--data-root", "data_root_opt", metavar="DIR",
              help="Where datasets/ and stores/ live. Default: $MEPIPE_DATA or ./data.")
@click.option("--fingerprint", type=click.Choice(["stat", "content"]), default="stat", show_default=True,
              help="How unchanged sources are recognised: file names, sizes and mtimes (fast), or also the sha256 "
                   "of every source file (catches files rewritten in place with size and mtime kept).")
@click.option("--allow-outside-root", is_flag=True,
              help="manifest dataset: build paths that lead (also through symlinks) outside the root and the "
                   "manifest's folder; by default such rows fail.")
@click.option("--face", metavar="largest|center|N",
              help="Whose face to follow when a clip shows several people: the largest (default), the one nearest "
                   "the frame centre, or the N-th from the left (1 = leftmost). Recorded as landmarks.face.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show the progress bar (on a terminal; elsewhere a line every few seconds).")
@click.option("--estimate/--no-estimate", default=True, show_default=True,
              help="Estimate the CPU time of the stale tasks first, by running each stage on one clip or on 64 "
                   "frames of one long video (seconds), print it and give the progress bar an ETA.")
@click.option("--dry-run", is_flag=True,
              help="Print which (clip, stage) tasks would run and why (which parameter, code version or source "
                   "changed), which are cached, and what running them would cost per stage; write nothing.")
@click.option("--prune", is_flag=True,
              help="Remove the store's clips that the dataset no longer lists (rows deleted from the sheet); "
                   "without it such a build is refused. The report names every clip removed.")
@click.option("--replace", is_flag=True,
              help="Rebuild a store made from another dataset, root or adapter options from this one: its clips "
                   "this dataset lacks and the features of stages this build does not run are removed. Without "
                   "it such a build is refused.")
def build(dataset, root, annotations, store, workers, scheduler, stages, force, config, options, data_root_opt,
          fingerprint, allow_outside_root, face, progress, estimate, dry_run, prune, replace):
    """Build (or update) a feature store from a dataset.

    Only stale work runs: each clip's stage is cached under a key of its
    parameters, code version and inputs. A killed or interrupted build
    resumes on rerun. Exits 1 if any clip failed (the others are stored; see
    the report).
    """
    from mepipe.featurestore.features import LANDMARKS
    from mepipe.pipeline.build import BuildOptions, run_build
    from mepipe.pipeline.datasets import adapter_unit
    from mepipe.pipeline.demo.build_config import build_config
    from mepipe.pipeline.stages import params_from_mapping

    from .config import read_config

    data = data_root(data_root_opt)
    root = root or dataset_root(data, dataset)
    store = store or store_path(data, dataset)
    _ensure_demo(dataset, root)
    if not Path(root).is_dir():
        raise click.UsageError(f"dataset root {root} does not exist; pass --root (see README: getting the datasets)")
    given = read_config(config)
    config_values = build_config(dataset, given)
    if config is not None:
        _note_demo_settings_overridden(dataset, config, given)
    if face is not None:
        stage = LANDMARKS.stage
        config_values = {**config_values, stage: {**config_values.get(stage, {}), "face": face}}
    adapter_options = _parse_options(options)
    params = params_from_mapping(config_values, adapter_unit(dataset, adapter_options))
    if allow_outside_root:
        if dataset != "manifest":
            raise click.UsageError("--allow-outside-root applies to the manifest dataset only")
        adapter_options["allow_outside_root"] = True
    opts = BuildOptions(dataset=dataset, root=Path(root), store=Path(store), annotations=annotations,
                        workers=workers, scheduler=scheduler,
                        stages=tuple(s.strip() for s in stages.split(",")) if stages else None,
                        force=tuple(force), params=params, progress=progress,
                        adapter_options=adapter_options, fingerprint=fingerprint, estimate=estimate,
                        replace=replace, prune=prune)
    if dry_run:
        from mepipe.pipeline.build import preview_build

        click.echo(preview_build(opts).format())
        return
    report = run_build(opts, on_estimate=lambda e: click.echo("\n".join(e.lines())))
    click.echo(report.summary())
    click.echo(f"report: {Path(store) / '.mepipe' / 'build-report.json'}")
    sys.exit(report.exit_code)


def _note_demo_settings_overridden(dataset: str, config: Path, given: dict) -> None:
    """Say when a config file replaces the settings a demo corpus builds with (a file of every default does: the
    papers' settings, several times the demo's cost), on stderr, before anything runs."""
    from mepipe.featurestore.cachekey import canonical
    from mepipe.pipeline.demo.build_config import BUILD_CONFIG, build_config
    from mepipe.pipeline.staleness import param_changes
    from mepipe.pipeline.stages import params_from_mapping

    own = build_config(dataset, {})
    if not own:
        return
    demo, chosen = params_from_mapping(own), params_from_mapping(build_config(dataset, given))
    changed = [change for stage, values in BUILD_CONFIG.items()
               for change in param_changes(stage, canonical(demo[stage]), chosen[stage], fields=values)]
    if changed:
        click.echo(f"note: {config} replaces {len(changed)} of the {dataset} corpus's own build settings "
                   f"({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''}); `mepipe config --defaults "
                   f"--dataset {dataset}` prints the demo's settings to start a config from", err=True)


def _parse_options(options) -> dict:
    out = {}
    for item in options:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _ensure_demo(dataset: str, root: Path) -> None:
    """Synthesise a demo corpus (``demo``, ``demo-casme2``, ``demo-casme3``, ``demo-smic``, ``demo-lv``) into
    ``root`` when it is not there."""
    from mepipe.pipeline.demo import DEMO_NAMES, META_NAME, write_named_demo

    if dataset in DEMO_NAMES and not (Path(root) / META_NAME).exists():
        click.echo(f"writing the synthetic {dataset} dataset to {root}", err=True)
        write_named_demo(dataset, Path(root))


@cli.command("config")
@stage_plugin_option
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--defaults", is_flag=True,
              help="Print every stage's default parameters (the default when no CONFIG_FILE is given).")
@click.option("--dataset", type=click.Choice(_adapter_names()),
              help="Print the parameters a build of this dataset starts from: the papers' defaults, except for the "
                   "demo corpora, which build with cheaper settings of their own.")
def config_cmd(config_file, defaults, dataset):
    """Print stage parameters as the YAML that `mepipe build --config` reads, each with its meaning.

    With no argument (or --defaults), every stage's defaults (the papers'
    settings); with --dataset demo, the demo's own cheaper settings; with
    CONFIG_FILE, the parameters that file resolves to (checked as a build
    checks it). The output can be saved, edited and passed back with
    --config: every value in it then applies, over a demo's settings too.
    """
    from mepipe.pipeline.defaults import params_yaml
    from mepipe.pipeline.demo.build_config import build_config
    from mepipe.pipeline.stages import params_from_mapping

    from .config import read_config

    if defaults and config_file is not None:
        raise click.UsageError("give --defaults or a CONFIG_FILE, not both")
    start = build_config(dataset or "", {})
    if config_file is None:
        header = ("Every stage's parameters with their defaults, the papers' settings (mepipe config --defaults).\n"
                  "Building a demo corpus with this file builds it with these settings, not its cheaper own\n"
                  "(mepipe config --defaults --dataset demo prints those).\n" if not start else
                  f"The parameters a {dataset} build starts from (mepipe config --defaults --dataset {dataset}):\n"
                  f"the papers' defaults, except the corpus's own cheaper settings of\n{', '.join(start)}.\n")
        click.echo(params_yaml(params_from_mapping(start), header + "Edit and pass back with: mepipe build --config "
                                                                      "THIS_FILE"), nl=False)
        return
    header = f"Stage parameters {config_file} resolves to (defaults where it says nothing)."
    click.echo(params_yaml(params_from_mapping(build_config(dataset or "", read_config(config_file))), header),
               nl=False)


DEMO_CHOICES = ["demo", "demo-casme2", "demo-casme3", "demo-smic", "demo-lv"]
"""``mepipe demo --dataset`` choices: pipeline.demo's DEMO_NAMES, listed here so that ``--help`` imports no demo
code."""


@cli.command()
@click.option("--dataset", "name", type=click.Choice(DEMO_CHOICES), default="demo", show_default=True,
              help="Which demo: SAMM, CASME II (raw), CAS(ME)³ part A or SMIC-HS layout, or demo-lv: long videos "
                   "of the demo's people in the SAMM Long Videos layout (spotting).")
@click.option("--out", type=click.Path(path_type=Path), help="Folder to write. Default: DATA_ROOT/datasets/DATASET.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--subjects", type=click.IntRange(min=1), help="Number of synthetic subjects (at most the preset's).")
@click.option("--clips", type=click.IntRange(min=1), help="Clips per subject and class (short-clip demos).")
@click.option("--videos", type=click.IntRange(min=1), help="Videos per subject (demo-lv).")
@click.option("--data-root", "data_root_opt", metavar="DIR", help="Where datasets/ live. Default: $MEPIPE_DATA or ./data.")
def demo(name, out, seed, subjects, clips, videos, data_root_opt):
    """Write a synthetic demo dataset in its real layout and annotation format, with known ground truth."""
    from mepipe.pipeline.demo import write_named_demo

    out = out or dataset_root(data_root(data_root_opt), name)
    try:
        summary = write_named_demo(name, Path(out), seed=seed, n_subjects=subjects, n_clips=clips,
                                   videos_per_subject=videos)
    except (ValueError, FileExistsError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"demo dataset written to {out}: {summary}")


@cli.command()
@click.argument("store")
@click.option("--clips", is_flag=True, help="List every clip: id, dataset, subject, frames, status and why.")
@click.option("--features", is_flag=True,
              help="List every feature: scope, dims, shape per clip, dtype, units and meaning.")
@click.option("--json", "as_json", is_flag=True, help="Print the full information (or the lists) as JSON.")
@click.option("--store-id", "expect_id", metavar="ID",
              help="Refuse the store unless its id is this (see `store verify`).")
def info(store, clips, features, as_json, expect_id):
    """What is in a store: its id, clips, features, parameters, sizes, failures."""
    from mepipe.featurestore.info import info_text

    click.echo(info_text(str(store), clips=clips, features=features, as_json=as_json, expect_id=expect_id))


class RegistryChoice(click.Choice):
    """A choice among names a registry holds, read when the option is checked or its help shown.

    Reading late lets a stage registered after this module was imported
    (a plug-in module) be chosen, and keeps ``mepipe --help`` from importing
    every stage.
    """

    def __init__(self, names):
        self._names = names
        super().__init__(())

    @property
    def choices(self):
        return tuple(self._names())

    @choices.setter
    def choices(self, value):
        """Ignored: the names come from the registry."""


def _figure_names() -> list[str]:
    from mepipe.pipeline.stages import figure_names

    return figure_names()


@cli.command()
@stage_plugin_option
@click.argument("store")
@click.argument("clip")
@click.option("--feature", required=True, type=RegistryChoice(_figure_names),
              help="What to draw: a flow field (colour-coded and arrows), LFM/CLFM maps, magnified vs original "
                   "frames, the intensity curve with onset/apex/offset, or the STRCN-A mask over the face: the "
                   "figure each stage declares.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG file to write.")
def show(store, clip, feature, out):
    """Draw one clip's feature from a store as a PNG."""
    from mepipe.featurestore import open_store
    from mepipe.pipeline.figures import require, save
    from mepipe.pipeline.stages import STAGES, figure

    opened = open_store(str(store))
    drawn_by = next(s for s in STAGES.values() if s.figure and s.figure.name == feature)
    require(opened, clip, *(f for f in drawn_by.writes if f.scope == "clip"))  # a plug-in's figure too
    save(figure(feature).draw(opened, clip), out)
    click.echo(f"wrote {out}")


@cli.command("export")
@click.argument("store")
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Frame table to write, TABLE.parquet or TABLE.csv; the clip table goes beside it as "
                   "TABLE-clips.parquet (or .csv).")
@click.option("--features", metavar="LIST",
              help="Comma-separated per-frame features: face_found, landmarks, landmarks_aligned, face_box, "
                   "intensity, state, stddiff, ncc. Default: face_found, landmarks, landmarks_aligned, intensity, "
                   "state (those the store has).")
@click.option("--store-id", "expect_id", metavar="ID", help="Refuse the store unless its id is this.")
@click.option("--overwrite", is_flag=True, help="Replace the tables if they exist (without it they are refused).")
def export(store, to, features, expect_id, overwrite):
    """Flat tables of a store for pandas, R or a spreadsheet.

    One row per frame (sample, subject, dataset, frame number, timestamp,
    face_found, landmarks as x_0..x_67, y_0..y_67 in source pixels and
    x_aligned_0..y_aligned_67 in crop pixels, as OpenFace and py-feat name
    them, intensity, state), and one row per clip (ground truth and
    estimated onset/apex/offset, SFEM, status, flags). In a CSV, text
    cells that begin like a spreadsheet formula (= + - @) get a leading '.
    """
    from mepipe.featurestore import open_store
    from mepipe.featurestore.export import export_tables

    chosen = [f.strip() for f in features.split(",")] if features else None
    result = export_tables(open_store(str(store), expect_id=expect_id), to, chosen, overwrite=overwrite)
    click.echo(f"wrote {result.frames_path} ({result.frame_shape[0]} frames x {result.frame_shape[1]} columns) "
               f"and {result.clips_path} ({result.clip_shape[0]} clips x {result.clip_shape[1]} columns)")


register_store_commands(cli)
register_train_commands(cli)
register_spot_commands(cli)
register_reproduce_commands(cli)
register_predict_commands(cli)


def main() -> None:
    cli()
