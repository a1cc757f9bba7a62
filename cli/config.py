"""Stage parameters from a YAML or TOML file (``--config``), validated strictly."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from mepipe.featurestore.errors import ConfigError


def read_config(path: Path | None) -> dict[str, dict[str, Any]]:
    """``{stage: {parameter: value}}``; an empty mapping when no file is given."""
    if path is None:
        return {}
    text = Path(path).read_text()
    try:
        data = tomllib.loads(text) if Path(path).suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config {path} is not valid {_syntax(path)}: {_first_line(exc)}") from exc
    data = data or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of stage name to a mapping of parameters")
    return data.get("stages", data) if "stages" in data and isinstance(data["stages"], dict) else data


def _syntax(path: Path) -> str:
    return "TOML" if Path(path).suffix == ".toml" else "YAML"


def _first_line(exc: Exception) -> str:
    """The parser's message without its source excerpt (YAML errors quote the offending lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem
