"""``mepipe predict`` on a 1-minute 30 fps 640x480 video: wall and CPU seconds, then a second predict (stores reused).

The video is the demo-lv subject 001's frames (cycled, 384 px faces) pasted into a 640x480 grey frame
that drifts by up to 20 px, written by OpenCV as mp4v. The runs are given (a final spotter and a final
model, see README "Spotting and recognising in video nobody annotated").

    python benchmarks/predict_minute.py --spotter runs/spot-final --model runs/strcn-g-final --workdir /tmp/pm
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def write_minute(frames_dir: Path, path: Path, seconds: float = 60.0, fps: float = 30.0) -> Path:
    """A ``seconds``-long 640x480 mp4 of the frames in ``frames_dir`` (cycled), drifting by up to 20 px."""
    frames = sorted(frames_dir.glob("*.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    try:
        for n in range(int(seconds * fps)):
            face = cv2.imread(str(frames[n % len(frames)]))
            canvas = np.full((480, 640, 3), 90, dtype=np.uint8)
            dx = int(128 + 20 * np.sin(2 * np.pi * n / 300))
            dy = int(48 + 10 * np.cos(2 * np.pi * n / 420))
            canvas[dy:dy + face.shape[0], dx:dx + face.shape[1]] = face[:480 - dy, :640 - dx]
            writer.write(canvas)
    finally:
        writer.release()
    return path


def timed(command: list[str]) -> dict:
    """Wall seconds and the children's CPU seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
            "exit": done.returncode, "tail": done.stdout.splitlines()[-3:] + done.stderr.splitlines()[-3:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spotter", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--frames", default="data/datasets/demo-lv/SAMM_longvideos/001_1")
    parser.add_argument("--workdir", default="/tmp/predict-minute")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    video = write_minute(Path(args.frames), work / "minute.mp4")
    command = [sys.executable, "-m", "mepipe.cli", "predict", str(video), "--spotter", args.spotter, "--model",
               args.model, "--out", str(work / "out"), "--workers", "2", "--no-progress"]
    result = {"first": timed(command), "second": timed(command), "load": list(np.round(np.array(
        __import__("os").getloadavg()), 1))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
