"""`mepipe export`: the demo store as flat frame and clip tables that pandas reads alone."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mepipe.cli.main import cli
from mepipe.featurestore import STATE_NAMES, open_store
from mepipe.featurestore.export import ExportError, clips_path, export_tables, frame_table
from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.writer import StoreWriter

from conftest import finish_synthetic_store


@pytest.fixture(scope="module")
def exported(small_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "table.parquet"
    result = CliRunner().invoke(cli, ["export", str(small_store), "--to", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_frame_table_has_one_row_per_stored_frame_with_openface_columns(exported, small_store):
    store = open_store(small_store)
    frames = pd.read_parquet(exported)
    ok = [s for s in store.sample_ids if store.has("landmarks", s)]
    assert len(frames) == sum(len(store.read("frame", s)) for s in ok)
    xs, ys = [f"x_{k}" for k in range(68)], [f"y_{k}" for k in range(68)]
    aligned = [f"x_aligned_{k}" for k in range(68)] + [f"y_aligned_{k}" for k in range(68)]
    expected = ["sample", "dataset", "subject", "clip", "frame", "timestamp", "face_found", *xs, *ys, *aligned,
                "intensity", "state", "state_name"]
    assert list(frames.columns) == expected
    assert frames.shape == (len(frames), 6 + 1 + 4 * 68 + 3)


def test_frame_table_values_equal_store_reads(exported, small_store):
    store = open_store(small_store)
    frames = pd.read_parquet(exported)
    sample = store.sample_ids[-1]  # not the first clip, so row order matters
    rows = frames[frames["sample"] == sample]
    landmarks = store.read("landmarks", sample)
    np.testing.assert_array_equal(rows["frame"], store.read("frame", sample))
    np.testing.assert_array_equal(rows["x_30"], landmarks[:, 30, 0])
    np.testing.assert_array_equal(rows["y_30"], landmarks[:, 30, 1])
    np.testing.assert_array_equal(rows["y_aligned_7"], store.read("landmarks_aligned", sample)[:, 7, 1])
    np.testing.assert_array_equal(rows["intensity"], store.read("intensity", sample))
    np.testing.assert_array_equal(rows["face_found"], store.read("face_found", sample))
    state = store.read("state", sample)
    np.testing.assert_array_equal(rows["state"], state)
    assert list(rows["state_name"].astype(str)) == [STATE_NAMES[k] for k in state]
    fps = float(store.samples.set_index("sample").loc[sample, "fps"])
    np.testing.assert_allclose(rows["timestamp"], (rows["frame"] - rows["frame"].iloc[0]) / fps)
    row = store.samples.set_index("sample").loc[sample]
    assert set(rows["subject"]) == {row["subject"]} and set(rows["dataset"]) == {row["dataset"]}


def test_clip_table_holds_truth_estimates_and_status(exported, small_store):
    store = open_store(small_store)
    clips = pd.read_parquet(clips_path(exported))
    assert clips_path(exported).name == "table-clips.parquet"
    assert len(clips) == len(store.samples)
    for column in ("onset", "apex", "offset", "onset_est", "apex_est", "offset_est", "sfem", "status", "flags"):
        assert column in clips
    truth = store.samples.set_index("sample")
    clips = clips.set_index("sample")
    assert clips["apex_est"].tolist() == truth.loc[clips.index, "apex_est"].tolist()
    assert clips["status"].tolist() == truth.loc[clips.index, "status"].tolist()
    assert clips["sfem"].isna().all()  # this store has no lfm stage


def test_csv_export_reads_back_the_same(small_store, tmp_path):
    result = export_tables(small_store, tmp_path / "t.csv", ["landmarks", "face_box"])
    frames = pd.read_csv(tmp_path / "t.csv")
    assert frames.shape == result.frame_shape
    assert list(frames.columns[6:]) == ([f"x_{k}" for k in range(68)] + [f"y_{k}" for k in range(68)]
                                        + ["face_box_left", "face_box_top", "face_box_right", "face_box_bottom"])
    store = open_store(small_store)
    sample = store.sample_ids[0]
    np.testing.assert_allclose(frames.loc[frames["sample"] == sample, "face_box_right"],
                               store.read("face_box", sample)[:, 2], rtol=1e-6)
    assert pd.read_csv(tmp_path / "t-clips.csv").shape == result.clip_shape


def test_export_refuses_features_it_cannot_flatten_or_the_store_lacks(small_store, tmp_path):
    store = open_store(small_store)
    with pytest.raises(ExportError, match="crops"):
        frame_table(store, ["crops"])
    writer = StoreWriter(tmp_path / "landmarks-only.zarr")
    writer.create()
    writer.write_feature("a", "frame", np.arange(3), "k")
    writer.write_feature("a", "landmarks", np.zeros((3, 68, 2), np.float32), "k")
    writer.write_samples(pd.DataFrame([{c: "" for c in SAMPLE_COLUMNS} | {"sample": "a", "fps": 100.0,
                                                                          "n_frames": 3}]))
    finish_synthetic_store(writer, "demo")
    with pytest.raises(ExportError, match="no intensity; build it with `mepipe build --features apex`"):
        frame_table(open_store(tmp_path / "landmarks-only.zarr"), ["landmarks", "intensity"])
    assert frame_table(open_store(tmp_path / "landmarks-only.zarr")).shape == (3, 6 + 2 * 68)
    result = CliRunner().invoke(cli, ["export", str(small_store), "--to", str(tmp_path / "t.xlsx")])
    assert result.exit_code == 2 and "must end in .parquet or .csv" in result.output
