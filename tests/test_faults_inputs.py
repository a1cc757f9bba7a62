"""Fault suite, inputs from the wild (issue 12, item 4): each fault and what mepipe does with it.

Every case injects one fault into real files (JPEG, PNG and BMP frames,
videos, manifests, symlinks) and checks the outcome a user sees: the clip
fails alone with the file named, the quirk is reported, the row is refused,
or the rebuild happens. Builds are in-process (``scheduler="sync"``) and run
only the landmarks stage on a few small frames, so each case takes about a
second.
"""
from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mepipe.featurestore import open_store
from mepipe.pipeline.build import BuildOptions, run_build
from mepipe.pipeline.context import ClipContext
from mepipe.pipeline.datasets import get_adapter
from mepipe.pipeline.errors import ClipError
from mepipe.pipeline.stages import STAGES, default_params
from mepipe.pipeline.stages import flow
from mepipe.pipeline.stages.flow_consecutive import ConsecutiveFlowParams, flow_consecutive
from mepipe.pipeline.stages.frames import FramesParams, read_image, read_video

N_FRAMES = 5


def demo_frames(small_demo: Path, n_clips: int = 2) -> list[list[Path]]:
    """The first ``N_FRAMES`` frames of the first clips of the small demo (384x384 grey JPEG, one face)."""
    clips = sorted(p for p in small_demo.glob("*/*") if p.is_dir())[:n_clips]
    return [sorted(c.glob("*.jpg"))[:N_FRAMES] for c in clips]


def write_manifest(root: Path, rows: list[dict]) -> Path:
    csv = root / "manifest.csv"
    pd.DataFrame([{"fps": 200, "label": "x", **r} for r in rows]).to_csv(csv, index=False)
    return csv


@pytest.fixture
def tiny(small_demo, tmp_path) -> Path:
    """A manifest dataset of two clip folders, ``clips/a`` and ``clips/b``, five demo frames each."""
    root = tmp_path / "tiny"
    for name, files in zip("ab", demo_frames(small_demo)):
        folder = root / "clips" / name
        folder.mkdir(parents=True)
        for i, f in enumerate(files, start=1):
            shutil.copy(f, folder / f"frame_{i:03d}.jpg")
    write_manifest(root, [{"path": "clips/a", "subject": "s1"}, {"path": "clips/b", "subject": "s2"}])
    return root


def build(root: Path, store: Path, **changes):
    opts = {"dataset": "manifest", "root": root, "store": store, "scheduler": "sync", "progress": False,
            "stages": ("landmarks",), **changes}
    return run_build(BuildOptions(**opts))


# --- truncated and corrupt images ----------------------------------------------------------------

def _flip_bytes(data: bytes) -> bytes:
    """Invert 12 bytes spread over the second half (entropy-coded data, past the headers)."""
    out = bytearray(data)
    for i in np.linspace(len(data) // 2, len(data) - 16, 12).astype(int):
        out[i] ^= 0xFF
    return bytes(out)


def _zero_block(data: bytes) -> bytes:
    """A 2 KiB run of zeros in the middle, as a failed disk block or an interrupted copy leaves."""
    mid = len(data) // 2
    return data[:mid] + bytes(2048) + data[mid + 2048:]


JPEG_FAULTS = {
    "truncated": lambda b: b[: len(b) * 2 // 3],
    "truncated_last_bytes": lambda b: b[:-2],
    "flipped_bytes": _flip_bytes,
    "zeroed_block": _zero_block,
    "zero_bytes": lambda b: b"",
}


@pytest.fixture(scope="module")
def good_jpeg(tmp_path_factory) -> tuple[bytes, np.ndarray]:
    from skimage import data

    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    grey = np.clip(grey + np.random.default_rng(0).normal(0, 2, grey.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), grey


@pytest.mark.parametrize("fault", JPEG_FAULTS)
def test_damaged_jpeg_is_refused_naming_the_file(good_jpeg, tmp_path, fault):
    data, _ = good_jpeg
    path = tmp_path / "frame_0007.jpg"
    path.write_bytes(JPEG_FAULTS[fault](data))
    if fault != "zero_bytes":
        # the fault is a real one: OpenCV's reader returns pixels for it, with a warning on stderr at most
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None
    with pytest.raises(ClipError) as err:
        read_image(path)
    assert err.value.file == str(path)
    assert any(word in err.value.reason for word in ("truncated", "corrupt", "empty"))


def test_good_jpeg_decodes_as_opencv_decodes_it(good_jpeg, tmp_path):
    data, grey = good_jpeg
    path = tmp_path / "frame_0001.jpg"
    path.write_bytes(data)
    assert np.array_equal(read_image(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    colour = cv2.imencode(".jpg", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) // 2 + np.uint8([10, 40, 90]))[1]
    path.write_bytes(colour.tobytes())
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert np.array_equal(read_image(path), expected)
    assert np.array_equal(read_image(path, FramesParams(force_grey=True)),
                          cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


@pytest.mark.parametrize("suffix, fault", [(".png", "truncated"), (".png", "flipped_bytes"), (".bmp", "truncated"),
                                           (".png", "zero_bytes"), (".bmp", "zero_bytes")])
def test_damaged_png_and_bmp_are_refused(good_jpeg, tmp_path, suffix, fault):
    _, grey = good_jpeg
    path = tmp_path / f"frame_0001{suffix}"
    path.write_bytes(JPEG_FAULTS[fault](cv2.imencode(suffix, grey)[1].tobytes()))
    with pytest.raises(ClipError) as err:
        read_image(path)
    assert err.value.file == str(path)


def test_truncated_frame_fails_its_clip_alone(tiny, tmp_path):
    frame = tiny / "clips" / "a" / "frame_003.jpg"
    frame.write_bytes(frame.read_bytes()[:-400])
    report = build(tiny, tmp_path / "s.zarr")
    assert report.exit_code == 1
    (failure,) = report.failures
    assert (failure["sample"], failure["file"]) == ("clips_a", str(frame))
    assert "truncated or corrupt JPEG" in failure["reason"]
    assert str(frame) in report.summary()
    store = open_store(tmp_path / "s.zarr")
    assert store.has("landmarks", "clips_b") and not store.has("landmarks", "clips_a")


# --- frames larger than the limit ----------------------------------------------------------------

def _jpeg_claiming(width: int, height: int) -> bytes:
    """A 16x16 JPEG whose SOF0 header is rewritten to claim ``width`` x ``height`` (its data stays 16x16)."""
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_claiming(width: int, height: int) -> bytes:
    """A 16x16 PNG whose IHDR claims ``width`` x ``height`` (CRC recomputed, so the header is valid)."""
    data = bytearray(cv2.imencode(".png", np.full((16, 16), 128, np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("suffix, make", [(".jpg", _jpeg_claiming), (".png", _png_claiming)])
@pytest.mark.parametrize("width, height", [(9000, 16), (16, 60000)])
def test_oversized_frame_is_refused_from_its_header(tmp_path, suffix, make, width, height):
    path = tmp_path / f"frame_0001{suffix}"
    path.write_bytes(make(width, height))
    with pytest.raises(ClipError, match=rf"{width}x{height} px, more than frames.max_side = 8192") as err:
        read_image(path)  # the data holds 16x16 pixels: a decoder would fail differently, or allocate GiBs
    assert err.value.file == str(path)
    with pytest.raises(ClipError) as past_limit:  # with the limit raised, the decoder meets the 16x16 data
        read_image(path, FramesParams(max_side=65535))
    assert "max_side" not in past_limit.value.reason


def test_frame_limit_is_a_parameter_outside_the_cache_key():
    from mepipe.featurestore.cachekey import params_json

    assert params_json(FramesParams(max_side=100)) == params_json(FramesParams())
    assert params_json(FramesParams(force_grey=True)) != params_json(FramesParams())


def test_oversized_video_is_refused_before_decoding(tmp_path):
    path = tmp_path / "take.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    assert read_video(str(path), [0, 1, 2]).shape == (3, 48, 64, 3)
    with pytest.raises(ClipError, match="64x48 px, more than frames.max_side = 32"):
        read_video(str(path), [0, 1, 2], FramesParams(max_side=32))


# --- frames changed in place: --fingerprint content ----------------------------------------------

def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Replace a file's bytes keeping its size and mtime, as a restore tool or a careless script can."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def tiny_bmp(tiny) -> Path:
    """``tiny`` with BMP frames, whose size depends only on the image size."""
    for f in tiny.glob("clips/*/*.jpg"):
        cv2.imwrite(str(f.with_suffix(".bmp")), cv2.imread(str(f), cv2.IMREAD_UNCHANGED))
        f.unlink()
    return tiny


@pytest.mark.slow
def test_content_fingerprint_catches_a_frame_rewritten_in_place(tiny_bmp, tmp_path):
    store = tmp_path / "s.zarr"
    assert build(tiny_bmp, store).exit_code == 0
    frame = tiny_bmp / "clips" / "b" / "frame_002.bmp"
    darker = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED) // 2
    _rewrite_in_place(frame, cv2.imencode(".bmp", darker)[1].tobytes())

    blind = build(tiny_bmp, store)
    assert blind.tasks_run == {} and blind.changed_sources == []  # stat digests cannot see it
    caught = build(tiny_bmp, store, fingerprint="content")
    assert caught.tasks_run == {"landmarks": 1} and caught.changed_sources == ["clips_b"]
    assert "clips_b" in caught.summary()
    again = build(tiny_bmp, store, fingerprint="content")
    assert again.tasks_run == {} and again.changed_sources == []


# --- gaps in frame numbers -----------------------------------------------------------------------

def test_frame_gap_is_a_quirk_listing_the_missing_numbers(tiny, tmp_path):
    folder = tiny / "clips" / "a"
    for n in (2, 4):  # neither end of the clip, so the span of numbers is unchanged
        (folder / f"frame_{n:03d}.jpg").unlink()
    result = get_adapter("manifest")(tiny)
    gap = next(q for q in result.quirks if q.kind == "frame_gap")
    assert gap.sample == "clips_a" and "miss 2, 4 (2 frames)" in gap.message
    assert {s.sample: s.flags for s in result.samples}["clips_a"] == ("frame_gap",)
    report = build(tiny, tmp_path / "s.zarr")
    assert report.exit_code == 0 and any("frame_gap" in q and "2, 4" in q for q in report.quirks)


def test_consecutive_flow_never_pairs_frames_across_a_gap():
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.integers(0, 255, (48, 48)).astype(np.uint8), (7, 7), 2)
    crops = np.stack([np.roll(base, t, axis=1) for t in range(6)])[..., None]
    numbers = (10, 11, 12, 14, 15, 16)  # frame 13 is missing: positions 2 and 3 are two intervals apart
    ctx = ClipContext("c", (), numbers, None, 200.0, (None, None, None))
    params = ConsecutiveFlowParams(size=(16, 16), tvl1=flow.TVL1Params(nscales=2, warps=1), backend="opencv")
    every = {**default_params(), "flow_consecutive": params}
    out = STAGES["flow_consecutive"].run(ctx, {"crops": crops}, every)
    field = out.arrays["flow_consecutive"]
    assert field.shape == (5, 2, 16, 16)
    assert np.isnan(field[2]).all() and np.isfinite(np.delete(field, 2, axis=0)).all()
    assert out.events["gap_pairs"] == [2]
    assert np.allclose(field[3:], flow_consecutive(crops[3:], params))
    whole = STAGES["flow_consecutive"].run(ClipContext("c", (), tuple(range(6)), None, 200.0, (None,) * 3),
                                           {"crops": crops}, every)
    assert np.isfinite(whole.arrays["flow_consecutive"]).all() and "gap_pairs" not in whole.events


# --- manifest paths stay inside the dataset ------------------------------------------------------

@pytest.fixture
def outside(tiny, tmp_path) -> Path:
    """A clip folder next to (not inside) the ``tiny`` root."""
    folder = tmp_path / "elsewhere" / "clip"
    shutil.copytree(tiny / "clips" / "a", folder)
    return folder


ESCAPES = {
    "dot_dot": lambda root, out: "../elsewhere/clip",
    "absolute": lambda root, out: str(out),
    "symlinked_folder": lambda root, out: _link(root / "clips" / "linked", out),
    "symlinked_frame": lambda root, out: _link_frame(root, out),
}


def _link(link: Path, target: Path) -> str:
    link.symlink_to(target, target_is_directory=True)
    return "clips/linked"


def _link_frame(root: Path, out: Path) -> str:
    folder = root / "clips" / "mixed"
    shutil.copytree(root / "clips" / "b", folder)
    (folder / "frame_003.jpg").unlink()
    (folder / "frame_003.jpg").symlink_to(out / "frame_003.jpg")
    return "clips/mixed"


@pytest.mark.parametrize("escape", ESCAPES)
def test_manifest_path_leaving_the_root_fails_its_row(tiny, outside, escape):
    path = ESCAPES[escape](tiny, outside)
    write_manifest(tiny, [{"path": "clips/b", "subject": "s2"}, {"path": path, "subject": "s9", "sample": "bad"}])
    result = get_adapter("manifest")(tiny)
    samples = {s.sample: s for s in result.samples}
    assert samples["clips_b"].error is None
    assert samples["bad"].flags == ("outside_root",) and "--allow-outside-root" in samples["bad"].error
    assert samples["bad"].frame_files == () and samples["bad"].video is None
    allowed = {s.sample: s for s in get_adapter("manifest")(tiny, allow_outside_root=True).samples}
    assert allowed["bad"].error is None and len(allowed["bad"].frame_files) >= N_FRAMES - 1


def test_symlink_within_the_root_is_accepted(tiny):
    _link(tiny / "clips" / "linked", tiny / "clips" / "a")
    write_manifest(tiny, [{"path": "clips/linked", "subject": "s1"}])
    (sample,) = get_adapter("manifest")(tiny).samples
    assert sample.error is None and sample.n_frames == N_FRAMES


def test_outside_root_row_does_not_stop_the_build(tiny, outside, tmp_path):
    write_manifest(tiny, [{"path": "clips/b", "subject": "s2"}, {"path": "../elsewhere/clip", "subject": "s9"}])
    report = build(tiny, tmp_path / "s.zarr")
    assert report.exit_code == 1 and [f["sample"] for f in report.failures] == ["elsewhere_clip"]
    assert open_store(tmp_path / "s.zarr").has("landmarks", "clips_b")


# --- sample ids ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["../evil", "x" * 300, "a\x1b[2Jb", ".hidden"])
def test_bad_sample_id_fails_its_row_only(tiny, tmp_path, bad_id):
    write_manifest(tiny, [{"path": "clips/a", "subject": "s1", "sample": bad_id},
                          {"path": "clips/b", "subject": "s2", "sample": "good"}])
    report = build(tiny, tmp_path / "s.zarr")
    assert report.exit_code == 1 and (report.n_samples, report.n_ok) == (2, 1)
    (failure,) = report.failures
    assert failure["sample"] == "row 2" and "cannot name a store folder" in failure["error"]
    assert "\x1b" not in report.summary() and len(max(report.summary().splitlines(), key=len)) < 300
    store = open_store(tmp_path / "s.zarr")  # complete, not left "building"
    assert store.complete and store.sample_ids == ["good"] and store.has("landmarks", "good")


def test_default_sample_ids_do_not_depend_on_where_the_data_lives(tiny, tmp_path):
    """The same data at two places, listed by absolute paths and from a CSV in a subfolder, gets the same ids."""
    other = tmp_path / "machine2" / "data"
    shutil.copytree(tiny, other)
    ids = []
    for root in (tiny, other):
        write_manifest(root, [{"path": str(root / "clips" / "a"), "subject": "s1"}])
        ids.append([s.sample for s in get_adapter("manifest")(root).samples])
    meta = other / "meta"
    meta.mkdir()
    csv = write_manifest(meta, [{"path": "../clips/a", "subject": "s1"}])
    ids.append([s.sample for s in get_adapter("manifest")(other, csv).samples])
    assert ids == [["clips_a"]] * 3
