"""Long videos for tests: the demo's clips of one subject strung together, as SAMM Long Videos frame folders or as a
video file written by OpenCV.

The demo's clips (24 frames each, a face with one expression per clip) are
real frames a face is found in; strung together they make a video of a few
windows whose frame numbers run from 1 (SAMM layout) or 0 (a video file).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from sheet_files import write_xlsx

SAMM_LV_PREAMBLE = [["SAMM Long Videos"], [], ["Symbol Key:"], ['"/" = or'], [], ["AU Help:"], [], [], []]
SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"]


def demo_frames(demo_root: Path, subject: str = "001") -> list[Path]:
    """Every frame file of one demo subject's clips, clip after clip (SAMM layout: ``<subject>/<clip>/*.jpg``)."""
    clips = sorted(p for p in (demo_root / subject).iterdir() if p.is_dir())
    return [f for clip in clips for f in sorted(clip.glob("*.jpg"))]


def write_samm_lv(demo_root: Path, root: Path, videos: dict[str, int], intervals: list[list]) -> Path:
    """A SAMM Long Videos release under ``root``: each video ``<subject>_<n>`` the first ``n_frames`` of the demo
    subject's frames (cycled), numbered from 1, and the sheet with ``intervals`` (rows after its header)."""
    for video, n_frames in videos.items():
        frames = demo_frames(demo_root, f"{int(video.split('_')[0]):03d}")
        folder = root / "SAMM_longvideos" / video
        folder.mkdir(parents=True)
        for n in range(1, n_frames + 1):
            shutil.copyfile(frames[(n - 1) % len(frames)], folder / f"{video}_{n:05d}.jpg")
    write_xlsx(root / "SAMM_LongVideos_V2_Release.xlsx", [*SAMM_LV_PREAMBLE, SAMM_LV_HEADER, *intervals])
    return root


def write_video(demo_root: Path, path: Path, n_frames: int, subject: str = "001", codec: str = "MJPG",
                fps: float = 200.0) -> Path:
    """A greyscale video file of the demo subject's first ``n_frames`` frames (cycled), written by OpenCV."""
    frames = demo_frames(demo_root, subject)
    first = cv2.imread(str(frames[0]), cv2.IMREAD_GRAYSCALE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, first.shape[::-1], isColor=False)
    try:
        for n in range(n_frames):
            writer.write(cv2.imread(str(frames[n % len(frames)]), cv2.IMREAD_GRAYSCALE))
    finally:
        writer.release()
    return path


def read_all(path: Path) -> np.ndarray:
    """Every frame of a video file, decoded from the start (greyscale when the file is)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return np.stack(frames)
