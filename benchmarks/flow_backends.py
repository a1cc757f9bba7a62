"""TV-L1 backends side by side: agreement with OpenCV and flow pairs per second, per variant size.

For each flow variant's size (300x245 onset->apex, 112x112 first->each,
64x64 consecutive) it computes the same pairs with OpenCV's DualTVL1 and
with the PyTorch solver (``mepipe.pipeline.stages.tvl1_torch``), on three
kinds of input (``mepipe.pipeline.flow_agreement``): known sub-pixel shifts
of a texture, demo crops (from ``--store`` or a small demo store built
here) and noisy SAMM-like micro-expression pairs. It reports

- agreement: mean end-point error between the two backends, the share of
  pixels off by more than 0.5 px and the largest error, per size and kind;
- throughput on the SAMM-like pairs: OpenCV in one process, OpenCV in two
  single-threaded processes (process-level parallelism, as a build runs it),
  and torch on the CPU with 1 and 2 threads (all pairs in one call), with
  the ratio of each to one OpenCV process measured in the same run.

    python benchmarks/flow_backends.py --out benchmarks/results
    python benchmarks/flow_backends.py --quick      # a minute: fewer, smaller batches
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mepipe.pipeline.flow_agreement import agreement, clip_pairs, me_pairs, shifted_texture_pairs
from mepipe.pipeline.stages.flow import TVL1Params
from mepipe.pipeline.stages.tvl1_torch import tvl1_batch

SIZES = {"300x245": (300, 245), "112x112": (112, 112), "64x64": (64, 64)}
"""The three flow variants' sizes (W x H): onset->apex, first->each, consecutive."""

PAIRS = {"300x245": 8, "112x112": 16, "64x64": 32}
QUICK_PAIRS = {"300x245": 2, "112x112": 4, "64x64": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="A store with crops for the demo-crop pairs (default: build a small demo).")
    parser.add_argument("--out", default="benchmarks/results", help="Folder for flow-backends.json and .md.")
    parser.add_argument("--quick", action="store_true", help="Fewer pairs per size.")
    parser.add_argument("--sizes", default=",".join(SIZES), help="Comma-separated sizes to run.")
    args = parser.parse_args()
    counts = QUICK_PAIRS if args.quick else PAIRS
    sizes = [s for s in args.sizes.split(",") if s]
    cv2.setNumThreads(1)
    store = Path(args.store) if args.store else build_demo_store(Path(tempfile.mkdtemp(prefix="flowbench-")))
    demo_crops = read_demo_crops(store)
    load_before = os.getloadavg()
    rows, speed = [], []
    with mp.get_context("spawn").Pool(2, initializer=_single_thread) as pool:
        pool.map(_warm, range(2))
        for name in sizes:
            size, n = SIZES[name], counts[name]
            inputs = {"shift": shifted_texture_pairs(n, size, seed=1)[:2],
                      "demo": demo_pairs(demo_crops, size, n),
                      "SAMM-like": me_pairs(n, size, seed=2)}
            for kind, (prev, nxt) in inputs.items():
                timing = time_backends(prev, nxt, pool) if kind == "SAMM-like" else None
                ref, out = timing.pop("flows") if timing else (opencv_flows(prev, nxt), torch_flows(prev, nxt, 1)[0])
                a = agreement(out, ref)
                rows.append({"size": name, "input": kind, "pairs": len(prev), "epe_mean": a.epe_mean,
                             "pct_over_0_5": 100 * a.frac_over, "epe_max": a.epe_max, "within": a.within()})
                print(_row_md(rows[-1]), flush=True)
                if timing:
                    speed.append({"size": name, "pairs": len(prev), **timing})
                    print(_speed_md(speed[-1]), flush=True)
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": load_before,
              "load_after": os.getloadavg(), "tvl1": "OpenCV defaults", "agreement": rows, "throughput": speed}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flow-backends.json").write_text(json.dumps(result, indent=2))
    (out / "flow-backends.md").write_text(report_md(result))
    print(report_md(result))


def build_demo_store(folder: Path) -> Path:
    """A small demo corpus and its core store (landmarks, align, apex), built in this process."""
    from mepipe.pipeline.build import BuildOptions, run_build
    from mepipe.pipeline.demo import DemoParams, write_demo

    root, store = folder / "demo", folder / "demo.zarr"
    write_demo(root, DemoParams(n_subjects=2, n_clips=1))
    report = run_build(BuildOptions(dataset="demo", root=root, store=store, scheduler="sync", progress=False,
                                    stages=("landmarks", "align", "apex")))
    if report.exit_code:
        raise SystemExit(report.summary())
    return store


def read_demo_crops(store: Path) -> list[np.ndarray]:
    from mepipe.featurestore import open_store

    s = open_store(store)
    return [s.read("crops", sample) for sample in s.samples["sample"]]


def demo_pairs(clips: list[np.ndarray], size, n: int):
    """n first->each and consecutive pairs spread over the demo clips."""
    per_clip = max(1, -(-n // (2 * len(clips))))
    pairs = [clip_pairs(c, size, max_pairs=per_clip) for c in clips]
    prev, nxt = np.concatenate([p for p, _ in pairs]), np.concatenate([q for _, q in pairs])
    pick = np.linspace(0, len(prev) - 1, n).round().astype(int)
    return prev[pick], nxt[pick]


def opencv_flows(prev, nxt, params: TVL1Params = TVL1Params()) -> np.ndarray:
    solver = params.create()
    return np.stack([solver.calc(a, b, None).transpose(2, 0, 1) for a, b in zip(prev, nxt)])


def torch_flows(prev, nxt, threads: int, device: str = "cpu"):
    """Flows, wall seconds and CPU seconds (this process, all threads) of one batched call."""
    torch.set_num_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    flows = tvl1_batch(prev, nxt, device=device)
    return flows, time.perf_counter() - start, time.process_time() - cpu


def time_backends(prev, nxt, pool) -> dict:
    """Pairs/s of each backend on the same pairs, their ratio to one OpenCV process, and CPU ms per pair.

    Wall-clock rates need free cores (two processes or threads); CPU time per
    pair of the in-process runs is what stays comparable on a loaded machine.
    """
    start, cpu = time.perf_counter(), time.process_time()
    ref = opencv_flows(prev, nxt)
    t_cv1, c_cv1 = time.perf_counter() - start, time.process_time() - cpu
    halves = [(prev[i::2], nxt[i::2]) for i in range(2)]
    start = time.perf_counter()
    pool.map(_opencv_chunk, halves)
    t_cv2 = time.perf_counter() - start
    out, t_th1, c_th1 = torch_flows(prev, nxt, 1)
    _, t_th2, c_th2 = torch_flows(prev, nxt, 2)
    n = len(prev)
    rates = {"opencv_1proc": n / t_cv1, "opencv_2proc": n / t_cv2, "torch_cpu_1thr": n / t_th1,
             "torch_cpu_2thr": n / t_th2}
    cpu_ms = {"opencv_1proc": 1e3 * c_cv1 / n, "torch_cpu_1thr": 1e3 * c_th1 / n, "torch_cpu_2thr": 1e3 * c_th2 / n}
    return {"pairs_per_s": rates, "ratio_to_opencv_1proc": {k: v / rates["opencv_1proc"] for k, v in rates.items()},
            "cpu_ms_per_pair": cpu_ms, "flows": (ref, out)}


def _single_thread() -> None:
    cv2.setNumThreads(1)


def _warm(_):
    return cv2.optflow.DualTVL1OpticalFlow_create() is not None


def _opencv_chunk(chunk):
    prev, nxt = chunk
    return opencv_flows(prev, nxt).shape


def machine() -> str:
    return (f"{socket.gethostname()}: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}, OpenCV {cv2.__version__}, torch {torch.__version__}")


def _row_md(r) -> str:
    return (f"| {r['size']} | {r['input']} | {r['pairs']} | {r['epe_mean']:.4f} | {r['pct_over_0_5']:.3f} | "
            f"{r['epe_max']:.2f} | {'yes' if r['within'] else 'NO'} |")


def _speed_md(s) -> str:
    r, q, c = s["pairs_per_s"], s["ratio_to_opencv_1proc"], s["cpu_ms_per_pair"]
    cells = [f"{r[k]:.2f} ({q[k]:.2f}x)" for k in r] + [f"{c[k]:.0f}" for k in c]
    return " | ".join([f"| {s['size']}", str(s["pairs"])] + cells) + " |"


def report_md(result) -> str:
    lines = [f"Machine: {result['machine']}; {result['date']}; load average before/after "
             f"{result['load_before'][0]:.1f}/{result['load_after'][0]:.1f}. TV-L1: {result['tvl1']}.", "",
             "Agreement (torch on the CPU vs OpenCV; bounds: mean EPE <= 0.05 px, <= 2 % of pixels over 0.5 px)", "",
             "| size | input | pairs | mean EPE (px) | % > 0.5 px | max EPE (px) | within |",
             "|---|---|---|---|---|---|---|"]
    lines += [_row_md(r) for r in result["agreement"]]
    lines += ["", "Flow pairs per second on SAMM-like pairs (ratio to one OpenCV process in the same run)", "",
              "| size | pairs | OpenCV 1 process | OpenCV 2 processes | torch CPU 1 thread | torch CPU 2 threads "
              "| CPU ms/pair OpenCV | CPU ms/pair torch 1 thr | CPU ms/pair torch 2 thr |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [_speed_md(s) for s in result["throughput"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
