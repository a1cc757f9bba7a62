"""The align task against the baseline's align step, in one process, interleaved: CPU ms per frame.

``build.py`` compares stages across phases of a whole build, each task's
CPU seconds those of a Dask worker process, rounded to 10 ms per stage; on a
shared machine the load changes between the phases. This times the align
stage alone on one SAMM-sized clip (the demo generator at 2040x1088, the
landmarks built by mepipe), in this process, repeating in turn:

- the baseline's align step (``build.py``'s): an eye-centre similarity and
  ``cv2.warpAffine`` to 256x256 per frame, saving the crops (Zstandard level
  0, the store's codec), the crop landmarks and the transforms;
- mepipe's align task: read the landmarks from the store, the kernel
  (:func:`mepipe.pipeline.stages.align.align_clip`), write its three
  features with their cache key (``pipeline/tasks.py``);
- the same task with every read and write through Zarr (``StoreWriter(direct=False)``);
- the kernel alone.

``--frames 60`` repeats the clip backwards to the full benchmark's clip length.

    python benchmarks/align_task.py --workdir /tmp/align-task --frames 60
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from numcodecs import Zstd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import eye_similarity, samm_sized  # noqa: E402  (a sibling script)

from mepipe.featurestore.layout import feature_path  # noqa: E402
from mepipe.featurestore.writer import StoreWriter  # noqa: E402
from mepipe.pipeline.build import BuildOptions, run_build  # noqa: E402
from mepipe.pipeline.context import ClipContext  # noqa: E402
from mepipe.pipeline.datasets import get_adapter  # noqa: E402
from mepipe.pipeline.demo import write_demo  # noqa: E402
from mepipe.pipeline.stages import SOURCE, SOURCE_FRAMES, STAGES, default_params  # noqa: E402
from mepipe.pipeline.stages.frames import DecodedClip, decode_clip  # noqa: E402
from mepipe.pipeline.stages.align import align_clip  # noqa: E402
from mepipe.pipeline.tasks import _write_outputs, recorded_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="Where the clip and store go (default: a temporary folder, removed).")
    parser.add_argument("--frames", type=int, default=30, choices=(30, 60))
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="align-task-"))
    try:
        print(measure(work, args.frames, args.repeats))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, n_frames: int, repeats: int) -> str:
    root, store = work / "samm-sized", work / "landmarks.zarr"
    if not root.exists():
        write_demo(root, samm_sized(1, 30))
    if not store.exists():
        report = run_build(BuildOptions(dataset="demo", root=root, store=store, workers=1, stages=("landmarks",),
                                        progress=False, params=default_params()))
        if report.exit_code:
            raise SystemExit(report.summary())
    params = default_params()
    ctx = ClipContext.of(get_adapter("demo")(root, None).samples[0])
    decoded = decode_clip(ctx, params[SOURCE])
    landmarks = StoreWriter(store).read_feature(ctx.sample, "landmarks")
    if n_frames == 60:  # in a copy of the store
        shutil.rmtree(work / "landmarks-60.zarr", ignore_errors=True)
        store = Path(shutil.copytree(store, work / "landmarks-60.zarr"))
    writer, through_zarr = StoreWriter(store), StoreWriter(store, direct=False)
    if n_frames == 60:  # the clip there and back: the full benchmark's clip length
        decoded = DecodedClip(np.concatenate([decoded.frames, decoded.frames[::-1]]), decoded.digest)
        landmarks = np.concatenate([landmarks, landmarks[::-1]])
        ctx = dataclasses.replace(ctx, frame_numbers=tuple(range(60)))
        for name in ("landmarks", "frame"):
            array = landmarks if name == "landmarks" else np.arange(60)
            writer.write_feature(ctx.sample, name, array, "bench", frame_numbers=np.arange(60))
    stage = STAGES["align"]
    saved = work / "baseline"
    saved.mkdir(exist_ok=True)
    zstd = Zstd(level=0)
    points = landmarks.astype(np.float64)

    def baseline():
        transforms = [eye_similarity(p) for p in points]
        crops = [cv2.warpAffine(g, m, (256, 256), flags=cv2.INTER_LINEAR) for g, m in zip(decoded.frames, transforms)]
        (saved / "crops.zst").write_bytes(zstd.encode(np.stack(crops).tobytes()))
        np.save(saved / "transforms.npy", np.stack(transforms).astype(np.float32))
        np.save(saved / "landmarks-aligned.npy",
                np.stack([p @ m[:, :2].T + m[:, 2] for p, m in zip(points, transforms)]).astype(np.float32))

    def task(w: StoreWriter):
        inputs = {"landmarks": w.read_feature(ctx.sample, "landmarks"), SOURCE_FRAMES: decoded}
        out = stage.run(ctx, inputs, params)
        _write_outputs(w, stage, ctx, out, "bench", recorded_params(params))

    runs = {"baseline align (warp + saves)": baseline, "mepipe align task": lambda: task(writer),
            "through Zarr": lambda: task(through_zarr),
            "kernel alone": lambda: align_clip(decoded.frames, landmarks, params["align"], ctx.fps)}
    cpu = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            for feature in stage.outputs:  # every task writes a new feature, as in a fresh build
                shutil.rmtree(store / feature_path(ctx.sample, feature), ignore_errors=True)
            start = time.process_time()
            run()
            cpu[name].append(time.process_time() - start)
    ms = {name: 1000 * float(np.median(t)) / len(landmarks) for name, t in cpu.items()}
    base = ms["baseline align (warp + saves)"]
    return "\n".join([f"{len(landmarks)} frames of 2040x1088, CPU ms per frame, medians of {repeats}:"] +
                     [f"  {name}: {v:.3f} ({v / base:.2f}x the baseline)" for name, v in ms.items()])


if __name__ == "__main__":
    main()
