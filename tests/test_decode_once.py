"""A build decodes each source frame once, whichever of the stages that read frames are stale."""
from collections import Counter

import numpy as np
import pytest

from conftest import build_options
from mepipe.featurestore import open_store
from mepipe.featurestore.writer import StoreWriter
from mepipe.pipeline.build import run_build
from mepipe.pipeline.stages import frames

STAGES = ("landmarks", "align")


@pytest.fixture
def decodes(monkeypatch):
    """Counts, per frame file, how often the build reads and decodes it."""
    counts: Counter = Counter()
    read_image = frames.read_image

    def counting(path, *args, **kwargs):
        counts[str(path)] += 1
        return read_image(path, *args, **kwargs)

    monkeypatch.setattr(frames, "read_image", counting)
    return counts


def _frame_files(demo):
    return sorted(str(p) for p in demo.glob("*/*/*.jpg"))


@pytest.mark.slow
def test_fresh_build_decodes_every_frame_once(small_demo, tmp_path, decodes):
    report = run_build(build_options(small_demo, tmp_path / "s.zarr", stages=STAGES))
    assert report.exit_code == 0 and report.tasks_run == {"landmarks": 6, "align": 6}
    assert sorted(decodes) == _frame_files(small_demo)
    assert set(decodes.values()) == {1}
    assert report.stage_seconds["decode"] > 0
    assert set(report.stage_cpu_seconds) == {"decode", *STAGES} and report.stage_cpu_seconds["decode"] > 0


@pytest.mark.slow
def test_align_alone_stale_decodes_once_and_keeps_landmarks(small_demo, tmp_path, decodes):
    store = tmp_path / "s.zarr"
    run_build(build_options(small_demo, store, stages=STAGES))
    decodes.clear()
    report = run_build(build_options(small_demo, store, stages=STAGES, force=("align",)))
    assert report.tasks_run == {"align": 6} and report.tasks_cached == {"landmarks": 6}
    assert set(decodes.values()) == {1} and len(decodes) == len(_frame_files(small_demo))


@pytest.mark.slow
def test_one_decode_gives_the_store_of_separate_decodes(small_demo, tmp_path):
    """Landmarks and align in one task (one decode) write what they write as two builds (two decodes)."""
    together, apart = tmp_path / "together.zarr", tmp_path / "apart.zarr"
    run_build(build_options(small_demo, together, stages=STAGES))
    run_build(build_options(small_demo, apart, stages=("landmarks",)))
    second = run_build(build_options(small_demo, apart, stages=STAGES))
    assert second.tasks_run == {"align": 6}
    a, b = open_store(together), open_store(apart)
    for sid in a.sample_ids:
        for feature in ("landmarks", "face_box", "crops", "landmarks_aligned", "transforms"):
            assert np.array_equal(a.read(feature, sid), b.read(feature, sid)), (sid, feature)
        digests = [StoreWriter(p).feature_attrs(sid, "landmarks")["source_sha256"] for p in (together, apart)]
        assert digests[0] == digests[1]


@pytest.mark.slow
def test_unreadable_frame_fails_landmarks_and_skips_align(demo_copy, tmp_path):
    clip = sorted(p for p in demo_copy.glob("*/*") if p.is_dir())[0]
    sorted(clip.glob("*.jpg"))[3].write_bytes(b"not a jpeg")
    report = run_build(build_options(demo_copy, tmp_path / "s.zarr", stages=STAGES))
    assert report.exit_code == 1 and report.tasks_run == {"landmarks": 5, "align": 5}
    assert [(f["sample"], f["stage"]) for f in report.failures] == [(clip.name, "landmarks")]
