"""Shared fixtures: a small synthetic demo dataset and a store built from it (once per session)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser):
    parser.addoption("--run-long", action="store_true", help="also run tests marked long (minutes of training)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-long"):
        return
    skip = pytest.mark.skip(reason="minutes of CPU training; pass --run-long to run")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def annotations_dir() -> Path | None:
    """The real SAMM / CASME II sheets beside the repo (../shared/annotations), if present."""
    env = os.environ.get("MEPIPE_ANNOTATIONS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "annotations"
    return path if path.is_dir() else None


def papers_dir() -> Path | None:
    """The papers beside the repo (../shared/papers), if present."""
    path = Path(__file__).resolve().parents[2] / "shared" / "papers"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def small_demo_params():
    from mepipe.pipeline.demo import DemoParams

    return DemoParams(n_subjects=2, n_clips=1)


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory, small_demo_params) -> Path:
    """6 clips (2 subjects x 3 classes) of the synthetic demo; read-only for tests."""
    from mepipe.pipeline.demo import write_demo

    root = tmp_path_factory.mktemp("demo") / "demo"
    write_demo(root, small_demo_params)
    return root


def command_group(*modules: str):
    """A click group holding the commands that ``mepipe.cli.<module>.register`` adds, for CliRunner tests."""
    import importlib

    import click

    from mepipe.cli.errors import ReportingGroup

    @click.group(cls=ReportingGroup)
    def group():
        pass

    for module in modules:
        importlib.import_module(f"mepipe.cli.{module}").register(group)
    return group


def train_cli():
    """A click group holding ``train``, ``evaluate`` and ``saliency``."""
    return command_group("train_cmd")


def wait_for(predicate, timeout: float = 120.0) -> bool:
    """Poll ``predicate`` every 20 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    import time

    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def build_options(root: Path, store: Path, **changes):
    from mepipe.pipeline.build import BuildOptions

    changes = {"scheduler": "sync", "progress": False, "stages": ("landmarks", "align", "apex"), **changes}
    return BuildOptions(dataset="demo", root=root, store=store, **changes)


@pytest.fixture(scope="session")
def defaults_config(tmp_path_factory) -> Path:
    """``mepipe config --defaults`` as a file: a CLI build of a demo corpus given it uses every default
    parameter (as ``build_options`` does) instead of the demo's own build settings."""
    from mepipe.pipeline.defaults import params_yaml
    from mepipe.pipeline.stages import default_params

    path = tmp_path_factory.mktemp("config") / "defaults.yaml"
    path.write_text(params_yaml(default_params()))
    return path


@pytest.fixture(scope="session")
def small_store(tmp_path_factory, small_demo) -> Path:
    """The small demo built in-process with default parameters; copy before changing it."""
    from mepipe.pipeline.build import run_build

    store = tmp_path_factory.mktemp("store") / "demo.zarr"
    report = run_build(build_options(small_demo, store))
    assert report.exit_code == 0, report.summary()
    return store


def demo_build_params():
    """Default parameters with the demo corpora's build settings (``mepipe build --dataset demo``'s): three
    alphas, one onset->apex pair per clip, first->each at 112 px and a cheaper TV-L1; the suite's time budget."""
    from mepipe.pipeline.demo.build_config import BUILD_CONFIG
    from mepipe.pipeline.stages import params_from_mapping

    return params_from_mapping(BUILD_CONFIG)


@pytest.fixture(scope="session")
def full_store(tmp_path_factory, small_demo, small_store) -> Path:
    """The small demo with every feature, built with the demo's settings on top of ``small_store``'s cached core."""
    from mepipe.pipeline.build import run_build

    store = tmp_path_factory.mktemp("full") / "demo.zarr"
    shutil.copytree(small_store, store)
    report = run_build(build_options(small_demo, store, stages=None, params=demo_build_params()))
    assert report.exit_code == 0, report.summary()
    return store


def finish_synthetic_store(writer, dataset: str, **changes) -> None:
    """Mark a store written directly with ``StoreWriter`` complete, with a build record of default parameters.

    ``changes`` replace stage parameters (``magnify={"alphas": (5.0, 8.0), "test_alpha": 5.0}``), so the
    record says what the synthetic arrays were "built" with; the record lists the features the store holds.
    """
    import dataclasses
    import time

    from mepipe.featurestore.cachekey import canonical
    from mepipe.featurestore.manifest import write_manifest
    from mepipe.featurestore.provenance import BuildInfo, BuildRecord, StageRecord
    from mepipe.featurestore.schema import SCHEMA_VERSION
    from mepipe.pipeline.stages import SOURCE, STAGES, default_params

    params = default_params()
    for stage, values in changes.items():
        params[stage] = dataclasses.replace(params[stage], **values)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record = BuildRecord(
        schema_version=SCHEMA_VERSION, mepipe_version="test", dataset=dataset, source_root="synthetic",
        annotations=None, quirks=(), features=tuple(sorted(writer.stored_features())),
        stages={n: StageRecord(s.version, canonical(params[n]), s.outputs, s.reads) for n, s in STAGES.items()},
        shared_params={SOURCE: canonical(params[SOURCE])},
        build=BuildInfo(host="test", user="test", started=now, finished=now, seconds=0.0, scheduler="none",
                        fingerprint="stat", n_samples=0, n_ok=0, n_failed=0))
    writer.update_root_attrs({"state": "complete", **record.to_attrs()})
    writer.consolidate()
    write_manifest(writer.path)


@pytest.fixture
def store_copy(small_store, tmp_path) -> Path:
    dst = tmp_path / "copy.zarr"
    shutil.copytree(small_store, dst)
    return dst


@pytest.fixture
def demo_copy(small_demo, tmp_path) -> Path:
    dst = tmp_path / "demo"
    shutil.copytree(small_demo, dst)
    return dst
