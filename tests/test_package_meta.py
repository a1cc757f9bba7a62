"""What a user sees of the package itself: its version on the command line and its licence."""
from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from mepipe.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_option_prints_the_installed_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"mepipe {version('mepipe')}"


def test_license_file_matches_the_declared_licence():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_torch_is_a_range_so_mepipe_installs_beside_an_existing_pytorch():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(d for d in deps if d.replace(" ", "").startswith("torch"))
    assert "==" not in torch and ">=" in torch
