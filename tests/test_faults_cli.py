"""Fault suite, quiet and clear (issue 12, item 7): expected errors are one or two lines, builds are quiet.

Each case runs the real ``mepipe`` group in-process and checks the exit
status (2: the command was wrong, 1: the data is) and that the output is a
sentence naming the file or key, never a traceback (unless ``-v``).
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mepipe.cli.main import cli
from mepipe.featurestore.errors import DataError, UsageError


def _files(tmp: Path, demo: Path) -> dict[str, Path]:
    (tmp / "bad.yaml").write_text("align: {size: [1, 2\n")
    (tmp / "unknown_stage.yaml").write_text("nostage: {a: 1}\n")
    (tmp / "unknown_param.yaml").write_text("align: {sizee: 3}\n")
    (tmp / "bad_value.yaml").write_text("flow_first_each: {size: [4, 4]}\n")
    (tmp / "bad_nested.yaml").write_text("flow_consecutive: {tvl1: {tau: -1}}\n")
    (tmp / "noheader").mkdir()
    (tmp / "noheader" / "manifest.csv").write_text("x,y\n1,2\n")
    (tmp / "two").mkdir()
    for name in ("manifest_lab.csv", "manifest_tv.csv"):
        (tmp / "two" / name).write_text("path,subject,label,fps\nclip,s1,x,200\n")
    return {"tmp": tmp, "demo": demo}


def _build(*args: str) -> list[str]:
    return ["build", "--no-progress", "--scheduler", "sync", *args]


CASES = {
    # name: (arguments from the files above, exit status, words the message must hold)
    "missing store": (lambda f: ["info", str(f["tmp"] / "nowhere.zarr")], 2, "nowhere.zarr"),
    "missing root": (lambda f: _build("--dataset", "samm", "--root", str(f["tmp"] / "nowhere"),
                                      "--store", str(f["tmp"] / "s.zarr")), 2, "nowhere"),
    "unknown dataset": (lambda f: _build("--dataset", "nosuch", "--root", str(f["tmp"])), 2, "nosuch"),
    "sheet without header": (lambda f: _build("--dataset", "manifest", "--root", str(f["tmp"] / "noheader"),
                                              "--store", str(f["tmp"] / "s.zarr")), 1, "no header row"),
    "malformed yaml": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                        str(f["tmp"] / "s.zarr"), "--config", str(f["tmp"] / "bad.yaml")),
                       2, "bad.yaml is not valid YAML"),
    "config unknown stage": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                              str(f["tmp"] / "s.zarr"), "--config",
                                              str(f["tmp"] / "unknown_stage.yaml")), 2, "nostage"),
    "config unknown parameter": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                                  str(f["tmp"] / "s.zarr"), "--config",
                                                  str(f["tmp"] / "unknown_param.yaml")), 2, "sizee"),
    "config bad value": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                          str(f["tmp"] / "s.zarr"), "--config", str(f["tmp"] / "bad_value.yaml")),
                         2, "flow_first_each"),
    "config bad nested value": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                                 str(f["tmp"] / "s.zarr"), "--config",
                                                 str(f["tmp"] / "bad_nested.yaml")), 2, "tvl1: TVL1Params.tau"),
    "unknown feature": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                         str(f["tmp"] / "s.zarr"), "--features", "nosuch"), 2, "nosuch"),
    "unknown adapter option": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                                str(f["tmp"] / "s.zarr"), "--option", "colour=blue"), 2, "colour"),
    "bad face choice": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]), "--store",
                                         str(f["tmp"] / "s.zarr"), "--face", "biggest"), 2, "biggest"),
    "outside-root flag on a sheet dataset": (lambda f: _build("--dataset", "demo", "--root", str(f["demo"]),
                                                              "--allow-outside-root"), 2, "manifest"),
    "manifest root with two manifests": (lambda f: _build("--dataset", "manifest", "--root", str(f["tmp"] / "two"),
                                                          "--store", str(f["tmp"] / "s.zarr")),
                                         2, "manifest_lab.csv, manifest_tv.csv; choose one with --annotations"),
}


@pytest.mark.parametrize("case", CASES)
def test_expected_error_is_a_sentence_with_its_exit_status(small_demo, tmp_path, case):
    args, status, words = CASES[case]
    result = CliRunner().invoke(cli, args(_files(tmp_path, small_demo)))
    output = result.output.strip()
    assert result.exit_code == status, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert 1 <= len(output.splitlines()) <= 4, output  # click's usage errors add two lines of usage
    assert words in output and output.splitlines()[-1].lower().startswith("error")


def test_locked_store_is_a_data_error(small_demo, tmp_path):
    store = tmp_path / "locked.zarr"
    (store / ".mepipe").mkdir(parents=True)
    fd = os.open(store / ".mepipe" / "lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:  # held by another process: this one's own flock on a second descriptor conflicts too
        result = CliRunner().invoke(cli, _build("--dataset", "demo", "--root", str(small_demo), "--store", str(store)))
    finally:
        os.close(fd)
    assert result.exit_code == 1 and result.output.strip().startswith("error: store")
    assert "is being built" in result.output and len(result.output.strip().splitlines()) == 1


def test_verbose_shows_the_traceback_of_an_expected_error(tmp_path):
    result = CliRunner().invoke(cli, ["-v", "info", str(tmp_path / "nowhere.zarr")])
    assert result.exit_code == 2 and "Traceback" in result.output and "error: " in result.output


def test_a_bug_keeps_its_traceback(monkeypatch, small_demo, tmp_path):
    import mepipe.pipeline.build as build

    def broken(opts, on_estimate=None):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(build, "run_build", broken)
    result = CliRunner().invoke(cli, _build("--dataset", "demo", "--root", str(small_demo), "--store",
                                            str(tmp_path / "s.zarr")))
    assert isinstance(result.exception, ZeroDivisionError)


def test_error_classes_map_to_exit_statuses():
    from mepipe.featurestore.errors import ConfigError, MissingPathError, SheetError, UnknownNameError
    from mepipe.featurestore.lock import StoreLockedError

    assert [e.exit_code for e in (ConfigError, MissingPathError, UnknownNameError)] == [UsageError.exit_code] * 3 == [2] * 3
    assert [e.exit_code for e in (SheetError, StoreLockedError)] == [DataError.exit_code] * 2 == [1] * 2
    assert isinstance(UnknownNameError("x"), KeyError) and str(UnknownNameError("no such x")) == "no such x"


@pytest.mark.slow
def test_build_on_a_local_cluster_prints_only_its_summary(small_demo, tmp_path):
    """A real LocalCluster build (worker processes): no distributed INFO lines, port warnings or shutdown errors."""
    root = tmp_path / "data"
    clip = next(p for p in sorted(small_demo.glob("*/*")) if p.is_dir())
    (root / "clip").mkdir(parents=True)
    for f in sorted(clip.glob("*.jpg"))[:4]:
        (root / "clip" / f.name).write_bytes(f.read_bytes())
    (root / "manifest.csv").write_text("path,subject,label,fps\nclip,s1,x,200\n")
    mepipe = Path(sys.executable).with_name("mepipe")
    out = subprocess.run([str(mepipe), "build", "--dataset", "manifest", "--root", str(root), "--store",
                          str(tmp_path / "s.zarr"), "--features", "landmarks", "--workers", "2", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for noise in ("INFO", "distributed", "UserWarning", "Traceback", "CommClosedError", "StreamClosedError", "8787"):
        assert noise not in out.stderr and noise not in out.stdout, (noise, out.stderr)
    first, shares, summary = out.stdout.splitlines()[:3]
    assert first.startswith("estimate: ") and shares.startswith("  most of it: landmarks")
    assert summary.startswith("manifest: 1/1 clips built")


@pytest.mark.parametrize("clip, feature, words", [
    ("001_1_2", "intensity", "has no clip '001_1_2'; close matches: "),
    ("001_1_1", "lfm", "clip '001_1_1' has no lfm, clfm, sfem (build with --features lfm,clfm,sfem)"),
])
def test_show_names_a_missing_clip_or_feature_in_one_sentence(small_store, tmp_path, clip, feature, words):
    """The store holds clips 001_1_1.. and the core features only: a mistyped clip gets its close matches, a
    feature the build skipped says how to build it; exit 2, no traceback, no file written."""
    out = tmp_path / "x.png"
    result = CliRunner().invoke(cli, ["show", str(small_store), clip, "--feature", feature, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and not out.exists()
