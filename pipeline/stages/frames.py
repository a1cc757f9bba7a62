"""Stage 2.1: decode a clip's frames in frame-number order, keeping the source's channels."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ClipError

VERSION = "1"


@dataclass(frozen=True)
class FramesParams:
    """How frames are decoded.

    Attributes
    ----------
    force_grey : bool
        Decode colour sources as greyscale (channels are otherwise kept:
        SAMM is greyscale, CASME II is colour).
    """

    force_grey: bool = False


def read_image(path: str | Path, params: FramesParams = FramesParams()) -> np.ndarray:
    """One frame as uint8 (H, W) or RGB (H, W, 3); raises ClipError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ClipError("frame file is missing", file=str(path))
    flag = cv2.IMREAD_GRAYSCALE if params.force_grey else cv2.IMREAD_UNCHANGED
    img = cv2.imread(str(path), flag)
    if img is None or img.size == 0:
        raise ClipError("frame cannot be decoded (corrupt or not an image)", file=str(path))
    return _normalise_channels(img, path)


def _normalise_channels(img: np.ndarray, path: Path | str) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise ClipError(f"unsupported pixel type {img.dtype}", file=str(path))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    return img


def read_frames(files: Sequence[str], params: FramesParams = FramesParams()) -> np.ndarray:
    """All frames of a clip, (T, H, W) or (T, H, W, 3) uint8, in the given order."""
    if not files:
        raise ClipError("the clip has no frame files")
    first = read_image(files[0], params)
    out = np.empty((len(files), *first.shape), dtype=np.uint8)
    out[0] = first
    for i, f in enumerate(files[1:], start=1):
        img = read_image(f, params)
        if img.shape != first.shape:
            raise ClipError(f"frame shape {img.shape} differs from the clip's first frame {first.shape}", file=f)
        out[i] = img
    return out


def read_video(path: str, frame_numbers: Sequence[int], params: FramesParams = FramesParams()) -> np.ndarray:
    """The listed frames (0-based indices) of a video file, like :func:`read_frames`."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ClipError("video cannot be opened", file=str(path))
    wanted = set(int(n) for n in frame_numbers)
    frames, index = {}, 0
    try:
        while len(frames) < len(wanted):
            ok, img = cap.read()
            if not ok:
                break
            if index in wanted:
                if params.force_grey and img.ndim == 3:
                    img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
                frames[index] = _normalise_channels(img, path)
            index += 1
    finally:
        cap.release()
    missing = sorted(wanted - frames.keys())
    if missing:
        raise ClipError(f"video ends before frame {missing[0]} ({len(missing)} frames unreadable)", file=str(path))
    return np.stack([frames[int(n)] for n in frame_numbers])


def to_grey(frames: np.ndarray) -> np.ndarray:
    """Greyscale view of (T, H, W) or (T, H, W, 3) frames."""
    if frames.ndim == 3:
        return frames
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
