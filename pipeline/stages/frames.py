"""Stage 2.1: decode a clip's frames in frame-number order, keeping the source's channels."""
from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mepipe.featurestore.cachekey import NOT_IN_KEY
from mepipe.featurestore.fingerprint import ContentDigest

from ..context import ClipContext
from ..errors import ClipError

VERSION = "1"

JPEG_MAGIC = b"\xff\xd8\xff"
"""A JPEG file starts with SOI (FF D8) followed by a marker; decided by content, never by suffix."""


@dataclass(frozen=True)
class FramesParams:
    """How frames are decoded.

    Attributes
    ----------
    force_grey : bool
        Decode colour sources as greyscale (channels are otherwise kept:
        SAMM is greyscale, CASME II is colour).
    max_side : int
        Frames wider or taller than this many pixels are refused from their
        header, before any pixel is decoded (a 65535 x 65535 JPEG would need
        4 GiB). Not part of the cache key: it decides only whether a frame is
        accepted, never what an accepted frame decodes to.
    """

    force_grey: bool = False
    max_side: int = field(default=8192, metadata=NOT_IN_KEY)

    def __post_init__(self):
        if not (isinstance(self.max_side, int) and self.max_side >= 1):
            raise ValueError(f"FramesParams.max_side must be an int >= 1, got {self.max_side!r}")


def read_image(path: str | Path, params: FramesParams = FramesParams(),
               digest: ContentDigest | None = None) -> np.ndarray:
    """One frame as uint8 (H, W) or RGB (H, W, 3); raises ClipError naming the file.

    The file is read once; ``digest``, when given, is fed its bytes, so the
    digest describes exactly the bytes that were decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ClipError("frame file is missing", file=str(path)) from None
    except OSError as exc:
        raise ClipError(f"frame file cannot be read ({exc.strerror or exc})", file=str(path)) from None
    if digest is not None:
        digest.update(path, data)
    return decode_image(data, params, str(path))


def decode_image(data: bytes, params: FramesParams, name: str) -> np.ndarray:
    """Decode one image file's bytes, refusing empty, oversized, truncated or corrupt ones.

    JPEG is decoded by libjpeg-turbo through ``simplejpeg`` in strict mode,
    where every libjpeg warning ("premature end of data segment", "corrupt
    JPEG data") is an error: OpenCV's ``imread`` only prints those warnings on
    stderr and returns the damaged pixels as if they were good. Other formats
    go through ``cv2.imdecode``, whose PNG (CRC-checked) and BMP readers
    already fail on truncated data.
    """
    if not data:
        raise ClipError("frame file is empty (0 bytes)", file=name)
    width, height = image_size(data, name)
    if max(width, height) > params.max_side:
        raise ClipError(f"frame is {width}x{height} px, more than frames.max_side = {params.max_side} px a side; "
                        "refused before decoding (raise frames.max_side in the config to accept it)", file=name)
    if data.startswith(JPEG_MAGIC):
        return _decode_jpeg(data, params, name)
    flag = cv2.IMREAD_GRAYSCALE if params.force_grey else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None or img.size == 0:
        raise ClipError("frame cannot be decoded (truncated, corrupt or not an image)", file=name)
    return _normalise_channels(img, name)


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from an image's header alone; raises ClipError if there is no readable header."""
    if data.startswith(JPEG_MAGIC):
        import simplejpeg

        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError as exc:
            raise ClipError(f"frame is not a readable JPEG ({exc})", file=name) from None
        return int(width), int(height)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # parses the header only; pixels are decoded on load()
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ClipError(f"frame cannot be decoded (not an image: {exc})", file=name) from None


def _decode_jpeg(data: bytes, params: FramesParams, name: str) -> np.ndarray:
    import simplejpeg

    try:
        _, _, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        grey = params.force_grey or colourspace == "Gray"
        img = simplejpeg.decode_jpeg(data, colorspace="GRAY" if grey else "RGB", strict=True)
    except ValueError as exc:
        raise ClipError(f"frame is a truncated or corrupt JPEG ({exc}); replace or re-extract it", file=name) from None
    return img[:, :, 0] if grey else img


def _normalise_channels(img: np.ndarray, path: Path | str) -> np.ndarray:
    """OpenCV's decoded array as uint8 grey (H, W) or RGB (H, W, 3)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise ClipError(f"unsupported pixel type {img.dtype}", file=str(path))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    return img


class FrameBuffer:
    """One block of memory that window after window of a long video is decoded into, in one worker process.

    A window of 256 frames of 2040x1088 is 570 MB; writing that much fresh
    memory for every window costs more CPU than decoding it (the page faults
    of a new allocation: 1.4 s per window against 2 s of MPEG-4 decoding,
    measured), so a worker decodes every window into the block it decoded
    the last one into. What is decoded into it is valid until the next
    decode: a window's task uses its frames and drops them.
    """

    def __init__(self) -> None:
        self._block: np.ndarray | None = None

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised uint8 array of ``shape`` in the block (grown when it is too small)."""
        size = int(np.prod(shape))
        if self._block is None or self._block.size < size:
            self._block = None  # the old block goes before the new one is made
            self._block = np.empty(size, dtype=np.uint8)
        return self._block[:size].reshape(shape)


def _new_array(shape: tuple[int, ...], buffer: FrameBuffer | None) -> np.ndarray:
    return buffer.take(shape) if buffer is not None else np.empty(shape, dtype=np.uint8)


def read_frames(files: Sequence[str], params: FramesParams = FramesParams(),
                digest: ContentDigest | None = None, buffer: FrameBuffer | None = None) -> np.ndarray:
    """All frames of a clip, (T, H, W) or (T, H, W, 3) uint8, in the given order (``digest`` as in read_image),
    decoded into ``buffer`` when one is given."""
    if not files:
        raise ClipError("the clip has no frame files")
    first = read_image(files[0], params, digest)
    out = _new_array((len(files), *first.shape), buffer)
    out[0] = first
    for i, f in enumerate(files[1:], start=1):
        img = read_image(f, params, digest)
        if img.shape != first.shape:
            raise ClipError(f"frame shape {img.shape} differs from the clip's first frame {first.shape}", file=f)
        out[i] = img
    return out


def read_video(path: str, frame_numbers: Sequence[int], params: FramesParams = FramesParams(),
               digest: ContentDigest | None = None, buffer: FrameBuffer | None = None) -> np.ndarray:
    """The listed frames (0-based indices) of a video file, like :func:`read_frames` (``buffer`` too).

    The frame size the container declares is checked against
    ``params.max_side`` before the first frame is decoded. Decoding starts
    at the first listed frame: a window of a long video seeks there
    (``CAP_PROP_POS_FRAMES``: FFmpeg seeks to the key frame before it and
    decodes forward) instead of decoding every frame before it. Each frame
    is decoded into the previous one's array and converted (to grey or RGB)
    straight into its row of the result: a fresh 6 MB array and a converted
    copy per SAMM-sized frame cost 1.4 ms of the 8.2 ms it took
    (benchmarks/README.md, long videos).
    """
    if digest is not None:
        digest.update_file(path)
    if not len(frame_numbers):
        raise ClipError("the clip has no frames", file=str(path))
    rows: dict[int, list[int]] = {}
    for i, n in enumerate(frame_numbers):
        rows.setdefault(int(n), []).append(i)
    first, last = min(rows), max(rows)
    cap = _open_video(path, params, first)
    out, seen, img = None, set(), None
    try:
        for index in range(first, last + 1):
            ok, img = cap.read(img)  # decoded into the last frame's array: no fresh 6 MB per frame
            if not ok:
                break
            if index not in rows:
                continue
            if out is not None and _convert_into(img, params, out, rows[index]):
                seen.add(index)
                continue
            frame = _video_frame(img, params, path)
            if out is None:  # one array for the clip, filled frame by frame (never a second copy of it)
                out = _new_array((len(frame_numbers), *frame.shape), buffer)
            out[rows[index]] = frame
            seen.add(index)
    finally:
        cap.release()
    missing = sorted(set(rows) - seen)
    if missing:
        raise ClipError(f"video ends before frame {missing[0]} ({len(missing)} frames unreadable)", file=str(path))
    return out


def _open_video(path: str, params: FramesParams, first: int = 0) -> cv2.VideoCapture:
    """An opened capture of ``path`` positioned at frame ``first``, its frame size checked against ``max_side``."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ClipError("video cannot be opened", file=str(path))
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if max(width, height) > params.max_side:
        cap.release()
        raise ClipError(f"video frames are {width}x{height} px, more than frames.max_side = {params.max_side} px "
                        "a side; refused before decoding", file=str(path))
    if first > 0 and not cap.set(cv2.CAP_PROP_POS_FRAMES, first):
        cap.release()
        raise ClipError(f"video cannot be positioned at frame {first}", file=str(path))
    return cap


def _convert_into(img: np.ndarray, params: FramesParams, out: np.ndarray, rows: list[int]) -> bool:
    """Convert a decoded uint8 BGR frame to grey (``force_grey``) or RGB straight into its rows of ``out``, as
    :func:`_video_frame` would, with no array in between; False for any other frame, which that function takes."""
    if not (img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        return False
    code, shape = (cv2.COLOR_BGR2GRAY, img.shape[:2]) if params.force_grey else (cv2.COLOR_BGR2RGB, img.shape)
    if out.shape[1:] != shape:
        return False
    cv2.cvtColor(img, code, dst=out[rows[0]])
    for row in rows[1:]:
        out[row] = out[rows[0]]
    return True


def _video_frame(img: np.ndarray, params: FramesParams, path: str) -> np.ndarray:
    if params.force_grey and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return _normalise_channels(img, path)


def to_grey(frames: np.ndarray) -> np.ndarray:
    """Greyscale view of (T, H, W) or (T, H, W, 3) frames."""
    if frames.ndim == 3:
        return frames
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def load_frames(ctx: ClipContext, params: FramesParams, digest: ContentDigest | None = None,
                buffer: FrameBuffer | None = None) -> np.ndarray:
    """A clip's frames from its video or its frame files (``digest`` as in :func:`read_image`; into ``buffer``
    when one is given)."""
    if ctx.video:
        return read_video(ctx.video, ctx.frame_numbers, params, digest, buffer)
    return read_frames(ctx.frame_files, params, digest, buffer)


@dataclass(frozen=True)
class DecodedClip:
    """A clip's frames as decoded, and the content digest of the bytes they were decoded from."""

    frames: np.ndarray
    digest: str


def decode_clip(ctx: ClipContext, params: FramesParams) -> DecodedClip:
    """Decode every frame of a clip once, hashing the bytes as they are read."""
    digest = ContentDigest()
    clip = load_frames(ctx, params, digest)
    return DecodedClip(clip, digest.hexdigest())


@dataclass(frozen=True)
class VideoFrames:
    """The frames of a whole long video (a video file or a frame folder), decoded one at a time when asked.

    What a window's task reads of its video beyond its own frames (align:
    the first frame with a face, its reference); never the whole video at
    once.
    """

    ctx: ClipContext
    params: FramesParams

    def __len__(self) -> int:
        return len(self.ctx.frame_numbers)

    def frames(self, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(position, frame)`` from position ``start`` to the end, decoded as the caller advances."""
        if not self.ctx.video:
            for position in range(start, len(self)):
                yield position, read_image(self.ctx.frame_files[position], self.params)
            return
        cap = _open_video(self.ctx.video, self.params, start)
        try:
            for position in range(start, len(self)):
                ok, img = cap.read()
                if not ok:
                    raise ClipError(f"video ends before frame {position}", file=self.ctx.video)
                yield position, _video_frame(img, self.params, self.ctx.video)
        finally:
            cap.release()
