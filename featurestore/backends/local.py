"""Telling local paths from URLs: the one rule every back-end's ``guess_can_open`` shares."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname


def is_url(target: str) -> bool:
    """Whether ``target`` is a URL (``scheme://...``) or a chained fsspec URL (``a::b``), not a path."""
    return "://" in target or "::" in target


def is_local(target: str) -> bool:
    """Whether ``target`` names something on the local disk: a path, or a plain ``file://`` URL."""
    return not is_url(target) or (target.lower().startswith("file://") and "::" not in target)


def local_path(target: str) -> Path:
    """The path a local ``target`` names (a ``file://`` URL decoded)."""
    if target.lower().startswith("file://"):
        return Path(url2pathname(urlsplit(target).path))
    return Path(target)


def url_path(target: str) -> str:
    """The path part of a URL, without query or fragment (to see its suffix)."""
    return urlsplit(target).path if is_url(target) else target
