"""Quiet when not on a terminal (issue 23, item 7): progress as a line every few seconds, weighted by the estimate.

The line writer is driven by a fake clock (no test waits or times
anything); a real build with stderr sent to a file checks the bytes a log
receives.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from mepipe.featurestore.progress import LineProgress, progress_bar
from mepipe.pipeline.graph import BuildProgress, Plan


def _clocked(bar, start: float = 1000.0) -> list[float]:
    """Drive ``bar`` by a clock the test advances (``clock[0] += seconds``)."""
    clock = [start]
    bar._time = lambda: clock[0]
    bar.start_t = bar.last_print_t = bar._line_at = start
    return clock


def test_off_a_terminal_progress_is_one_line_per_interval_and_never_a_carriage_return():
    log = io.StringIO()  # not a terminal, as a redirected stderr
    bar = progress_bar(total=100, file=log, interval=5.0, desc="build", unit="task")
    assert isinstance(bar, LineProgress)
    clock = _clocked(bar)
    for _ in range(100):  # 100 tasks, one a second
        clock[0] += 1.0
        bar.update(1)
        bar.set_postfix_str("clips 3/36")  # a postfix change alone shows nothing before the interval
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert 20 <= len(lines) <= 22, lines  # the first, one per 5 s of 100 s, and the end
    assert lines[-1].startswith("build: 100% 100/100") and "clips 3/36" in lines[-1]
    assert max(map(len, lines)) < 200


def test_no_progress_writes_nothing():
    log = io.StringIO()
    bar = progress_bar(range(50), file=log, enabled=False, desc="train")
    assert sum(1 for _ in bar) == 50
    bar.close()
    assert log.getvalue() == ""


def test_the_build_bar_advances_by_each_task_s_estimated_seconds():
    """Weights 1 s (landmarks) and 9 s (a flow): the flow's task is 90 % of the work, not half of the tasks."""
    plan = Plan(stale=[("a", "landmarks"), ("a", "flow_first_each")], cached=[("b", "landmarks")])
    progress = BuildProgress(plan, ["landmarks", "flow_first_each"], enabled=True,
                             weights={("a", "landmarks"): 1.0, ("a", "flow_first_each"): 9.0})
    assert progress.bar.total == 10.0
    progress.update({"sample": "a", "stage": "flow_first_each"})
    assert progress.bar.n == 9.0 and "tasks 1/2" in progress.bar.postfix
    progress.update({"sample": "a", "stage": "landmarks"})
    assert progress.bar.n == 10.0 and "clips 2/2" in progress.bar.postfix
    progress.close()
    counted = BuildProgress(plan, ["landmarks", "flow_first_each"], enabled=False)
    assert counted.bar.total == 2  # without an estimate every task weighs the same


def _tiny_manifest(small_demo: Path, root: Path) -> Path:
    clip = next(p for p in sorted(small_demo.glob("*/*")) if p.is_dir())
    (root / "clip").mkdir(parents=True)
    for f in sorted(clip.glob("*.jpg"))[:6]:
        (root / "clip" / f.name).write_bytes(f.read_bytes())
    (root / "manifest.csv").write_text("path,subject,label,fps\nclip,s1,x,200\n")
    return root


@pytest.mark.slow
def test_a_build_with_stderr_in_a_file_writes_progress_lines_not_a_line_of_redraws(small_demo, tmp_path):
    root = _tiny_manifest(small_demo, tmp_path / "data")
    mepipe = Path(sys.executable).with_name("mepipe")
    base = [str(mepipe), "build", "--dataset", "manifest", "--root", str(root), "--features", "landmarks",
            "--scheduler", "sync", "--no-estimate"]
    for extra, store in (([], "a.zarr"), (["--no-progress"], "b.zarr")):
        log = tmp_path / f"{store}.log"
        with open(log, "w") as stderr:
            done = subprocess.run([*base, "--store", str(tmp_path / store), *extra], stderr=stderr,
                                  stdout=subprocess.DEVNULL, timeout=300)
        assert done.returncode == 0
        data = log.read_bytes()
        assert b"\r" not in data
        progress = [line for line in data.decode().splitlines() if line.startswith("build:")]
        if extra:
            assert progress == []
        else:
            assert 1 <= len(progress) <= 3 and progress[-1].startswith("build: 100%"), progress
            assert "tasks 1/1 | clips 1/1" in progress[-1]
