"""Every stage's parameters on paper: YAML with each value's meaning as a comment.

:func:`params_yaml` writes the parameters of every stage (the defaults, or
those a config resolves to) as the ``{stage: {param: value}}`` YAML that
``mepipe build --config`` reads, so the printed file can be edited and fed
back unchanged. Each parameter's one-line meaning comes from the
``Attributes`` section of its dataclass's NumPy docstring (the first
sentence), so the comments and the code's documentation are one text.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["field_meanings", "params_yaml"]

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.M)
_ENTRY = re.compile(r"^(\w+(?:\s*,\s*\w+)*)\s*:")


def field_meanings(cls: type) -> dict[str, str]:
    """Field name -> first sentence of its entry in the ``Attributes`` (or ``Parameters``) sections of ``cls`` and
    its bases.

    A subclass's entry wins over its base's; names documented together
    (``inner_iterations, outer_iterations : int``) share the entry.
    """
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        out.update(_attributes(inspect.cleandoc(klass.__dict__.get("__doc__") or "")))
    return out


def _attributes(doc: str) -> dict[str, str]:
    """The ``Attributes`` (or ``Parameters``) section of a NumPy docstring, each entry cut to one sentence."""
    sections = list(_SECTION.finditer(doc))
    for k, match in enumerate(sections):
        if match.group(1).strip() not in ("Attributes", "Parameters"):
            continue
        body = doc[match.end():sections[k + 1].start() if k + 1 < len(sections) else len(doc)]
        out: dict[str, str] = {}
        names: list[str] = []
        for line in body.splitlines():
            entry = _ENTRY.match(line)
            if entry and not line.startswith(" "):
                names = [n.strip() for n in entry.group(1).split(",")]
                for name in names:
                    out[name] = ""
            elif names and line.strip():
                for name in names:
                    out[name] = f"{out[name]} {line.strip()}".strip()
        return {name: _first_sentence(text) for name, text in out.items()}
    return {}


def _first_sentence(text: str) -> str:
    match = re.search(r"(?<=[.)])\s+(?=[A-Z(`])", text)
    return (text[:match.start()] if match else text).rstrip(".").strip()


def _scalar(value: Any) -> str:
    """A value as flow-style YAML that ``yaml.safe_load`` reads back to the same value (tuples as lists)."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v

    text = yaml.safe_dump([plain(value)], default_flow_style=True, width=10_000, allow_unicode=True).strip()
    return text[1:-1]


def _lines(params: Any, indent: int) -> list[str]:
    meanings = field_meanings(type(params))
    pad = " " * indent
    out = []
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        meaning = meanings.get(f.name, "")
        if dataclasses.is_dataclass(value):
            out.append(f"{pad}{f.name}:" + (f"  # {meaning}" if meaning else ""))
            out.extend(_lines(value, indent + 2))
        else:
            out.append(f"{pad}{f.name}: {_scalar(value)}" + (f"  # {meaning}" if meaning else ""))
    return out


def params_yaml(params: Mapping[str, Any], header: str = "") -> str:
    """``{stage: {param: value}}`` YAML of stage parameter dataclasses, each parameter's meaning as a comment.

    Parameters
    ----------
    params : mapping of str to dataclass instance
        E.g. :func:`mepipe.pipeline.stages.default_params`.
    header : str
        Comment lines put first (without the ``#``).
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for stage, values in params.items():
        summary = _first_sentence(inspect.cleandoc(type(values).__doc__ or "").split("\n\n")[0].replace("\n", " "))
        body = _lines(values, 2)
        lines.append("")
        lines.append(f"{stage}:" + ("" if body else " {}") + (f"  # {summary}" if summary else ""))
        lines.extend(body)
    return "\n".join(lines).lstrip("\n") + "\n"
