"""Stage parameters from a YAML or TOML file (``--config``), validated strictly."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml


def read_config(path: Path | None) -> dict[str, dict[str, Any]]:
    """``{stage: {parameter: value}}``; an empty mapping when no file is given."""
    if path is None:
        return {}
    text = Path(path).read_text()
    data = tomllib.loads(text) if Path(path).suffix == ".toml" else yaml.safe_load(text)
    data = data or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of stage name to a mapping of parameters")
    return data.get("stages", data) if "stages" in data and isinstance(data["stages"], dict) else data
