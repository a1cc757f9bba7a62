"""Stages declare themselves: a new stage is one file, a kernel sees only what its key covers, names are facts once."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import build_options
from mepipe.featurestore import FEATURES, open_store
from mepipe.featurestore import features as feature_table
from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.features import DIMS, FeatureDef
from mepipe.pipeline.build import run_build
from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.graph import plan_build
from mepipe.pipeline.stages import (STAGES, ReadParams, StageOutput, UndeclaredRead, default_params, figure_names,
                                    groups, register_stage, stages_for)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry():
    """The stage registry and feature table as they are, restored after the test (which may register stages)."""
    stages, table = dict(STAGES), dict(FEATURES)
    yield
    STAGES.clear()
    STAGES.update(stages)
    FEATURES.clear()
    FEATURES.update(table)


@pytest.fixture
def toy_stage(registry):
    """The toy stage of ``tests/toy_stage.py``, registered for one test only."""
    sys.modules.pop("toy_stage", None)
    yield importlib.import_module("toy_stage")
    sys.modules.pop("toy_stage", None)


def test_a_new_stage_in_one_file_builds_and_reads_back(toy_stage, store_copy, small_demo):
    assert "toy" in STAGES and "toy" in groups() and "toy_smoothed" in FEATURES
    assert stages_for(["toy"]) == ["landmarks", "align", "magnify", "apex", "toy"]
    params = {**default_params(), "toy": toy_stage.ToyParams(window=5)}
    report = run_build(build_options(small_demo, store_copy, stages=tuple(stages_for(["toy"])), params=params))
    assert report.exit_code == 0, report.summary()
    assert report.tasks_run == {"toy": 6}  # the stages it reads were cached in the store
    store = open_store(store_copy)
    for sid in store.sample_ids:
        intensity = store.read("intensity", sid).astype(np.float64)
        # the moving average of 5 by hand: the mean of the frames within 2 of each frame
        expected = [intensity[max(t - 2, 0):t + 3].mean() for t in range(len(intensity))]
        np.testing.assert_allclose(store.read("toy_smoothed", sid), expected, rtol=1e-6)
    assert store.record.stages["toy"].params == {"window": 5}
    assert store.record.stages["toy"].upstream == ("apex",)


@pytest.mark.slow
def test_mepipe_build_plugin_features_toy_runs_it_in_worker_processes(registry, store_copy, small_demo,
                                                                     defaults_config, tmp_path):
    """Through the CLI and its local process pool: each worker imports the toy module when it unpickles the task."""
    from mepipe.cli.main import cli

    sys.modules.pop("toy_stage", None)
    plugin = str(Path(__file__).with_name("toy_stage.py"))
    try:
        result = CliRunner().invoke(cli, ["build", "--plugin", plugin, "--dataset", "demo", "--root", str(small_demo),
                                          "--store", str(store_copy), "--config", str(defaults_config),
                                          "--features", "toy", "--workers", "1", "--no-progress"])
        assert result.exit_code == 0, result.output
        assert "stages run:    toy 6" in result.output
        store = open_store(store_copy)
        sid = store.sample_ids[0]
        assert "toy_smoothed" in store.features and store.read("toy_smoothed", sid).dtype == np.float32
        png = tmp_path / "toy.png"
        shown = CliRunner().invoke(cli, ["show", "--plugin", plugin, str(store_copy), sid, "--feature", "toy_smoothed",
                                         "--out", str(png)])
        assert shown.exit_code == 0 and png.stat().st_size > 0, shown.output
    finally:
        sys.modules.pop("toy_stage", None)
    missing = CliRunner().invoke(cli, ["config", "--plugin", str(tmp_path / "absent.py")])
    assert missing.exit_code == 2 and "absent.py: no such file" in missing.output


@dataclass(frozen=True)
class SneakyParams:
    """A stage whose kernel reads the lfm stage's lag without declaring it."""

    gain: float = 1.0


SNEAKY = FeatureDef("sneaky_curve", "sneaky", ("frame",), "float32", "1", "scaled intensity", "a test's")


def _sneaky(ctx, inputs, params, read):
    return StageOutput({SNEAKY.name: inputs["intensity"] * params.gain * read["lfm"].lag_fps_divisor})


def test_a_kernel_reading_an_undeclared_stage_is_refused_not_silently_unkeyed(registry, store_copy, small_demo):
    register_stage(name="sneaky", version="1", params=SneakyParams, kernel=_sneaky, reads=("apex",),
                   inputs=(feature_table.INTENSITY,), writes=(SNEAKY,))
    params = default_params()
    # what would go wrong: lfm's parameters are nowhere in the sneaky stage's key ...
    ctx = ClipContext("s", ("a.png",), (1,), None, 200.0, (None, None, None))
    keys = [plan_build(_NoStore(), [ctx], ["landmarks", "align", "magnify", "apex", "sneaky"],
                       {**params, "lfm": dataclasses.replace(params["lfm"], lag_fps_divisor=d)}).keys[("s", "sneaky")]
            for d in (25.0, 12.5)]
    assert keys[0] == keys[1]
    # ... so reading them is refused: the clip fails with a sentence naming the stage and what to declare
    report = run_build(build_options(small_demo, store_copy, stages=("sneaky",), params=params))
    assert report.exit_code == 1 and {f["stage"] for f in report.failures} == {"sneaky"}
    reason = report.failures[0]["reason"]
    assert "UndeclaredRead: stage 'sneaky' read the parameters of 'lfm'" in reason
    assert "add 'lfm' to its reads=" in reason
    assert "sneaky_curve" not in open_store(store_copy).features


class _NoStore:
    """A writer that holds nothing, for planning keys without a store."""

    def stored_key(self, sample, feature):
        return None


def test_read_params_hold_exactly_the_declared_stages():
    read = ReadParams("kim", {"align": 1, "apex": 2})
    assert dict(read) == {"align": 1, "apex": 2} and len(read) == 2
    with pytest.raises(UndeclaredRead, match=r"stage 'kim' read the parameters of 'magnify'.*reads: align, apex"):
        read["magnify"]


def test_the_key_of_a_stage_chains_exactly_the_stages_it_reads():
    """flow_onset_apex_magnified reads magnify's alphas: it declares magnify, so magnify's key is in its key."""
    stage = STAGES["flow_onset_apex_magnified"]
    assert "magnify" in stage.reads
    params = default_params()
    own, read = stage.kernel_params(params)
    assert own is params[stage.name] and set(read) == set(stage.reads)
    keys = {"align": "k1", "magnify": "k2", "apex": "k3", "lfm": "k4"}
    assert stage.upstream_keys(keys) == {"align": "k1", "magnify": "k2", "apex": "k3"}
    assert stage_key(stage.name, stage.version, stage.key_params(params), stage.upstream_keys(keys)) != \
        stage_key(stage.name, stage.version, stage.key_params(params), {**stage.upstream_keys(keys), "magnify": "k5"})


@pytest.mark.parametrize("change, message", [
    ({"reads": ("nope",)}, r"reads \['nope'\], which are not registered before it"),
    ({"inputs": (feature_table.LFM,)}, r"loads \['lfm'\], written by stages it does not declare"),
    ({"writes": (feature_table.INTENSITY,)}, r"must write features of its own, got intensity \(stage 'apex'\)"),
    ({"params": dict}, "params must be a frozen dataclass"),
    ({"name": "apex"}, r"stage name 'apex' is already registered by mepipe\.pipeline\.stages\.apex\.ApexParams"),
])
def test_a_declaration_that_contradicts_the_registry_is_refused(registry, change, message):
    declaration = {"name": "sneaky", "version": "1", "params": SneakyParams, "kernel": _sneaky, "reads": ("apex",),
                   "inputs": (feature_table.INTENSITY,), "writes": (SNEAKY,)}
    if change.get("name") == "apex":
        change = {**change, "reads": ("align",), "inputs": (),
                  "writes": (dataclasses.replace(SNEAKY, stage="apex"),)}
    with pytest.raises(ValueError, match=message):
        register_stage(**{**declaration, **change})
    assert "sneaky" not in STAGES


def test_a_feature_name_taken_by_another_definition_is_refused(registry):
    with pytest.raises(ValueError, match="feature 'intensity' is already defined differently"):
        feature_table.register(dataclasses.replace(feature_table.INTENSITY, units="percent"))
    feature_table.register(feature_table.INTENSITY)  # the same definition again is no change
    assert FEATURES["intensity"] is feature_table.INTENSITY


def test_groups_and_figures_come_from_the_stages_declarations():
    assert groups()["flow"] == ("flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each", "flow_consecutive")
    assert set(groups()) == {"core", "magnify", "flow", "lfm", "appearance", "kim", "spotting"}
    assert figure_names() == sorted(["flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each",
                                     "flow_consecutive", "lfm", "magnified", "intensity", "mask"])
    assert {STAGES[n].placement.clips_per_task for n in ("flow_first_each", "flow_consecutive")} == {32}


# --- feature names are facts once -------------------------------------------------------------

LITERAL_ALLOWED = {
    "featurestore/features.py",  # the feature table
    "pipeline/demo/build_config.py",  # the demo's {stage: params} config (the dataset-adapter helper's file)
}
"""Files outside ``pipeline/stages/`` that may spell a feature name as a string."""

def _string_literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module's code with their lines (docstrings, which may show examples, and ``__all__``'s
    names of functions, left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    exported = {id(item) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                for item in ast.walk(node.value)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings | exported]


def test_feature_names_are_referenced_through_their_definitions():
    """Outside the feature table and the stage modules, code names a feature by its FeatureDef (``CROPS.name``),
    never by retyping the string. Names that are also dims (``frame``, ``state``) are left out: a literal of
    them may mean the dim or an attribute."""
    names = {n for n in FEATURES if n not in DIMS}
    offenders = []
    for package in ("pipeline", "featurestore", "cli", "train"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in LITERAL_ALLOWED or rel.startswith("pipeline/stages/"):
                continue
            offenders += [f"{rel}:{line} {value!r}" for line, value in _string_literals(path) if value in names]
    assert not offenders, "feature names retyped as strings (use the FeatureDef):\n" + "\n".join(offenders)


def test_the_literal_check_finds_a_retyped_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Reads flow_first_each (a docstring may name it)."""\nFEATURE = "flow_first_each"\n')
    assert _string_literals(module) == [(2, "flow_first_each")]
