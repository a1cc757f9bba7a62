"""The build's cost estimate against what the build then took, on the demo and on a SAMM-sized set.

For each set it runs ``mepipe build`` as a user does, in a fresh process,
into an empty store: the build measures its estimate first (one clip, every
stage, a few sampled flow pairs; :mod:`mepipe.pipeline.estimate`), prints
it, then builds, and its report records both the estimate
(``estimated_cpu_seconds``) and the CPU seconds its tasks took
(``stage_cpu_seconds``), per stage. CPU seconds are compared because the
machine is shared: on a loaded machine wall seconds grow with everybody
else's work, CPU seconds much less. Wall seconds are recorded beside them
(the estimate's wall figure assumes an otherwise idle machine), with the
load average at the start and the end.

Sets:

- ``demo``: the 36-clip demo (24 frames of 384x384 grey JPEG per clip) with
  the demo's own build settings (``mepipe build --dataset demo``).
- ``samm``: the demo generator at SAMM's 2040x1088 (as ``benchmarks/build.py``),
  built with every paper default (``mepipe config --defaults`` as its
  config): ten alphas, five frame subsets, first->each on the 256-pixel
  crops, OpenCV's default TV-L1; the settings whose cost surprised a new
  user (issue 23).

    python benchmarks/estimate.py --out benchmarks/results            # both sets (~15 CPU min)
    python benchmarks/estimate.py --sets demo --out /tmp/estimate      # the demo only (~2 CPU min)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mepipe.pipeline.defaults import params_yaml
from mepipe.pipeline.demo import PRESETS, write_demo
from mepipe.pipeline.stages import default_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import machine, samm_sized  # noqa: E402 -- the SAMM-sized set and machine line of benchmarks/build.py

SETS = ("demo", "samm")
LIMIT = 1.5
"""The factor the estimate must be within (issue 23)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="Folder for estimate.json and estimate.md.")
    parser.add_argument("--sets", default=",".join(SETS), help=f"Comma-separated sets: {', '.join(SETS)}.")
    parser.add_argument("--samm-clips", type=int, default=2, help="Subjects of the SAMM-sized set (2 clips each).")
    parser.add_argument("--samm-frames", type=int, default=40, help="Frames per clip of the SAMM-sized set.")
    parser.add_argument("--workers", type=int, default=2, help="Build worker processes.")
    parser.add_argument("--workdir", help="Where the sets and stores go (default: a temporary folder, removed).")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="estimatebench-"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "workers": args.workers,
              "sets": {}}
    try:
        for name in args.sets.split(","):
            result["sets"][name] = run_set(name, work, args)
            print(json.dumps(result["sets"][name], indent=1)[:1500], flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimate.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (out / "estimate.md").write_text(text)
    print(text)


def run_set(name: str, work: Path, args) -> dict:
    """Write the set, build it with ``mepipe build`` in a fresh process, return the report's figures."""
    root, store = work / name, work / f"{name}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    command = [sys.executable, "-m", "mepipe.cli", "build", "--dataset", "demo", "--root", str(root),
               "--store", str(store), "--workers", str(args.workers), "--no-progress"]
    if name == "demo":
        params = PRESETS["demo"]
        description = "36 clips x 24 frames, 384x384 grey JPEG; the demo's build settings"
    else:
        params = samm_sized(args.samm_clips, args.samm_frames)
        config = work / "papers.yaml"
        config.write_text(params_yaml(default_params()))
        command += ["--config", str(config)]
        description = (f"{2 * args.samm_clips} clips x {args.samm_frames} frames, 2040x1088 grey JPEG; "
                       "every paper default")
    if not (root / "demo.json").exists():
        write_demo(root, params)
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{name}: build failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    report = json.loads((store / ".mepipe" / "build-report.json").read_text())
    return {"description": description, "estimate_lines": done.stdout.splitlines()[:2],
            "estimated": report["estimated_cpu_seconds"], "measured": report["stage_cpu_seconds"],
            "build_seconds": report["seconds"], "command_seconds": wall,
            "estimated_wall": _estimated_wall(done.stdout), "load_start": load_start,
            "load_end": os.getloadavg()[0]}


def _estimated_wall(stdout: str) -> str:
    """The wall-clock figure of the printed estimate ("about 3.5 min on 2 workers ...")."""
    line = stdout.splitlines()[0]
    return line.split("about ", 1)[1].split(" on ", 1)[0] if "about " in line else "?"


def markdown(result: dict) -> str:
    lines = [f"{result['machine']}; {result['started']}; {result['workers']} workers", ""]
    for name, r in result["sets"].items():
        est, got = r["estimated"], r["measured"]
        total_est, total_got = sum(est.values()), sum(v for k, v in got.items() if k in est)
        ratio = total_got / total_est if total_est else float("nan")
        lines += [f"**{name}** ({r['description']}); load average {r['load_start']:.1f} at the start, "
                  f"{r['load_end']:.1f} at the end", "",
                  "| stage | estimated CPU s | measured CPU s | measured / estimated |", "|---|---|---|---|"]
        for stage in est:
            lines.append(f"| {stage} | {est[stage]:.1f} | {got.get(stage, 0):.1f} | "
                         f"{got.get(stage, 0) / est[stage] if est[stage] else float('nan'):.2f} |")
        verdict = "within" if 1 / LIMIT <= ratio <= LIMIT else "NOT within"
        lines += [f"| **all** | **{total_est:.1f}** | **{total_got:.1f}** | **{ratio:.2f}** ({verdict} {LIMIT}x) |",
                  "",
                  f"Wall clock: estimated {r['estimated_wall']} on an otherwise idle machine; the build took "
                  f"{r['build_seconds']:.0f} s ({r['command_seconds']:.0f} s with start-up and the estimate itself).",
                  "", "The build printed:", "", "```", *r["estimate_lines"], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
