"""The check a lent GPU runs: batched TV-L1 on CUDA (agreement with OpenCV, pairs/s) and bf16 training steps.

Two steps, because the GPU machine has no OpenCV-contrib (no DualTVL1) and
no network:

``prepare`` (here, on the CPU) writes ``benchmarks/gpu_inputs/<size>.npz``
per flow variant size: SAMM-like, demo-crop and known-shift pairs and
OpenCV's flows of them (the reference), from ``mepipe.pipeline.flow_agreement``.

``run`` (on the GPU machine, via ``benchmarks/gpu_check.sh``) then

1. computes the torch flows of those pairs on the device, eager and with
   ``torch.compile``, and reports their agreement with OpenCV per size and
   input kind (mean EPE, % of pixels over 0.5 px, max EPE);
2. times flow pairs per second at each size for growing batch sizes up to
   what fills an H200 (the SAMM-like pairs tiled), eager and compiled, and
   compares them with the 2-core OpenCV rate measured on the development
   machine (``--opencv-2core``; the issue's goal is 50x);
3. times bf16-autocast training steps (forward, backward, AdamW) of every
   registered network on synthetic items of its recipe's smallest input
   shape (``min_input_shape``; paper-size epochs from a store are issue 15
   item 6): samples/s, seconds per 1,000 samples, peak memory.

Results go to ``OUT/gpu-check.json`` and ``OUT/gpu-check.md`` as they come,
so a run stopped at its time limit still reports what it finished.
``--budget-s`` (300) stops starting new measurements after that many
seconds; they run in order of importance (eager agreement, mid-size
batches, compiled, training, then the largest batches).

    python benchmarks/gpu_check.py prepare
    python benchmarks/gpu_check.py wheels     # zarr & co. for the GPU image's Python 3.12 (training steps)
    python benchmarks/gpu_check.py run --device cpu --dry-run --out /tmp/gpu-dry   # proves the script here
    bash benchmarks/gpu_check.sh                                                   # on the GPU machine
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SIZES = {"300x245": (300, 245), "112x112": (112, 112), "64x64": (64, 64)}
PREPARED_PAIRS = {"300x245": 6, "112x112": 12, "64x64": 24}
"""Pairs of each input kind per size in the prepared inputs (OpenCV cost here: ~1 min in all)."""

GPU_BATCHES = {"300x245": (256, 2048), "112x112": (1024, 8192), "64x64": (2048, 16384)}
"""Pairs per call timed on the GPU: a mid-size batch and one that fills much of an H200 (~240 B/pixel)."""

DRY_BATCHES = {"300x245": (2,), "112x112": (2,), "64x64": (2, 4)}

OPENCV_2CORE = {"300x245": 2.8, "112x112": 16.8, "64x64": 45.4}
"""Pairs/s of OpenCV DualTVL1 in two single-threaded processes on the 2-core development machine
(shared/perf-floor.md, SAMM-like pairs; 300x245 = 2 x 1.46 x 0.97); override with --opencv-2core."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="Write inputs and OpenCV reference flows (run where OpenCV-contrib is).")
    prep.add_argument("--out", default="benchmarks/gpu_inputs")
    prep.add_argument("--store", help="A store with crops for the demo pairs (default: build a small demo).")
    wheels = sub.add_parser("wheels", help="Download the wheels the GPU image lacks (zarr and its needs) for Python 3.12.")
    wheels.add_argument("--out", default="benchmarks/gpu_inputs/wheels")
    run = sub.add_parser("run", help="Agreement, pairs/s and training steps on --device.")
    run.add_argument("--inputs", default="benchmarks/gpu_inputs")
    run.add_argument("--device", default="cuda")
    run.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results/gpu-check"))
    run.add_argument("--dry-run", action="store_true", help="Tiny batches and steps: proves the script on a CPU.")
    run.add_argument("--budget-s", type=float, default=300.0, help="Start no new measurement after this.")
    run.add_argument("--no-compile", action="store_true", help="Skip the torch.compile measurements.")
    run.add_argument("--opencv-2core", default=None,
                     help="size=pairs/s,... of OpenCV on 2 cores to compare with (default: perf-floor.md's).")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(Path(args.out), args.store)
    elif args.command == "wheels":
        download_wheels(Path(args.out))
    else:
        rates = dict(OPENCV_2CORE)
        for item in filter(None, (args.opencv_2core or "").split(",")):
            size, rate = item.split("=")
            rates[size] = float(rate)
        Check(args, rates).run()


# --- prepare (development machine) ----------------------------------------------------------

def prepare(out: Path, store: str | None) -> None:
    import multiprocessing as mp

    import cv2

    from flow_backends import build_demo_store, demo_pairs, read_demo_crops

    from mepipe.pipeline.flow_agreement import me_pairs, shifted_texture_pairs

    cv2.setNumThreads(1)
    crops = read_demo_crops(Path(store) if store else build_demo_store(Path(tempfile.mkdtemp(prefix="gpucheck-"))))
    out.mkdir(parents=True, exist_ok=True)
    with mp.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        for name, size in SIZES.items():
            n = PREPARED_PAIRS[name]
            kinds = {"SAMM-like": me_pairs(n, size, seed=2), "demo": demo_pairs(crops, size, n),
                     "shift": shifted_texture_pairs(n, size, seed=1)[:2]}
            prev = np.concatenate([p for p, _ in kinds.values()])
            nxt = np.concatenate([q for _, q in kinds.values()])
            kind = np.repeat(list(kinds), [len(p) for p, _ in kinds.values()])
            ref = np.stack(pool.map(_opencv_pair, list(zip(prev, nxt))))
            np.savez_compressed(out / f"{name}.npz", prev=prev, next=nxt, kind=kind, opencv=ref,
                                opencv_version=cv2.__version__)
            print(f"{name}: {len(prev)} pairs and their OpenCV flows -> {out / (name + '.npz')}", flush=True)


def _opencv_pair(pair):
    import cv2

    from mepipe.pipeline.stages.flow import TVL1Params

    cv2.setNumThreads(1)
    return TVL1Params().create().calc(pair[0], pair[1], None).transpose(2, 0, 1)


GPU_IMAGE_LACKS = ("zarr", "numcodecs", "donfig", "google-crc32c")
"""Packages mepipe.train imports that the GPU image does not have (see the device's KINDS.md)."""


def download_wheels(out: Path) -> None:
    """The versions installed here of what the GPU image lacks, as CPython 3.12 manylinux wheels."""
    import subprocess
    import sys
    from importlib.metadata import version

    platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64"]
    for name in GPU_IMAGE_LACKS:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp",
                        *[a for p in platforms for a in ("--platform", p)], "-d", str(out),
                        f"{name}=={version(name)}"], check=True)


# --- run (GPU machine) ---------------------------------------------------------------------

class Check:
    def __init__(self, args, opencv_2core: dict[str, float]):
        self.args = args
        self.device = torch.device(args.device)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.opencv_2core = opencv_2core
        self.result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(self.device),
                       "dry_run": args.dry_run, "agreement": [], "throughput": [], "training": [], "skipped": []}

    def run(self) -> None:
        """Measurements in order of importance, so that the time budget cuts the least useful."""
        from mepipe.pipeline.stages.tvl1_torch import tvl1_batch

        self.tvl1 = tvl1_batch
        self._save()
        data = {name: np.load(Path(self.args.inputs) / f"{name}.npz") for name in SIZES}
        self.result["opencv_version_of_reference"] = str(data["64x64"]["opencv_version"])
        batches = DRY_BATCHES if self.args.dry_run else GPU_BATCHES
        modes = [False] if self.args.no_compile else [False, True]
        for name in SIZES:
            self.agreement(name, data[name], compiled=False)
        for name in SIZES:
            self.throughput(name, data[name], False, batches[name][:1])
        if not self.args.no_compile:
            for name in SIZES:
                self.agreement(name, data[name], compiled=True)
                self.throughput(name, data[name], True, batches[name][:1])
        self.training()
        for name in SIZES:
            for compiled in modes:
                self.throughput(name, data[name], compiled, batches[name][1:])
        self.result["seconds"] = time.perf_counter() - self.start
        self._save()
        print(self.markdown())

    def _left(self) -> bool:
        return time.perf_counter() - self.start < self.args.budget_s

    def _flows(self, prev, nxt, compiled):
        return self.tvl1(prev, nxt, device=self.device, compile=compiled)

    def agreement(self, name, data, compiled) -> None:
        from mepipe.pipeline.flow_agreement import agreement

        if not self._left():
            self.result["skipped"].append(f"agreement {name} compiled={compiled}")
            return
        kinds = data["kind"]
        pick = np.concatenate([np.flatnonzero(kinds == k)[:1] for k in np.unique(kinds)]) if self.args.dry_run \
            else np.arange(len(kinds))
        if compiled and self.args.dry_run and name != "64x64":
            return
        start = time.perf_counter()
        flows = self._flows(data["prev"][pick], data["next"][pick], compiled)
        seconds = time.perf_counter() - start
        for kind in np.unique(kinds[pick]):
            rows = kinds[pick] == kind
            a = agreement(flows[rows], data["opencv"][pick][rows])
            self.result["agreement"].append({
                "size": name, "input": str(kind), "compiled": compiled, "pairs": int(rows.sum()),
                "epe_mean": a.epe_mean, "pct_over_0_5": 100 * a.frac_over, "epe_max": a.epe_max,
                "within": a.within(), "seconds_incl_compile": seconds})
            print(_agree_md(self.result["agreement"][-1]), flush=True)
        self._save()

    def throughput(self, name, data, compiled, batches) -> None:
        if compiled and self.args.dry_run and name != "64x64":
            return
        pool = np.flatnonzero(data["kind"] == "SAMM-like")
        for batch in batches:
            if not self._left():
                self.result["skipped"].append(f"throughput {name} batch {batch} compiled={compiled}")
                continue
            index = pool[np.arange(batch) % len(pool)]
            prev = torch.from_numpy(data["prev"][index]).to(self.device)
            nxt = torch.from_numpy(data["next"][index]).to(self.device)
            self._flows(prev[:2], nxt[:2], compiled)  # warm-up (and compilation)
            _sync(self.device)
            torch.cuda.reset_peak_memory_stats() if self.device.type == "cuda" else None
            start = time.perf_counter()
            self._flows(prev, nxt, compiled)
            _sync(self.device)
            seconds = time.perf_counter() - start
            rate = batch / seconds
            row = {"size": name, "batch": batch, "compiled": compiled, "seconds": seconds, "pairs_per_s": rate,
                   "x_opencv_2core": rate / self.opencv_2core[name],
                   "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if self.device.type == "cuda" else None}
            self.result["throughput"].append(row)
            print(_speed_md(row), flush=True)
            self._save()

    def training(self) -> None:
        """bf16 training steps of every network on synthetic items of its recipe's smallest input shape."""
        try:
            from mepipe.train.models import create_model, get_recipe, list_models
        except ImportError as e:  # the GPU image lacks zarr unless its wheels were carried
            self.result["skipped"].append(f"training: {type(e).__name__}: {e} (carry the wheels: gpu_check.py wheels)")
            return
        steps, warm = (1, 1) if self.args.dry_run else (20, 3)
        for name in list_models():
            if not self._left():
                self.result["skipped"].append(f"training {name}")
                continue
            recipe = get_recipe(name)
            batch = 2 if self.args.dry_run else min(recipe.stages[0].optimiser.batch_size, 64)
            shape = tuple(recipe.min_input_shape)
            try:
                model = create_model(name, num_classes=3).to(self.device)
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                x = torch.randn(batch, *shape, device=self.device)
                y = torch.randint(0, 3, (batch,), device=self.device)
                if self.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                for i in range(warm + steps):
                    if i == warm:
                        _sync(self.device)
                        start = time.perf_counter()
                    with torch.autocast(self.device.type, dtype=torch.bfloat16):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                _sync(self.device)
                seconds = (time.perf_counter() - start) / steps
                row = {"model": name, "input": list(shape), "batch": batch, "step_s": seconds,
                       "samples_per_s": batch / seconds, "s_per_1000_samples": 1000 * seconds / batch,
                       "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if self.device.type == "cuda" else None}
            except Exception as e:  # one network failing must not hide the others' figures
                row = {"model": name, "error": f"{type(e).__name__}: {e}"}
            self.result["training"].append(row)
            print(row, flush=True)
            self._save()

    def _save(self) -> None:
        (self.out / "gpu-check.json").write_text(json.dumps(self.result, indent=2, default=str))
        (self.out / "gpu-check.md").write_text(self.markdown())

    def markdown(self) -> str:
        r = self.result
        lines = [f"{r['machine']}; {r['date']}" + ("; DRY RUN (tiny sizes)" if r["dry_run"] else ""), "",
                 "| size | input | compiled | pairs | mean EPE (px) | % > 0.5 px | max EPE (px) | within |",
                 "|---|---|---|---|---|---|---|---|"]
        lines += [_agree_md(a) for a in r["agreement"]]
        lines += ["", "| size | batch | compiled | s | pairs/s | x OpenCV 2 cores | peak GiB |", "|---|---|---|---|---|---|---|"]
        lines += [_speed_md(t) for t in r["throughput"]]
        lines += ["", "| network | input | batch | step s | samples/s | s per 1000 samples | peak GiB |",
                  "|---|---|---|---|---|---|---|"]
        for t in r["training"]:
            lines.append(f"| {t['model']} | error: {t['error']} |" if "error" in t else
                         f"| {t['model']} | {t['input']} | {t['batch']} | {t['step_s']:.4f} | {t['samples_per_s']:.0f} | "
                         f"{t['s_per_1000_samples']:.2f} | {_gib(t['peak_gib'])} |")
        if r["skipped"]:
            lines += ["", "Skipped (time budget): " + "; ".join(r["skipped"])]
        return "\n".join(lines) + "\n"


def _agree_md(a) -> str:
    return (f"| {a['size']} | {a['input']} | {a['compiled']} | {a['pairs']} | {a['epe_mean']:.4f} | "
            f"{a['pct_over_0_5']:.3f} | {a['epe_max']:.2f} | {'yes' if a['within'] else 'NO'} |")


def _speed_md(t) -> str:
    return (f"| {t['size']} | {t['batch']} | {t['compiled']} | {t['seconds']:.2f} | {t['pairs_per_s']:.1f} | "
            f"{t['x_opencv_2core']:.1f} | {_gib(t['peak_gib'])} |")


def _gib(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _machine(device: torch.device) -> str:
    gpu = ""
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        gpu = f"{p.name} ({p.total_memory / 2**30:.0f} GiB), "
    return f"{gpu}{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}"


if __name__ == "__main__":
    main()
