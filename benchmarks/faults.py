"""Kill builds, packs and pushes at random moments and check that nothing wrong is ever taken as good.

The fast fault suite (``tests/test_faults_store.py``) injects each fault
once at a chosen point; this loop kills real ``mepipe`` processes (SIGKILL
to the whole process group) at random times and checks, after each kill:

- **build** (fresh, and a ``--force`` rebuild of a complete store): the
  store either refuses to open as incomplete, or opens verified and equal
  to an uninterrupted build; rerunning the build finishes, and the result
  verifies and equals the uninterrupted build array for array.
- **pack** (``--overwrite`` over an older zip, or to a new name): the zip
  is absent (new name only), the old zip or the new one, and verifies
  either way; debris is only ever ``.mepipe-part-*``.
- **push** to a ``file://`` folder and zip (``--overwrite`` over an older
  copy, or to a new name): the destination verifies as the old or the new
  store, or is briefly absent between the two renames of a folder swap
  (reported as a gap: a reader finds no store, never a wrong one).

Prints the faults tried and survived per kind; exits 1 if any was not.

    python benchmarks/faults.py --rounds 6 --workdir /tmp/mepipe-faults
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from mepipe.featurestore import IncompleteStoreError, IntegrityError, open_store
from mepipe.featurestore.manifest import ManifestError, write_manifest
from mepipe.featurestore.pack import pack, push
from mepipe.featurestore.verify import verify
from mepipe.featurestore.writer import StoreWriter


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mepipe.cli", *args]


class Clock:
    """Kill delays for one kind of operation: uniform over the part of its run after start-up.

    Python and mepipe take a while to import, so kills are drawn from
    ``[lead, duration]``; a run that finishes before its kill shortens
    ``duration`` to what it took.
    """

    def __init__(self, duration: float, rng: random.Random, lead: float = 0.3):
        self.duration, self.rng, self.lead = duration, rng, lead

    def delay(self) -> float:
        return self.rng.uniform(self.lead * self.duration, self.duration)

    def finished(self, took: float) -> None:
        self.duration = min(self.duration, took)


def _run_killed(cmd: list[str], clock: Clock) -> bool:
    """Run ``cmd``; SIGKILL its process group at a random moment. True if it was killed before finishing."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        proc.wait(timeout=clock.delay())
        clock.finished(time.perf_counter() - started)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _timed_run(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - started


def _contents(store) -> dict[tuple[str, str], np.ndarray]:
    return {(s, f): store.read(f, s) for s in store.sample_ids for f in store.features if store.has(f, s)}


def _same_as(path: Path, reference: dict) -> str | None:
    """None if the store at ``path`` verifies and holds exactly the reference arrays, else what differs."""
    result = verify(path)
    if not result.ok:
        return f"does not verify: {result.summary()}"
    got = _contents(open_store(path))
    if got.keys() != reference.keys():
        return f"holds {sorted(set(got) ^ set(reference))[:4]} unlike the reference"
    bad = [k for k in reference if not np.array_equal(got[k], reference[k])]
    return f"arrays differ: {bad[:4]}" if bad else None


class Tally:
    def __init__(self):
        self.killed: Counter = Counter()
        self.tried: Counter = Counter()
        self.survived: Counter = Counter()
        self.outcomes: dict[str, Counter] = defaultdict(Counter)
        self.failures: list[str] = []

    def record(self, kind: str, outcome: str, failure: str | None) -> None:
        self.killed[kind] += 1
        self.tried[kind] += 1
        self.outcomes[kind][outcome] += 1
        if failure:
            self.failures.append(f"{kind}: {failure}")
        else:
            self.survived[kind] += 1

    def print(self) -> None:
        for kind in self.tried:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes[kind].items()))
            print(f"{kind:<24} tried {self.tried[kind]:>3}  survived {self.survived[kind]:>3}   ({detail})")
        total, ok = sum(self.tried.values()), sum(self.survived.values())
        print(f"{'all':<24} tried {total:>3}  survived {ok:>3}")
        for f in self.failures:
            print(f"FAILED {f}")


def build_rounds(tally: Tally, work: Path, demo: Path, reference_store: Path, reference: dict, rounds: int,
                 rng: random.Random) -> None:
    """Fresh builds and ``--force`` rebuilds of a complete store, each killed ``rounds`` times."""
    build = _cli("build", "--dataset", "demo", "--root", str(demo), "--no-progress", "--features", "core")
    clock = Clock(_timed_run([*build, "--store", str(work / "timing.zarr"), "--workers", "2"]), rng)
    for rebuild in (False, True):
        kind = "build (rebuild --force)" if rebuild else "build (fresh)"
        for i in range(3 * rounds):
            if tally.killed[kind] >= rounds:
                break
            store = work / f"build-{i}.zarr"
            shutil.rmtree(store, ignore_errors=True)
            if rebuild:
                shutil.copytree(reference_store, store)
            extra = ["--force", "apex"] if rebuild else []
            sched = ["--scheduler", "sync"] if rng.random() < 0.5 else ["--workers", "2"]
            if not _run_killed([*build, "--store", str(store), *sched, *extra], clock):
                continue
            failure = None
            try:
                open_store(store)
                failure = _same_as(store, reference)
                outcome = "complete, equal"
            except IncompleteStoreError:
                outcome = "refused: incomplete"
            except (ManifestError, IntegrityError):
                outcome = "refused: no valid manifest yet"
            except FileNotFoundError:
                outcome = "nothing yet"
            except Exception as err:  # any other error on open is a wrong state left behind
                outcome, failure = "error", f"round {i}: open after kill raised {type(err).__name__}: {err}"
            if not failure:
                subprocess.run([*build, "--store", str(store), "--workers", "2"], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                failure = _same_as(store, reference)
                failure = f"round {i}: rerun {failure}" if failure else None
            tally.record(kind, outcome + (", rerun equal" if not failure else ""), failure)
            shutil.rmtree(store, ignore_errors=True)


def _variant(reference_store: Path, out: Path) -> Path:
    """A copy of the reference with one clip attribute changed: another store id, otherwise alike."""
    shutil.copytree(reference_store, out)
    writer = StoreWriter(out)
    sample = sorted(p.name for p in (out / "clips").iterdir() if p.is_dir())[0]
    writer.write_clip_attrs(sample, {"note": "older copy"})
    writer.consolidate()
    write_manifest(out)
    return out


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".mepipe-"))


def share_rounds(tally: Tally, work: Path, new: Path, old: Path, rounds: int, rng: random.Random) -> None:
    """``pack`` and ``push`` (file:// folder, zip) of ``new``, over ``old`` or to a new name, killed ``rounds`` times."""
    ids = {"new": open_store(new).store_id, "old": open_store(old).store_id}
    targets = {
        "pack": lambda d: d / "store.zarr.zip",
        "push folder (file://)": lambda d: d / "pushed.zarr",
        "push zip (file://)": lambda d: d / "pushed.zarr.zip",
    }
    for kind, target_of in targets.items():
        dest_dir = work / re.sub(r"[^a-z]+", "-", kind).strip("-")
        clock = None
        for i in range(3 * rounds + 1):
            if tally.killed[kind] >= rounds:
                break
            shutil.rmtree(dest_dir, ignore_errors=True)
            dest_dir.mkdir(parents=True)
            target = target_of(dest_dir)
            existed = i % 2 == 1
            if existed:
                pack(old, target) if kind == "pack" else push(old, target.as_uri())
            cmd = (_cli("store", "pack", str(new), str(target), "--overwrite") if kind == "pack"
                   else _cli("store", "push", str(new), target.as_uri(), "--overwrite"))
            if clock is None:
                clock = Clock(_timed_run(cmd), rng)
                continue
            if not _run_killed(cmd, clock):
                continue
            failure = None
            if not target.exists():
                outcome = "gap (absent)" if existed else "absent"
                if existed and kind != "push folder (file://)":
                    failure = f"round {i}: the old copy vanished (a file is replaced in one rename)"
            else:
                result = verify(target)
                found = [k for k, v in ids.items() if v == result.store_id]
                outcome = found[0] if found and result.ok else "bad"
                if outcome == "bad":
                    failure = f"round {i}: {target} is neither store, or does not verify: {result.summary()}"
                elif outcome == "old" and not existed:
                    failure = f"round {i}: an old copy appeared from nowhere"
            stray = [d for d in _debris(dest_dir) if not d.startswith((".mepipe-part-", ".mepipe-old-"))]
            if stray:
                failure = f"round {i}: unexpected debris {stray}"
            tally.record(kind, outcome + (" +debris" if _debris(dest_dir) else ""), failure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="Kills per kind of operation.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("data/faults"))
    parser.add_argument("--skip-builds", action="store_true", help="Only pack and push (seconds, not minutes).")
    args = parser.parse_args()

    from mepipe.pipeline.demo import DemoParams, write_demo

    rng = random.Random(args.seed)
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    demo = work / "demo"
    write_demo(demo, DemoParams(n_subjects=2, n_clips=1))
    reference_store = work / "reference.zarr"
    started = time.perf_counter()
    subprocess.run(_cli("build", "--dataset", "demo", "--root", str(demo), "--store", str(reference_store),
                        "--no-progress", "--features", "core", "--workers", "2"), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"reference build: {time.perf_counter() - started:.0f} s")
    reference = _contents(open_store(reference_store))
    tally = Tally()
    if not args.skip_builds:
        build_rounds(tally, work, demo, reference_store, reference, args.rounds, rng)
    share_rounds(tally, work, reference_store, _variant(reference_store, work / "older.zarr"), args.rounds, rng)
    tally.print()
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    main()
