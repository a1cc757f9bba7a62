"""`mepipe config --defaults` round-trips through `--config`; `mepipe build --dry-run` plans from cache keys."""
import dataclasses

import yaml
from click.testing import CliRunner

from mepipe.cli.config import read_config
from mepipe.cli.main import cli
from mepipe.pipeline.defaults import field_meanings, params_yaml
from mepipe.pipeline.stages import default_params, params_from_mapping
from mepipe.pipeline.stages.flow import TVL1Params
from mepipe.pipeline.stages.flow_first_each import FirstEachFlowParams


def _leaves(params, prefix=""):
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        yield f"{prefix}{f.name}", type(params), f.name


def test_printed_defaults_read_back_as_the_defaults(tmp_path):
    result = CliRunner().invoke(cli, ["config", "--defaults"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "params.yaml"
    path.write_text(result.output)
    assert params_from_mapping(read_config(path)) == default_params()
    assert set(yaml.safe_load(result.output)) == set(default_params())


def test_every_parameter_is_printed_with_its_meaning():
    text = params_yaml(default_params())
    for stage, params in default_params().items():
        for path, owner, name in _leaves(params):
            assert field_meanings(owner).get(name), f"{stage}.{path} has no meaning in its class's docstring"
    assert "    lambda_: 0.15  # Weight of the data term (smaller = smoother flow)" in text
    assert "  compute_at: crop  # ``\"size\"``: the crops are resized to ``size``" in text


def test_meanings_come_from_the_class_and_its_bases():
    meanings = field_meanings(FirstEachFlowParams)
    assert meanings["size"] == "(W, H) of the stored field"  # documented on FlowParams only
    assert meanings["compute_at"].startswith("``\"size\"``")
    tvl1 = field_meanings(TVL1Params)  # two names documented together share the entry
    assert tvl1["inner_iterations"] == tvl1["outer_iterations"] == (
        "Iteration caps of the inner and outer loops (at most their product per warp)")


def test_a_changed_config_prints_its_resolved_values_and_reads_back(tmp_path):
    given = tmp_path / "given.yaml"
    given.write_text("flow_first_each:\n  size: [32, 32]\n  tvl1: {nscales: 3}\nmagnify: {alphas: [5, 8]}\n")
    result = CliRunner().invoke(cli, ["config", str(given)])
    assert result.exit_code == 0, result.output
    printed = tmp_path / "printed.yaml"
    printed.write_text(result.output)
    resolved = params_from_mapping(read_config(printed))
    assert resolved == params_from_mapping(read_config(given))
    assert resolved["flow_first_each"].size == (32, 32) and resolved["magnify"].alphas == (5.0, 8.0)


def test_dry_run_lists_stale_and_cached_tasks_and_writes_nothing(store_copy, small_demo, tmp_path):
    fresh = tmp_path / "new.zarr"
    args = ["build", "--dataset", "demo", "--root", str(small_demo), "--features", "landmarks,align,apex",
            "--dry-run", "--scheduler", "sync"]
    new = CliRunner().invoke(cli, [*args, "--store", str(fresh)])
    assert new.exit_code == 0, new.output
    assert not fresh.exists()
    assert new.output.splitlines()[0] == "24 tasks would run, 0 are cached"
    assert "run     001_1_1  landmarks" in new.output
    config = tmp_path / "c.yaml"
    # The store was built with the default alpha list; restate it over the demo's own three alphas.
    config.write_text("apex: {threshold: 0.2}\nmagnify: {alphas: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]}\n")
    old = CliRunner().invoke(cli, [*args, "--store", str(store_copy), "--config", str(config)])
    assert old.exit_code == 0, old.output
    lines = old.output.splitlines()
    assert lines[0] == "6 tasks would run, 18 are cached"
    assert "  apex: 6 to run, 0 cached" in lines and "  magnify: 0 to run, 6 cached" in lines
    assert "cached  001_1_1  align" in lines and "run     001_1_1  apex" in lines
