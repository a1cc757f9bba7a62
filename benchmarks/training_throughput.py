"""Training throughput on the CPU: samples per second per network, against a reference CNN in the same run.

For every registered network it times training steps (forward, loss,
backward, AdamW) on synthetic items of its recipe's smallest input shape, at
the recipe's batch size (at most ``--max-batch``), in one process with
``--threads`` threads, and reports samples/s and the seconds 1,000 samples
take. The same run times a reference: the small CNN of ``shared/perf-floor.md``
(three 3x3 convolutions of 32/64/128 channels, FC 512, 5 classes) on batches
of 100 RGB 112x112 images, so a figure read on a loaded or another machine
scales by the ratio column.

    python benchmarks/training_throughput.py --out benchmarks/results        # ~3 min on 2 quiet cores
    python benchmarks/training_throughput.py --threads 2 --out /tmp/tt
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn


def reference_cnn() -> nn.Module:
    """The perf-floor reference: 3 conv (32/64/128, 3x3, ReLU, 2x2 max-pool) + FC 512 + 5 classes, 112x112 input."""
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(),
                         nn.Linear(128 * 14 * 14, 512), nn.ReLU(), nn.Linear(512, 5))


def step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, warm: int, bf16: bool) -> float:
    """Median seconds of one training step (forward, cross-entropy, backward, AdamW) after ``warm`` steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(warm + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            logits = out if isinstance(out, torch.Tensor) else out[0]
            loss = nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warm:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="Folder for training-throughput.json and .md.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a build or data loader uses the rest).")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AVX512-BF16/AMX).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from mepipe.train.models import create_model, get_recipe, list_models

    result = {"machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
                         f"Python {platform.python_version()}, torch {torch.__version__}",
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_start": os.getloadavg(),
              "threads": args.threads, "bf16": args.bf16, "rows": []}
    x, y = torch.randn(100, 3, 112, 112), torch.randint(0, 5, (100,))
    reference = 100 / step_seconds(reference_cnn(), x, y, args.steps, 1, args.bf16)
    result["reference_samples_per_s"] = reference
    print(f"reference CNN: {reference:.1f} samples/s", flush=True)
    for name in list_models():
        recipe = get_recipe(name)
        batch = min(recipe.stages[0].optimiser.batch_size, args.max_batch)
        shape = tuple(recipe.min_input_shape)
        try:
            model = create_model(name, num_classes=3)
            seconds = step_seconds(model, torch.randn(batch, *shape), torch.randint(0, 3, (batch,)),
                                   args.steps, 1, args.bf16)
            row = {"model": name, "input": list(shape), "batch": batch, "step_s": seconds,
                   "samples_per_s": batch / seconds, "vs_reference": batch / seconds / reference}
        except Exception as e:  # one network failing must not hide the others' figures
            row = {"model": name, "input": list(shape), "error": f"{type(e).__name__}: {e}"}
        result["rows"].append(row)
        print(row, flush=True)
    result["load_end"] = os.getloadavg()
    write_results(Path(args.out), "training-throughput", result, markdown(result))


def markdown(r: dict) -> str:
    lines = [f"{r['machine']}; {r['started']}; {r['threads']} thread(s){', bf16 autocast' if r['bf16'] else ', fp32'};"
             f" load average {r['load_start'][0]:.1f} at the start, {r['load_end'][0]:.1f} at the end",
             "",
             f"Reference CNN (perf-floor, batch 100 x 3x112x112): {r['reference_samples_per_s']:.1f} samples/s",
             "",
             "| network | input | batch | step s | samples/s | s per 1,000 samples | vs reference |",
             "|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['input']} | - | - | - | - | {row['error']} |")
            continue
        lines.append(f"| {row['model']} | {'x'.join(map(str, row['input']))} | {row['batch']} | {row['step_s']:.3f} | "
                     f"{row['samples_per_s']:.1f} | {1000 / row['samples_per_s']:.0f} | {row['vs_reference']:.2f} |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, stem: str, result: dict, text: str) -> None:
    """Write ``stem.json`` (the measurements) and ``stem.md`` (their tables) in ``out``, and print the tables."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
