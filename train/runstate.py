"""A run folder's progress, so that a killed ``mepipe train`` resumes at the fold it was in.

When a run starts it writes ``RUN/run.json``: the run's identity (the
parameters that define what it computes, the stores' ids and the
fingerprint of what it reads, the fold plan) and its hash. Each finished
fold is then written to ``RUN/folds/fold-<name>.json`` (its report entry
and predictions), after its checkpoint, each file to a temporary name and
renamed, so a fold file exists only for a fold whose every output is in
place. A rerun with the same identity keeps the finished folds and trains
the others; a rerun with another identity is refused unless ``--overwrite``
(which starts over).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mepipe.featurestore.errors import UsageError

from .fold import FoldResult
from .report import CHECKPOINT_DIR, CONFUSION_FILE, CURVES_FILE, REPORT_FILE, SPOTTING_FILE, checkpoint_path

__all__ = ["FOLDS_DIR", "RUN_FILE", "ExistingRunError", "RunState", "fold_path", "identity_key"]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
FOLDS_DIR = "folds"
_OUTPUTS = (REPORT_FILE, CONFUSION_FILE, CURVES_FILE, SPOTTING_FILE, RUN_FILE)


class ExistingRunError(UsageError, FileExistsError):
    """The run folder holds a finished run, or an unfinished one with other parameters."""


def identity_key(identity: dict[str, Any]) -> str:
    """SHA-256 of a run identity's canonical JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def fold_path(run: str | os.PathLike, fold: str) -> Path:
    """Where a finished fold's result lives (named like its checkpoint)."""
    return Path(run) / FOLDS_DIR / (checkpoint_path(run, fold).stem + ".json")


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(content, handle, default=_json_default)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


@dataclass
class RunState:
    """The finished folds of a run folder whose identity matches the run's.

    Attributes
    ----------
    run : Path
    key : str
        Hash of the run's identity.
    finished : dict of str to FoldResult
        Results of the finished folds (by an earlier, interrupted attempt, or by :meth:`save`).
    kept : tuple of str
        Folds an earlier attempt finished, kept rather than trained again.
    """

    run: Path
    key: str
    finished: dict[str, FoldResult] = field(default_factory=dict)
    kept: tuple[str, ...] = ()

    @classmethod
    def begin(cls, run: str | os.PathLike, identity: dict[str, Any], *, overwrite: bool = False,
              outputs: tuple[str, ...] = ()) -> RunState:
        """Start or resume the run in ``run``.

        A fold's result counts as finished when its checkpoint (if it has
        one) and every file it lists under ``files`` exist. ``outputs`` are
        further files or folders the run writes, removed with the others by
        ``overwrite``.

        Raises
        ------
        ExistingRunError
            ``run`` holds a finished run, or an unfinished run of another
            identity, and ``overwrite`` is False.
        """
        run = Path(run)
        key = identity_key(identity)
        if overwrite:
            cls.clear(run, outputs)
        elif (run / REPORT_FILE).exists():
            raise ExistingRunError(f"{run} already holds a finished run; choose another --out or pass --overwrite")
        state = cls(run, key)
        recorded = _read_json(run / RUN_FILE)
        if recorded is not None and recorded.get("key") != key:
            changed = _changes(recorded.get("identity", {}), identity)
            raise ExistingRunError(f"{run} holds an unfinished run with other settings ({changed}); rerun with "
                                   "the same settings to resume it, or pass --overwrite to start over")
        if recorded is None:
            if (run / FOLDS_DIR).exists() or (run / CHECKPOINT_DIR).exists():
                raise ExistingRunError(f"{run} holds fold results of an unknown run; choose another --out or pass "
                                       "--overwrite")
            _write_json(run / RUN_FILE, {"key": key, "identity": identity})
            return state
        for path in sorted((run / FOLDS_DIR).glob("*.json")):
            saved = _read_json(path)
            if saved is None or saved.get("key") != key:
                continue
            result = FoldResult(saved["report"], saved["predictions"])
            needed = [result.report["checkpoint"]] if result.report.get("checkpoint") else []
            if all((run / name).exists() for name in needed + list(result.report.get("files", []))):
                state.finished[result.report["name"]] = result
        state.kept = tuple(sorted(state.finished))
        if state.finished:
            log.warning("%s: resuming an interrupted run; %d finished folds are kept (%s)", run, len(state.finished),
                        ", ".join(sorted(state.finished)))
        return state

    def save(self, result: FoldResult) -> Path:
        """Record a finished fold (its checkpoint is already written)."""
        path = fold_path(self.run, result.report["name"])
        _write_json(path, {"key": self.key, "report": result.report, "predictions": result.predictions})
        self.finished[result.report["name"]] = result
        return path

    @staticmethod
    def clear(run: Path, outputs: tuple[str, ...] = ()) -> None:
        """Remove what a run writes (reports, figures, fold results, checkpoints, ``outputs``), nothing else."""
        for name in _OUTPUTS + tuple(outputs):
            if (run / name).is_dir():
                shutil.rmtree(run / name, ignore_errors=True)
            else:
                (run / name).unlink(missing_ok=True)
        for folder in (FOLDS_DIR, CHECKPOINT_DIR):
            shutil.rmtree(run / folder, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("%s is not readable JSON; ignored", path)
        return None


def _changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    """The first few settings that differ between two identities, as ``name: old -> new``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), json.loads(json.dumps(new.get(key), default=str))
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.append(_changes(a, b, f"{prefix}{key}."))
        elif key == "folds":
            out.append(f"{prefix}{key}: another fold plan")
        else:
            out.append(f"{prefix}{key}: {_short(a)} -> {_short(b)}")
    return "; ".join(o for o in out if o)[:400]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
