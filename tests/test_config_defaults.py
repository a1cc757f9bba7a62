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


def test_dry_run_lists_stale_and_cached_tasks_says_why_and_writes_nothing(store_copy, small_demo, tmp_path):
    fresh = tmp_path / "new.zarr"
    args = ["build", "--dataset", "demo", "--root", str(small_demo), "--features", "landmarks,align,apex",
            "--dry-run", "--scheduler", "sync", "--no-estimate"]
    new = CliRunner().invoke(cli, [*args, "--store", str(fresh)])
    assert new.exit_code == 0, new.output
    assert not fresh.exists()
    assert new.stdout.splitlines()[0] == "24 tasks would run, 0 are cached"
    assert "run     001_1_1  landmarks  (new clip)" in new.stdout.splitlines()
    config = tmp_path / "c.yaml"
    # The store was built with the default alpha list; restate it over the demo's own three alphas.
    config.write_text("apex: {threshold: 0.2}\nmagnify: {alphas: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]}\n")
    old = CliRunner().invoke(cli, [*args, "--store", str(store_copy), "--config", str(config)])
    assert old.exit_code == 0, old.output
    lines = old.stdout.splitlines()
    assert lines[0] == "6 tasks would run, 18 are cached"
    assert "  apex: 6 to run, 0 cached; why: parameter apex.threshold 0.1 -> 0.2 (6)" in lines
    assert "  magnify: 0 to run, 6 cached" in lines
    assert "cached  001_1_1  align" in lines and "run     001_1_1  apex  (parameter apex.threshold 0.1 -> 0.2)" in lines
    # the file replaces one of the demo's own settings: said before anything runs, on stderr
    assert old.stderr.startswith(f"note: {config} replaces 1 of the demo corpus's own build settings "
                                 "(magnify.alphas [5.0, 8.0, 11.0] -> [5.0, 6.0, ..., 14.0] (10 values))")


def test_config_defaults_for_the_demo_prints_the_demo_s_own_settings(tmp_path):
    """`mepipe config --defaults --dataset demo` is the file to start a demo config from: fed back, it changes
    none of the demo's settings (and a build given it says nothing); plain --defaults are the papers'."""
    from mepipe.pipeline.demo.build_config import build_config

    result = CliRunner().invoke(cli, ["config", "--defaults", "--dataset", "demo"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "demo.yaml"
    path.write_text(result.output)
    assert params_from_mapping(read_config(path)) == params_from_mapping(build_config("demo", {}))
    assert params_from_mapping(read_config(path))["magnify"].alphas == (5.0, 8.0, 11.0)
    papers = CliRunner().invoke(cli, ["config", "--defaults"]).output
    assert "not its cheaper own" in papers and "--dataset demo" in papers
    same = CliRunner().invoke(cli, ["config", "--dataset", "samm", "--defaults"]).output
    assert yaml.safe_load(same) == yaml.safe_load(papers)


def test_a_defaults_file_given_to_a_demo_build_is_announced(defaults_config, small_demo, tmp_path):
    result = CliRunner().invoke(cli, ["build", "--dataset", "demo", "--root", str(small_demo), "--store",
                                      str(tmp_path / "s.zarr"), "--config", str(defaults_config), "--dry-run",
                                      "--no-estimate", "--features", "landmarks"])
    assert result.exit_code == 0, result.output
    note = result.stderr.strip()
    assert note.startswith(f"note: {defaults_config} replaces 15 of the demo corpus's own build settings")
    assert "mepipe config --defaults --dataset demo" in note and len(note.splitlines()) == 1
