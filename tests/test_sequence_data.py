"""Input forms of the sequence networks over the 6-clip demo store: what each item holds, checked against the store."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mepipe.featurestore import open_store
from mepipe.featurestore.views import map_window
from mepipe.train.inputs.batches import collate
from mepipe.train.inputs.maps import MapDataset
from mepipe.train.inputs.sequences import ClipSequenceDataset, FeatureSequenceDataset, SequenceItem
from mepipe.train.inputs.state_frames import StateFrameDataset
from mepipe.train.models.nag2019_windows import NagWindowDataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(full_store):
    return open_store(full_store)


def _clips(store, n=2):
    return list(store.sample_ids[:n])


def test_state_frames_give_five_items_per_clip_with_their_state(store):
    clips = _clips(store)
    data = StateFrameDataset(store, clips, [0, 1])
    assert len(data) == 10
    item = data[7]  # clip 1, state 2 (apex)
    assert (item.clip, item.state, item.y) == (1, 2, 1)
    expected = store.read("state_frames", clips[1])[2].astype(np.float32) / 255.0  # (64, 64, 3)
    np.testing.assert_allclose(item.x.numpy(), expected.transpose(2, 0, 1))


def test_map_dataset_labels_each_map_with_its_clip(store):
    clips = _clips(store)
    data = MapDataset(store, "clfm", clips, [2, 0], length=24)
    n_maps = [store.read("clfm", s).shape[0] for s in clips]
    assert len(data) == sum(len(map_window(n, 24)) for n in n_maps)
    item = data[n_maps[0]]  # first map of the second clip (both clips have fewer than 24 maps)
    assert (item.clip, item.frame, item.y) == (1, 0, 0)
    np.testing.assert_allclose(item.x.numpy()[0], store.read("clfm", clips[1])[0] / 255.0, rtol=1e-6)


def test_clip_sequences_are_time_major(store):
    clips = _clips(store)
    frames = ClipSequenceDataset(store, "frames_rgb", clips, [0, 1])
    raw = store.read("frames_rgb", clips[0])
    item = frames[0]
    assert item.x.shape == (raw.shape[0], 3, 64, 64) and item.length == raw.shape[0]
    np.testing.assert_allclose(item.x[5, 1].numpy(), raw[5, :, :, 1] / 255.0, rtol=1e-6)
    maps = ClipSequenceDataset(store, "lfm", clips, [0, 1], window=24)[1]
    assert maps.x.shape == (24, 1, 68, 68) and maps.length == 24


def test_nag_windows_pair_frames_flow_and_the_next_frames_intensity(store):
    clip = _clips(store, 1)
    data = NagWindowDataset(store, clip, [1], window=14, stride=7)
    n_frames = store.read("frames_rgb", clip[0]).shape[0]
    n_pairs = n_frames - 1
    # Starts every 7 steps while a full window fits, plus the last full window.
    expected_starts = sorted({*range(0, n_pairs - 14 + 1, 7), n_pairs - 14})
    assert [int(s) for _, s, _ in data.windows] == expected_starts
    raw = data.raw(1)  # (8, 14, 64, 64)
    start = expected_starts[1]
    frames = store.read("frames_rgb", clip[0]).astype(np.float32) / 255.0
    flow = store.read("flow_consecutive", clip[0]).astype(np.float32)
    k = 3
    np.testing.assert_allclose(raw[0:3, k], frames[start + k].transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(raw[3:6, k], frames[start + k + 1].transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(raw[6:8, k], flow[start + k], rtol=1e-6)
    intensity, span = data.targets(1)
    np.testing.assert_allclose(intensity, store.read("intensity", clip[0])[start + 1:start + 15])
    row = store.samples.set_index("sample").loc[clip[0]]
    numbers = store.read("frame", clip[0])[start + 1:start + 15]
    np.testing.assert_array_equal(span, ((numbers >= row["onset"]) & (numbers <= row["offset"])).astype(np.float32))
    item = data[1]
    assert item.x.shape == (14, 8, 64, 64) and item.length == 14 and item.intensity.shape == (14,)


def test_whole_clip_nag_items_and_their_span_has_frames_outside(store):
    clips = _clips(store)
    data = NagWindowDataset(store, clips, [0, 1], window=None)
    assert len(data) == 2
    n_pairs = store.read("flow_consecutive", clips[0]).shape[0]
    assert data[0].x.shape[0] == n_pairs
    span = data.targets(0)[1]
    assert 0 < span.sum() < len(span), "the demo's clips start before the onset and end after the offset"


def test_sequence_batches_pad_at_the_end_and_keep_lengths():
    a = SequenceItem(x=torch.ones(3, 2), y=0, clip=0, length=3)
    b = SequenceItem(x=2 * torch.ones(5, 2), y=1, clip=1, length=5)
    batch = collate([a, b])
    assert isinstance(batch, SequenceItem) and batch.x.shape == (2, 5, 2)
    assert batch.x[0, 3:].abs().sum() == 0 and batch.x[0, :3].eq(1).all()
    assert batch.length.tolist() == [3, 5] and batch.y.tolist() == [0, 1] and batch.frame.tolist() == [-1, -1]
    features = FeatureSequenceDataset([torch.zeros(4, 3)], [2], [0])
    assert features[0].length == 4 and features[0].y == 2


def _gap_store(path, numbers):
    from conftest import finish_synthetic_store
    from mepipe.featurestore.schema import SAMPLE_COLUMNS
    from mepipe.featurestore.writer import StoreWriter

    import pandas as pd

    writer = StoreWriter(path)
    writer.create()
    n = len(numbers)
    writer.write_feature("a", "frame", np.asarray(numbers), "k")
    frames = np.zeros((n, 8, 8, 3), np.uint8) + np.arange(n, dtype=np.uint8)[:, None, None, None]
    writer.write_feature("a", "frames_rgb", frames, "k")
    flow = np.zeros((n - 1, 2, 8, 8), np.float32)
    flow[np.flatnonzero(np.diff(numbers) != 1)] = np.nan  # the store leaves the flow across a gap NaN
    writer.write_feature("a", "flow_consecutive", flow, "k")
    writer.write_feature("a", "intensity", np.linspace(0, 1, n).astype(np.float32), "k")
    writer.write_samples(pd.DataFrame([{**dict.fromkeys(SAMPLE_COLUMNS, ""), "sample": "a", "fps": 200.0,
                                        "n_frames": n, "subject": "1", "onset": 100, "offset": 106,
                                        **dict.fromkeys(("apex", "onset_est", "apex_est", "offset_est", "apex_ncc"))}]))
    finish_synthetic_store(writer, "gap")
    return open_store(path)


def test_nag_windows_are_cut_at_gaps_in_the_frame_numbers(tmp_path):
    """Frames 103 and 104 are missing: no window pairs 102 with 105 (its flow is NaN); each run has its own."""
    from mepipe.featurestore.errors import DataError

    store = _gap_store(tmp_path / "gap.zarr", np.array([100, 101, 102, 105, 106, 107, 108]))
    # Runs: frames 0..2 (pairs 0, 1) and frames 3..6 (pairs 3, 4, 5); pair 2 crosses the gap.
    train = NagWindowDataset(store, ["a"], [0], window=2)
    assert [(int(s), int(n)) for _, s, n in train.windows] == [(0, 2), (3, 2), (4, 2)]
    assert all(np.isfinite(train[i].x.numpy()).all() for i in range(len(train)))
    raw = train.raw(1)  # pairs 3 and 4: frames 3 -> 4 and 4 -> 5
    assert raw[0, 0, 0, 0] * 255 == pytest.approx(3) and raw[3, 1, 0, 0] * 255 == pytest.approx(5)
    test = NagWindowDataset(store, ["a"], [0], window=None)
    assert [(int(s), int(n)) for _, s, n in test.windows] == [(0, 2), (3, 3)]
    # Intensity targets of the second run: frames 4, 5, 6 of a ramp 0..1 over 7 frames.
    np.testing.assert_allclose(test.targets(1)[0], [4 / 6, 5 / 6, 1.0], rtol=1e-6)
    lonely = _gap_store(tmp_path / "lonely.zarr", np.array([100, 102, 104]))
    with pytest.raises(DataError, match="clip 'a' has no two consecutive frame numbers"):
        NagWindowDataset(lonely, ["a"], [0], window=2)


def test_spotting_joins_a_clips_runs_and_classifies_it_by_its_longest_run(tmp_path):
    from mepipe.train.models.nag2019 import NagOutput, Spotting

    store = _gap_store(tmp_path / "gap.zarr", np.array([100, 101, 102, 105, 106, 107, 108]))
    test = NagWindowDataset(store, ["a"], [0], window=None)

    class Fake(torch.nn.Module):
        """Intensity of a step = the value of the frame it ends at (k / 255 for frame k); class = run length % 2."""

        def sequence(self, x, lengths):
            logits = torch.zeros(x.shape[0], x.shape[1], 2)
            logits[..., int(lengths[0]) % 2] = 1.0
            return NagOutput(logits, x[:, :, 3, 0, 0] * 255 / 10)

    predicted = Spotting()(Fake(), None, test, 1, torch.device("cpu"))
    assert predicted.pred.tolist() == [1]  # the run of three pairs (length 3 -> class 1), not the run of two
    row = predicted.rows[0]
    # Frames 1..6 of the clip: frame 3 starts the second run and ends no pair.
    assert row["intensity"] == pytest.approx([0.1, 0.2, None, 0.4, 0.5, 0.6])
    # onset..offset = 100..106: frames 101, 102, 105, 106 inside, 107 and 108 outside.
    assert row["span"] == [1, 1, 1, 1, 0, 0] and row["states"][2] == -1
    spotting = predicted.fold["spotting"]
    # Predicted frames inside score 0.1, 0.2, 0.4, outside 0.5, 0.6: every outside frame outranks -> AUC 0.
    assert (spotting["frames"], spotting["inside"], spotting["outside"], spotting["auc"]) == (5, 3, 2, 0.0)
