"""A SAMM-sized build against a plain loop over the same kernels, measured in the same run.

It writes a synthetic set in the SAMM layout at SAMM's frame size (the demo
generator at 2040x1088 greyscale JPEG, face about 400 px), then:

1. builds it with mepipe on one worker process (landmarks, align, the three
   TV-L1 flows and what they need: magnify, apex);
2. runs the baseline, what a researcher's own script does, one pair at a
   time in this process: ``cv2.imread`` every frame, dlib's models loaded
   once (as each build worker loads them once, about 1 CPU s, counted with
   the landmarks), one dlib detection per
   clip (first frame at half size, as mepipe's first detection scale), the 68
   landmarks per frame in that box, an eye-centre similarity and
   ``cv2.warpAffine`` to 256x256 per frame, saving what the build stores
   (landmarks; crops compressed with the store's codec, crop landmarks and
   transforms), and OpenCV's DualTVL1 (default
   parameters) for the three flow variants. TV-L1 costs depend on the pixels,
   so the baseline's flows run on the crops mepipe stored, at the same pairs
   (its onset->apex pair is the one mepipe's apex stage chose): the flow
   ratios then measure mepipe's overhead around the same solver calls;
3. builds it again with two worker processes, rebuilds that store with
   nothing changed (the cached rebuild), and builds landmarks and align as
   two separate builds, which decode every frame twice (what every build did
   before the decode was shared), to measure what decoding once saves.

Per stage it prints seconds per frame for the baseline and mepipe (task
seconds: a stage's kernel with its store reads and writes; a worker runs one
thread) and their ratio, the wall clock of the 1- and 2-worker builds, and
the cached rebuild as a percentage of the build. Everything is a ratio
within the run, so a loaded machine slows both sides alike; the load
average is recorded at the start and the end.

    python benchmarks/build.py --out benchmarks/results          # 8 clips x 60 frames (~15 min on 2 quiet cores)
    python benchmarks/build.py --quick --out /tmp/build-quick    # 2 clips x 30 frames (~2 min quiet)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mepipe.featurestore import open_store
from mepipe.pipeline.build import BuildOptions, run_build
from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.datasets import get_adapter
from mepipe.pipeline.demo import DemoParams, write_demo
from mepipe.pipeline.stages import default_params
from mepipe.pipeline.stages.landmarks import shape_predictor_path

STAGES = ("landmarks", "align", "flow_onset_apex", "flow_first_each", "flow_consecutive")
"""What the build computes (with magnify and apex, which the onset->apex flow needs)."""

COMPARED = ("decode", "landmarks", "align", "flow_first_each", "flow_consecutive", "flow_onset_apex")
"""Stages the baseline does too; magnify and apex are mepipe's alone."""


def samm_sized(n_subjects: int, n_frames: int) -> DemoParams:
    """The demo generator at SAMM's frame size: 2040x1088 grey JPEG q95, 200 fps, face ~400 px."""
    return DemoParams(n_subjects=n_subjects, n_clips=1, classes=("Happiness", "Surprise"), n_frames=n_frames,
                      frame_size=(1088, 2040), interocular_px=170.0, erratum_clip=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="Folder for build.json and build.md.")
    parser.add_argument("--quick", action="store_true", help="2 clips of 30 frames instead of 8 of 60.")
    parser.add_argument("--workdir", help="Where the set and stores go (default: a temporary folder, removed).")
    parser.add_argument("--from-json", type=Path, help="Print the tables of an earlier run's JSON and stop.")
    args = parser.parse_args()
    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())))
        return
    n_subjects, n_frames = (1, 30) if args.quick else (4, 60)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="buildbench-"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "load_start": os.getloadavg(), "quick": args.quick}
    try:
        root = work / "samm-sized"
        start = time.perf_counter()
        if not (work / "phases.json").exists():
            shutil.rmtree(root, ignore_errors=True)
            write_demo(root, samm_sized(n_subjects, n_frames))
        result["generate_s"] = time.perf_counter() - start
        contexts = [ClipContext.of(s) for s in get_adapter("demo")(root, None).samples]
        frames = sum(len(c.frame_files) for c in contexts)
        result |= {"clips": len(contexts), "frames": frames}
        print(f"{len(contexts)} clips, {frames} frames of 2040x1088 in {result['generate_s']:.0f} s", flush=True)

        phase = Phases(work / "phases.json")
        one = phase("mepipe_1", lambda: build(root, work / "one.zarr", workers=1))
        result["baseline"] = phase("baseline", lambda: baseline(contexts, work / "one.zarr", work / "baseline"))
        two = phase("mepipe_2", lambda: build(root, work / "two.zarr", workers=2))
        cached = phase("cached", lambda: build(root, work / "two.zarr", workers=2))
        twice = phase("decode_twice", lambda: [build(root, work / "twice.zarr", workers=1, stages=s)
                                               for s in (("landmarks",), ("landmarks", "align"))])
        result |= {"mepipe_1": one, "mepipe_2": two, "cached": cached, "decode_twice": twice,
                   "same_store": same_crops(work / "one.zarr", work / "two.zarr")}
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    result["load_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "build-quick" if args.quick else "build"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=float))
    text = markdown(result)
    (out / f"{name}.md").write_text(text)
    print(text)


class Phases:
    """Runs each phase once per work folder: a rerun with ``--workdir`` after a failure keeps the phases done."""

    def __init__(self, path: Path):
        self.path = path
        self.done = json.loads(path.read_text()) if path.exists() else {}

    def __call__(self, name: str, run):
        if name not in self.done:
            self.done[name] = run()
            self.path.write_text(json.dumps(self.done, indent=2, default=float))
        print(f"{name}: {json.dumps(self.done[name], default=float)[:200]}", flush=True)
        return self.done[name]


def build(root: Path, store: Path, workers: int, stages: tuple[str, ...] = STAGES) -> dict:
    """One ``mepipe build`` (local worker processes, one thread each): wall and task seconds per stage."""
    opts = BuildOptions(dataset="demo", root=root, store=store, workers=workers, stages=stages, progress=False,
                        params=default_params())
    start = time.perf_counter()
    report = run_build(opts)
    if report.exit_code:
        raise SystemExit(report.summary())
    return {"seconds": time.perf_counter() - start, "stage_seconds": report.stage_seconds,
            "stage_cpu_seconds": report.stage_cpu_seconds,
            "tasks_run": report.tasks_run, "faces": {k: v.get("face_px") for k, v in report.faces.items()}}


def baseline(contexts: list[ClipContext], store_path: Path, saved: Path) -> dict[str, float]:
    """Seconds per operation of a plain sequential loop (one thread), on the same clips and flow pairs.

    Like the build, it saves what its landmarks and align steps compute, in
    ``saved``: the landmarks, and the crops (compressed as the store's chunks
    are, Zstandard level 0), the crop landmarks and the transforms of each clip.
    """
    import dlib
    from numcodecs import Zstd

    zstd = Zstd(level=0)
    saved.mkdir(parents=True, exist_ok=True)

    cv2.setNumThreads(1)
    params = default_params()
    solvers = {n: params[n].tvl1.create() for n in ("flow_first_each", "flow_consecutive", "flow_onset_apex")}
    store = open_store(store_path)
    seconds = dict.fromkeys(COMPARED, 0.0)
    timer = Timer(seconds, dict.fromkeys(COMPARED, 0.0))
    with timer("landmarks"):  # once per run, as each build worker loads them once (about 1 CPU s)
        detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))
    for ctx in contexts:
        with timer("decode"):
            grey = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in ctx.frame_files]
        with timer("landmarks"):
            small = cv2.resize(grey[0], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            face = max(detector(small, 0), key=lambda r: r.area())
            box = dlib.rectangle(2 * face.left(), 2 * face.top(), 2 * face.right(), 2 * face.bottom())
            points = [np.array([(p.x, p.y) for p in predictor(g, box).parts()], np.float64) for g in grey]
            np.save(saved / f"{ctx.sample}-landmarks.npy", np.stack(points).astype(np.float32))
        with timer("align"):
            transforms = [eye_similarity(p) for p in points]
            crops = [cv2.warpAffine(g, m, (256, 256), flags=cv2.INTER_LINEAR) for g, m in zip(grey, transforms)]
            (saved / f"{ctx.sample}-crops.zst").write_bytes(zstd.encode(np.stack(crops).tobytes()))
            np.save(saved / f"{ctx.sample}-transforms.npy", np.stack(transforms).astype(np.float32))
            np.save(saved / f"{ctx.sample}-landmarks-aligned.npy",
                    np.stack([p @ m[:, :2].T + m[:, 2] for p, m in zip(points, transforms)]).astype(np.float32))
        assert len(crops) == len(grey)
        stored = store.read("crops", ctx.sample)[..., 0]
        state = store.read("state_index", ctx.sample)
        for name, pairs in (("flow_first_each", [(0, t) for t in range(1, len(stored))]),
                            ("flow_consecutive", [(t - 1, t) for t in range(1, len(stored))]),
                            ("flow_onset_apex", [(int(state[0]), int(state[2]))])):
            with timer(name):
                size, at_crop = params[name].size, params[name].compute_at == "crop"
                grey = stored if at_crop else [cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in stored]
                for a, b in pairs:
                    field = solvers[name].calc(grey[a], grey[b], None)
                    if at_crop:  # computed on the crop, stored at the variant's size
                        field = cv2.resize(field, size, interpolation=cv2.INTER_AREA) * (size[0] / field.shape[1])
    return {"seconds": seconds, "cpu_seconds": timer.cpu}


def eye_similarity(points: np.ndarray, size: int = 256) -> np.ndarray:
    """Rotation, scale and shift putting the eye centres level at fixed places of a size x size crop."""
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    d = right - left
    scale = 0.5 * size / np.hypot(*d)
    angle = np.degrees(np.arctan2(d[1], d[0]))
    m = cv2.getRotationMatrix2D(tuple((left + right) / 2), angle, scale)
    m[:, 2] += np.array([size / 2, 0.35 * size]) - (left + right) / 2
    return m


class Timer:
    """Adds the wall and CPU seconds of each ``with timer(name):`` block to ``seconds[name]``, ``cpu[name]``."""

    def __init__(self, seconds: dict[str, float], cpu: dict[str, float]):
        self.seconds, self.cpu = seconds, cpu

    def __call__(self, name: str):
        self.name = name
        return self

    def __enter__(self):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.seconds[self.name] += time.perf_counter() - self.start
        self.cpu[self.name] += time.process_time() - self.cpu_start


def same_crops(a: Path, b: Path) -> bool:
    """Whether two builds stored equal crops and flows for every clip (1 and 2 workers must agree)."""
    x, y = open_store(a), open_store(b)
    return all(np.array_equal(x.read(f, s), y.read(f, s), equal_nan=True)
               for s in x.sample_ids for f in ("crops", "flow_first_each", "flow_consecutive", "flow_onset_apex"))


def machine() -> str:
    import dlib
    import torch

    return (f"{socket.gethostname()}: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}, OpenCV {cv2.__version__}, dlib {dlib.__version__}, "
            f"torch {torch.__version__}")


def markdown(r: dict) -> str:
    frames = r["frames"]
    one, two, cached = r["mepipe_1"], r["mepipe_2"], r["cached"]
    ms = lambda s: 1000 * s / frames  # noqa: E731 (seconds -> ms per frame)
    base, base_wall = r["baseline"]["cpu_seconds"], r["baseline"]["seconds"]
    mine, mine_wall = one["stage_cpu_seconds"], one["stage_seconds"]
    lines = [f"{r['machine']}; {r['started']}; load average {r['load_start'][0]:.1f} at the start, "
             f"{r['load_end'][0]:.1f} at the end" + (" (--quick)" if r["quick"] else ""),
             "",
             f"{r['clips']} clips, {frames} frames of 2040x1088 grey JPEG (dlib face box ~{median_face(one)} px). "
             "CPU ms per frame: the baseline loop's, and the tasks' of the 1-worker build (a flow stage's are"
             " per frame of its clips); the wall-clock ratio beside it.",
             "",
             "| stage | baseline CPU ms/frame | mepipe CPU ms/frame | ratio CPU | ratio wall |",
             "|---|---|---|---|---|"]

    def row(label, names):
        b, m = sum(base[n] for n in names), sum(mine.get(n, 0) for n in names)
        bw, mw = sum(base_wall[n] for n in names), sum(mine_wall.get(n, 0) for n in names)
        return f"| {label} | {ms(b):.2f} | {ms(m):.2f} | {m / b:.2f} | {mw / bw:.2f} |"

    lines += [row(name, [name]) for name in COMPARED]
    lines += [f"| {name} (mepipe only) | - | {ms(mine[name]):.2f} | - | - |" for name in mine if name not in COMPARED]
    lines += [row("**non-flow stages** (decode, landmarks, align)", COMPARED[:3]),
              row("**flow stages**", COMPARED[3:]),
              row("**all compared stages**", COMPARED),
              "",
              "Build wall clock, 1 worker, all stages with cluster start-up and store finishing: "
              f"{one['seconds']:.1f} s"
              f" against the baseline loop's {sum(base_wall.values()):.1f} s"
              f" ({one['seconds'] / sum(base_wall.values()):.2f}x).",
              "",
              "| build | wall s | CPU s of its tasks | vs 1 worker |",
              "|---|---|---|---|",
              f"| 1 worker | {one['seconds']:.1f} | {sum(mine.values()):.1f} | 1.00x |",
              f"| 2 workers | {two['seconds']:.1f} | {sum(two['stage_cpu_seconds'].values()):.1f} | "
              f"{one['seconds'] / two['seconds']:.2f}x |",
              f"| cached rebuild (2 workers) | {cached['seconds']:.2f} | - | "
              f"{100 * cached['seconds'] / two['seconds']:.2f} % of the 2-worker build |",
              "",
              f"1 and 2 workers stored equal crops and flows: {r['same_store']}."]
    once = mine.get("decode", 0)
    twice = sum(b["stage_cpu_seconds"].get("decode", 0) for b in r["decode_twice"])
    non_flow_before = twice + sum(mine.get(n, 0) for n in ("landmarks", "align"))
    lines.append(f"Decoding, CPU: once per clip (landmarks and align in one task) {ms(once):.2f} ms per frame; "
                 f"landmarks and align built apart, each decoding (as every build did before) {ms(twice):.2f} ms "
                 f"per frame. Decoding once saves {ms(twice - once):.2f} ms per frame: "
                 f"{100 * (twice - once) / non_flow_before:.0f} % of the non-flow stages' CPU and "
                 f"{100 * (twice - once) / (sum(mine.values()) + twice - once):.1f} % of the whole build's.")
    return "\n".join(lines) + "\n"


def median_face(build: dict) -> str:
    sizes = [v for v in build["faces"].values() if v]
    return f"{np.median(sizes):.0f}" if sizes else "?"


if __name__ == "__main__":
    main()
