"""Training input throughput per store back-end, against the model's training step on the same batches.

For SHCNN (every colour-coded first->each flow field, batches of the
recipe's 100) and STRCN-G (Xia's augmented epoch: every clip's onset->apex
flow of the magnified clip under every stored alpha and frame subset,
batches of 20) it times epochs of batches (median of ``--epochs``), from the store to the batch
tensors the model takes (read, verify, decode, colour-code, standardise,
collate), with the training code's own datasets, samplers and loader
(``workers = 0``, the default: the loading shares the training process), for
the store as:

- ``folder``: the built store, read lazily (a small clip cache; SHCNN's
  clip-block sampler reads each clip once per epoch);
- ``memory``: ``in_memory=True``, every clip read once up front (the
  ``load`` column), then served from RAM;
- ``zip``: the store packed by ``mepipe store pack``, read lazily;
- ``http cold`` / ``http warm``: the folder served by ``python -m
  http.server`` on 127.0.0.1 in its own process, opened by URL through the
  verified read cache, first with an empty cache, then again with the cache
  the first pass filled.

In the same run it times training steps (forward, cross-entropy, backward,
AdamW; one thread, fp32) of each network on the first batch the loader
produced, so ``x step`` says how many times faster than the CPU trains the
input arrives: above 1, the loader keeps a CPU step fed from one core.

    python benchmarks/loader_throughput.py --store data/stores/demo.zarr --out benchmarks/results
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import step_seconds, write_results  # noqa: E402  (a sibling script)

from mepipe.featurestore import open_store  # noqa: E402
from mepipe.featurestore.location import locate  # noqa: E402
from mepipe.featurestore.pack import pack  # noqa: E402
from mepipe.train.augment import Magnification  # noqa: E402
from mepipe.train.clips import ClipTable  # noqa: E402
from mepipe.train.inputs.base import VariantSampler, fit_standardiser  # noqa: E402
from mepipe.train.inputs.flow_frames import ClipBlockSampler, FlowFrameDataset  # noqa: E402
from mepipe.train.inputs.magnified_flows import MagnifiedFlowDataset  # noqa: E402
from mepipe.train.loop import make_loader  # noqa: E402
from mepipe.train.models import create_model, get_recipe  # noqa: E402

NETWORKS = ("shcnn", "strcn-g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo.zarr", help="A built store with SHCNN's and STRCN-G's features.")
    parser.add_argument("--out", default="benchmarks/results", help="Folder for loader-throughput.json and .md.")
    parser.add_argument("--steps", type=int, default=3, help="Timed training steps per network (median).")
    parser.add_argument("--epochs", type=int, default=3, help="Timed loader epochs per store (median).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = Path(args.store).resolve()
    result = {"machine": f"{socket.gethostname()}: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}),"
                         f" Python {platform.python_version()}, torch {torch.__version__}",
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_start": os.getloadavg(),
              "store": str(store), "rows": [], "steps": {}}
    work = Path(tempfile.mkdtemp(prefix="loader-throughput-"))
    try:
        zipped = work / "store.zip"
        pack(store, zipped)
        with http_server(store.parent) as base:
            url = f"{base}/{store.name}"
            for network in NETWORKS:
                standardiser = None
                cache = work / f"cache-{network}"
                backends = [("folder", lambda: open_store(store), False),
                            ("memory", lambda: open_store(store), True),
                            ("zip", lambda: open_store(zipped), False),
                            ("http cold", lambda: open_store(locate(url, cache_dir=cache)), False),
                            ("http warm", lambda: open_store(locate(url, cache_dir=cache)), False)]
                for backend, opener, in_memory in backends:
                    row, first, standardiser = epoch(network, backend, opener, in_memory, standardiser, args.epochs)
                    result["rows"].append(row)
                    print(row, flush=True)
                    if network not in result["steps"]:
                        result["steps"][network] = training_step(network, first, args.steps)
                        print(network, result["steps"][network], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_end"] = os.getloadavg()
    write_results(Path(args.out), "loader-throughput", result, markdown(result))


@contextlib.contextmanager
def http_server(folder: Path):
    """``python -m http.server`` serving ``folder`` on 127.0.0.1 in its own process; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def datasets_for(network: str, clips, in_memory: bool):
    """The training dataset and loader of a network's recipe over every clip of the store (labels 0)."""
    batch = get_recipe(network).stages[0].optimiser.batch_size
    samples = clips.sample_ids
    labels = [0] * len(samples)
    if network == "shcnn":
        data = FlowFrameDataset(clips, samples, labels, in_memory=in_memory)
        sampler = None if in_memory else ClipBlockSampler(data, seed=0)
        return data, lambda: make_loader(data, batch, sampler=sampler, shuffle=sampler is None, seed=0)
    test_alpha = Magnification.recorded(ClipTable.of(clips), "the benchmark").test_index
    data = MagnifiedFlowDataset(clips, samples, labels, test_alpha=test_alpha, in_memory=in_memory)
    sampler = VariantSampler(len(samples), data.n_variants, data.n_variants, seed=0)
    return data, lambda: make_loader(data, batch, sampler=sampler)


def epoch(network: str, backend: str, opener, in_memory: bool, standardiser, epochs: int):
    """Open the store, make the dataset (loading it when ``in_memory``) and run ``epochs`` epochs of batches.

    The epoch figures are medians; ``http cold`` runs one epoch (its second would find the cache filled).
    """
    start, cpu = time.perf_counter(), time.process_time()
    clips = opener()
    data, loader = datasets_for(network, clips, in_memory)
    if standardiser is None:  # fitted once per network (as a fold does on its training clips), outside the timing
        pause = time.perf_counter()
        standardiser = fit_standardiser(data, center=network == "shcnn", seed=0)
        start += time.perf_counter() - pause
    data.with_standardiser(standardiser)
    load_s, load_cpu = time.perf_counter() - start, time.process_time() - cpu
    walls, cpus = [], []
    for _ in range(1 if backend == "http cold" else epochs):
        start, cpu = time.perf_counter(), time.process_time()
        items, first = 0, None
        for batch in loader():
            items += len(batch.x)
            first = batch.x if first is None else first
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    seconds, cpu_s = float(np.median(walls)), float(np.median(cpus))
    row = {"network": network, "backend": backend, "items": items, "batch": len(first),
           "input": list(first.shape[1:]), "open_s": load_s, "open_cpu_s": load_cpu, "epoch_s": seconds,
           "epoch_cpu_s": cpu_s, "epochs_s": walls, "samples_per_s": items / seconds,
           "cpu_ms_per_sample": 1000 * cpu_s / items}
    return row, first, standardiser


def training_step(network: str, x: torch.Tensor, steps: int) -> dict:
    torch.manual_seed(0)
    model = create_model(network, num_classes=3)
    seconds = step_seconds(model, x, torch.randint(0, 3, (len(x),)), steps, 1, False)
    return {"batch": len(x), "input": list(x.shape[1:]), "step_s": seconds, "samples_per_s": len(x) / seconds}


def markdown(r: dict) -> str:
    lines = [f"{r['machine']}; {r['started']}; load average {r['load_start'][0]:.1f} at the start, "
             f"{r['load_end'][0]:.1f} at the end; loader in the training process (workers 0), torch 1 thread",
             "",
             "| network | store | items | batch x input | open (+ load) s | epoch s | loader samples/s | "
             "loader CPU ms/sample | train step samples/s | loader x step |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        step = r["steps"][row["network"]]
        lines.append(f"| {row['network']} | {row['backend']} | {row['items']} | {row['batch']} x "
                     f"{'x'.join(map(str, row['input']))} | {row['open_s']:.2f} | {row['epoch_s']:.2f} | "
                     f"{row['samples_per_s']:.0f} | {row['cpu_ms_per_sample']:.2f} | {step['samples_per_s']:.1f} | "
                     f"{row['samples_per_s'] / step['samples_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
