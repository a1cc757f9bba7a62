"""Long videos: mepipe's window-by-window build against a plain loop over the same operations, in the same run.

It writes a synthetic SAMM-sized long video (the demo's face generator at
2040x1088, face box ~350 px, slow head motion and sensor noise, 200 fps)
as an MPEG-4 file (SAMM Long Videos itself is JPEG folders; a video file
keeps the disk use of 20,000 frames sane), then:

1. builds it with mepipe (``--dataset manifest --option unit=videos``, two
   worker processes, one thread each): the non-flow stages (landmarks,
   align at 128 px, kim's 64x64 RGB frames) over every frame, sampling each
   worker process's peak resident memory (``VmHWM``) while it runs;
2. builds the first ``--flow-frames`` frames with every long-video stage,
   the flows included (consecutive-frame TV-L1 at 64x64, flow_apart's TV-L1
   from t to t + 37 at 64x64, roi_motion's from t to t + 37 at 128x128 and
   its region curves), the same way;
3. runs the baseline in this process, what a researcher's script does:
   ``VideoCapture.read`` every frame, dlib's detector once (first frame, at
   half size), the 68 landmarks per frame in a box that follows them, a
   similarity of the stable points onto the first frame's and
   ``cv2.warpAffine`` to the 128-pixel crop, a 64x64 RGB copy, and on the
   first ``--flow-frames`` frames OpenCV's DualTVL1 (default parameters) for
   the consecutive flows, the flows t -> t + 37 at 64x64, and at 128x128
   with their region means;
   it saves what it computes (compressed as the store's chunks are).

Per stage it reports CPU milliseconds per frame and frames per second per
core of mepipe's tasks (decoding apart) and of the loop, and their ratio;
the builds' wall clock; and the peak memory of each worker.

    python benchmarks/longvideo.py --workdir /tmp/lvbench --out benchmarks/results          # 20,000 frames
    python benchmarks/longvideo.py --frames 2000 --flow-frames 120 --workdir /tmp/lvq --out /tmp/lvq   # quick
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import Phases, Timer, machine  # noqa: E402  (the SAMM-sized clip build's helpers)

from mepipe.pipeline.build import BuildOptions, run_build  # noqa: E402
from mepipe.pipeline.demo import DemoParams  # noqa: E402
from mepipe.pipeline.demo.face import make_subject  # noqa: E402
from mepipe.pipeline.stages import params_from_mapping  # noqa: E402
from mepipe.pipeline.stages.align import compose, crop_transform, fit_similarity  # noqa: E402
from mepipe.pipeline.stages.landmarks import shape_predictor_path  # noqa: E402
from mepipe.pipeline.stages.roi_motion import frame_features  # noqa: E402

FPS = 200.0
SIZE = (1088, 2040)
NON_FLOW = ("landmarks", "align", "kim")
FLOWS = ("flow_consecutive", "flow_apart", "roi_motion")
CONFIG = {"frames": {"force_grey": True}, "flow_consecutive": {"backend": "opencv"},
          "flow_apart": {"backend": "opencv"},
          "roi_motion": {"backend": "opencv"}}
"""Build settings: SAMM is greyscale (a grey MPEG-4 decodes as BGR), the default TV-L1 on the CPU, every other
parameter its long-video default (crops 128 px, windows of 256 frames, k = 37 frames at 200 fps)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000, help="Frames of the long video [20000].")
    parser.add_argument("--flow-frames", type=int, default=300, help="Frames the flow stages are measured on [300].")
    parser.add_argument("--loop-frames", type=int,
                        help="Frames the loop runs the non-flow operations on [all; fewer on a loaded machine: its "
                             "per-frame costs do not change along the video]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lvbench"),
                        help="Where the videos and stores go (kept: a rerun skips the phases done).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--from-json", type=Path, help="Print the tables of an earlier run's JSON and stop.")
    args = parser.parse_args()
    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "load_start": os.getloadavg(), "frames": args.frames, "flow_frames": args.flow_frames,
              "workers": args.workers}
    phase = Phases(args.workdir / "phases.json")
    video, head = args.workdir / "long.mp4", args.workdir / "head.mp4"
    result["generate"] = phase("generate", lambda: write_videos({video: args.frames, head: args.flow_frames}))
    result["mepipe_video"] = phase("mepipe_video", lambda: build(args.workdir, "long", NON_FLOW, args.workers))
    result["mepipe_flows"] = phase("mepipe_flows", lambda: build(args.workdir, "head", None, args.workers))
    result["baseline_video"] = phase("baseline_video", lambda: baseline(video, args.workdir / "loop", flows=False,
                                                                        limit=args.loop_frames))
    result["baseline_flows"] = phase("baseline_flows", lambda: baseline(head, args.workdir / "loop-head", flows=True))
    result["load_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "longvideo.json").write_text(json.dumps(result, indent=2, default=float))
    text = markdown(result)
    (args.out / "longvideo.md").write_text(text)
    print(text)


def frames(n: int):
    """``n`` greyscale 2040x1088 frames of one synthetic person: slow head motion, noise sigma 2."""
    params = DemoParams(frame_size=SIZE, interocular_px=150.0)
    subject = make_subject(1, params)
    canvas, pad = np.clip(subject.image, 0, 255).astype(np.uint8), subject.pad
    centre = subject.landmarks[36:48].mean(axis=0)
    rng = np.random.default_rng(0)
    noise = [np.rint(rng.normal(0, 2, SIZE)).astype(np.int16) for _ in range(8)]
    ups = [np.clip(z, 0, 255).astype(np.uint8) for z in noise]  # added and subtracted with saturation
    downs = [np.clip(-z, 0, 255).astype(np.uint8) for z in noise]
    for t in range(n):
        angle = 1.5 * np.sin(2 * np.pi * t / 1700)
        m = cv2.getRotationMatrix2D(tuple(centre), angle, 1.0)
        m[:, 2] += (6 * np.sin(2 * np.pi * t / 900) - pad, 4 * np.sin(2 * np.pi * t / 1300) - pad)
        frame = cv2.warpAffine(canvas, m, SIZE[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        yield cv2.subtract(cv2.add(frame, ups[t % 8]), downs[t % 8])


def write_videos(paths: dict[Path, int]) -> dict:
    """Each video the first ``n`` frames of :func:`frames` (written in one pass)."""
    start = time.perf_counter()
    writers = {p: cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE[::-1], isColor=False)
               for p in paths}
    for t, frame in enumerate(frames(max(paths.values()))):
        for p, n in paths.items():
            if t < n:
                writers[p].write(frame)
    for w in writers.values():
        w.release()
    return {p.stem: {"frames": n, "bytes": p.stat().st_size} for p, n in paths.items()} | {
        "seconds": time.perf_counter() - start}


class PeakMemory:
    """Samples the peak resident memory (``VmHWM``) of every process below this one while a build runs."""

    def __init__(self, every: float = 0.25):
        self.every, self.peaks, self.names = every, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.every):
            for child in me.children(recursive=True):
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                    self.names.setdefault(child.pid, " ".join(child.cmdline()))
                except (OSError, psutil.Error):
                    continue
                hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), hwm * 1024)

    def workers(self) -> list[int]:
        """Peak bytes of each worker process (the Dask worker processes, not their nannies), largest first."""
        return sorted((v for pid, v in self.peaks.items() if "spawn_main" in self.names.get(pid, "")), reverse=True)


def build(work: Path, name: str, stages: tuple[str, ...] | None, workers: int) -> dict:
    """A long-video build of ``<name>.mp4`` (two worker processes): wall, CPU per stage, peak memory per worker."""
    (work / f"{name}.csv").write_text(f"path,subject,fps\n{name}.mp4,p1,{FPS}\n")
    store = work / f"{name}.zarr"
    opts = BuildOptions(dataset="manifest", root=work, annotations=work / f"{name}.csv", store=store,
                        workers=workers, stages=stages, progress=False, params=params_from_mapping(CONFIG, "video"),
                        adapter_options={"unit": "videos"})
    start = time.perf_counter()
    with PeakMemory() as memory:
        report = run_build(opts)
    if report.exit_code:
        raise SystemExit(report.summary())
    return {"seconds": time.perf_counter() - start, "stage_seconds": report.stage_seconds,
            "stage_cpu_seconds": report.stage_cpu_seconds, "tasks_run": report.tasks_run,
            "worker_peak_bytes": memory.workers(), "driver_peak_bytes": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss * 1024, "faces": report.faces}


def baseline(video: Path, saved: Path, flows: bool, limit: int | None = None) -> dict:
    """CPU and wall seconds per operation of a plain loop over every frame of ``video`` (the first ``limit``; one
    thread)."""
    import dlib
    from numcodecs import Zstd

    cv2.setNumThreads(1)
    saved.mkdir(parents=True, exist_ok=True)
    params = params_from_mapping(CONFIG, "video")
    align, roi = params["align"], params["roi_motion"]
    k = roi.frames_apart(FPS)
    stable = [p - 1 for p in align.stable_points]
    ops = ("decode", "landmarks", "align", "kim", *(FLOWS if flows else ()))
    seconds, cpu = dict.fromkeys(ops, 0.0), dict.fromkeys(ops, 0.0)
    timer = Timer(seconds, cpu)
    with timer("landmarks"):
        detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))
    cap = cv2.VideoCapture(str(video))
    points, crops, small, crop_points = [], [], [], []
    box = reference = crop = None
    while limit is None or len(points) < limit:
        with timer("decode"):
            ok, img = cap.read()
            if not ok:
                break
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        with timer("landmarks"):
            if box is None:
                half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
                face = max(detector(half, 0), key=lambda r: r.area())
                box = np.array([face.left(), face.top(), face.right(), face.bottom()], np.float64) * 2
                anchor = None
            else:
                box = anchor_box + np.tile(points[-1].mean(0) - anchor, 2)
            shape = predictor(grey, dlib.rectangle(*(int(round(v)) for v in box)))
            p = np.array([(q.x, q.y) for q in shape.parts()], np.float64)
            if anchor is None:
                anchor_box, anchor = box, p.mean(0)
            points.append(p)
        with timer("align"):
            if reference is None:
                reference, crop = p, crop_transform(p, align)
            m = compose(crop, fit_similarity(p[stable], reference[stable]))
            crops.append(cv2.warpAffine(grey, m, (align.size, align.size), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE))
            crop_points.append(p @ m[:, :2].T + m[:, 2])
        with timer("kim"):
            small.append(np.repeat(cv2.resize(crops[-1], (64, 64), interpolation=cv2.INTER_AREA)[..., None], 3, -1))
    cap.release()
    zstd = Zstd(level=0)
    with timer("landmarks"):
        np.save(saved / "landmarks.npy", np.stack(points).astype(np.float32))
    with timer("align"):
        (saved / "crops.zst").write_bytes(zstd.encode(np.stack(crops).tobytes()))
        np.save(saved / "landmarks_aligned.npy", np.stack(crop_points).astype(np.float32))
    with timer("kim"):
        (saved / "frames_rgb.zst").write_bytes(zstd.encode(np.stack(small).tobytes()))
    if flows:
        solver = params["flow_consecutive"].tvl1.create()
        with timer("flow_consecutive"):
            tiny = [cv2.resize(c, (64, 64), interpolation=cv2.INTER_AREA) for c in crops]
            fields = [solver.calc(a, b, None) for a, b in zip(tiny, tiny[1:])]
            np.save(saved / "flow_consecutive.npy", np.stack(fields).astype(np.float16))
        with timer("flow_apart"):
            fields = [solver.calc(tiny[t], tiny[t + k], None) for t in range(len(tiny) - k)]
            np.save(saved / "flow_apart.npy", np.stack(fields).astype(np.float16))
        with timer("roi_motion"):
            curves = []
            for t in range(len(crops) - k):
                field = solver.calc(crops[t], crops[t + k], None).transpose(2, 0, 1)
                curves.append(np.concatenate(frame_features(field, crop_points[t] * roi.size[0] / align.size, roi)))
            np.save(saved / "roi.npy", np.stack(curves).astype(np.float32))
    return {"frames": len(points), "seconds": seconds, "cpu_seconds": cpu,
            "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def markdown(r: dict) -> str:
    video, flows = r["mepipe_video"], r["mepipe_flows"]
    base_video, base_flows = r["baseline_video"], r["baseline_flows"]
    n, nf = r["frames"], r["flow_frames"]
    gib = 1024 ** 3
    lines = [f"{r['machine']}; {r['started']}; load average {r['load_start'][0]:.1f} at the start, "
             f"{r['load_end'][0]:.1f} at the end", "",
             f"A synthetic {n}-frame 2040x1088 grey MPEG-4 video at 200 fps ({r['generate']['long']['bytes'] / gib:.2f} "
             f"GiB), built with {r['workers']} worker processes; flows on its first {nf} frames. CPU ms per frame of "
             "mepipe's tasks (decoding apart) and of the plain loop, and frames per second per core.", "",
             "| stage | frames loop / mepipe | loop CPU ms/frame | mepipe CPU ms/frame | loop frames/s/core | "
             "mepipe frames/s/core | ratio CPU |", "|---|---|---|---|---|---|---|"]

    def row(stage: str, frames: int, base: dict, mine: dict) -> str:
        b = 1000 * base["cpu_seconds"][stage] / base["frames"]
        m = 1000 * mine["stage_cpu_seconds"].get(stage, 0) / frames
        return (f"| {stage} | {base['frames']} / {frames} | {b:.2f} | {m:.2f} | {1000 / b:.0f} | {1000 / m:.0f} | "
                f"{m / b:.2f} |")

    lines += [row(s, n, base_video, video) for s in ("decode", *NON_FLOW)]
    nonflow_b = 1000 * sum(base_video["cpu_seconds"][s] for s in ("decode", *NON_FLOW)) / base_video["frames"]
    nonflow_m = 1000 * sum(video["stage_cpu_seconds"].get(s, 0) for s in ("decode", *NON_FLOW)) / n
    lines.append(f"| **non-flow, together** | {base_video['frames']} / {n} | {nonflow_b:.2f} | {nonflow_m:.2f} | "
                 f"{1000 / nonflow_b:.0f} | {1000 / nonflow_m:.0f} | {nonflow_m / nonflow_b:.2f} |")
    lines += [row(s, nf, base_flows, flows) for s in FLOWS]
    workers = video["worker_peak_bytes"]
    lines += ["", f"Build wall clock: {video['seconds']:.0f} s for the non-flow stages of {n} frames "
              f"({n / video['seconds']:.0f} frames/s on {r['workers']} workers; the loop "
              f"{sum(base_video['seconds'].values()):.0f} s for {base_video['frames']} frames on one core), "
              f"{flows['seconds']:.0f} s for every stage of {nf} frames.", "",
              "| peak resident memory (VmHWM) | GiB |", "|---|---|"]
    lines += [f"| worker {i + 1}, non-flow stages of {n} frames | {b / gib:.2f} |" for i, b in enumerate(workers)]
    lines += [f"| worker {i + 1}, every stage of {nf} frames | {b / gib:.2f} |"
              for i, b in enumerate(flows["worker_peak_bytes"])]
    lines += [f"| the loop (this process, after {base_video['frames']} frames; it keeps every crop) | "
              f"{base_video['peak_bytes'] / gib:.2f} |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
