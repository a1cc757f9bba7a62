"""Stores describe themselves to plain xarray: integer columns, CF units and long names; stable manifest ids."""
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from mepipe.featurestore import open_store
from mepipe.featurestore.schema import INTEGER_COLUMNS, MISSING_INT, SAMPLE_COLUMNS
from mepipe.featurestore.writer import StoreWriter
from mepipe.pipeline.datasets import get_adapter

from test_datasets import touch_frames


def test_integer_sample_columns_read_as_integers_in_plain_xarray(small_store):
    table = xr.open_zarr(small_store, group="samples")
    for column in INTEGER_COLUMNS:
        assert table[column].dtype == np.int64, column
    n_frames = open_store(small_store).samples.set_index("sample")["n_frames"]
    assert table["n_frames"].values.tolist() == n_frames.loc[table["sample"].values].tolist()
    assert isinstance(table["n_frames"].values[0].item(), int)


def test_missing_integers_are_minus_one_on_disk_and_na_in_the_store_table(tmp_path):
    writer = StoreWriter(tmp_path / "s.zarr")
    writer.create()
    rows = [{c: "" for c in SAMPLE_COLUMNS} | {"sample": s, "fps": 100.0, "n_frames": 20, "onset": 4, "apex": apex,
                                               "offset": 15} for s, apex in (("a", None), ("b", 9))]
    for r in rows:
        r.update(onset_est=None, apex_est=None, offset_est=None, apex_ncc=0)
    writer.write_samples(pd.DataFrame(rows))
    plain = xr.open_zarr(tmp_path / "s.zarr", group="samples", consolidated=False)
    assert plain["apex"].dtype == np.int64 and plain["apex"].values.tolist() == [MISSING_INT, 9]
    assert plain["apex_ncc"].values.tolist() == [0, 0]  # frame 0 is a frame, not a missing value
    assert "_FillValue" not in plain["apex"].attrs and plain["apex"].attrs["valid_min"] == 0
    table = open_store(tmp_path / "s.zarr", allow_incomplete=True).samples
    assert pd.isna(table.loc[0, "apex"]) and table.loc[1, "apex"] == 9 and table["apex"].dtype == "Int64"
    assert table.loc[0, "apex_ncc"] == 0


def test_negative_frame_numbers_are_refused_by_the_writer(tmp_path):
    writer = StoreWriter(tmp_path / "s.zarr")
    writer.create()
    row = {c: "" for c in SAMPLE_COLUMNS} | {"sample": "a", "fps": 100.0, "n_frames": 20, "onset": -3}
    with pytest.raises(ValueError, match="negative onset"):
        writer.write_samples(pd.DataFrame([row]))


def _arrays_without_cf_attrs(path) -> list[str]:
    root = zarr.open_group(path, mode="r")
    missing = []
    for name, node in root.members(max_depth=None):
        if isinstance(node, zarr.Array):
            attrs = dict(node.attrs)
            if not attrs.get("units") or not attrs.get("long_name"):
                missing.append(name)
    return missing


def _count_arrays(path) -> int:
    root = zarr.open_group(path, mode="r")
    return sum(isinstance(node, zarr.Array) for _, node in root.members(max_depth=None))


def test_every_array_of_the_demo_store_has_units_and_long_name(small_store):
    assert _count_arrays(small_store) > 30
    assert _arrays_without_cf_attrs(small_store) == []


@pytest.mark.slow
def test_every_array_of_the_full_demo_store_has_units_and_long_name(full_store):
    assert _arrays_without_cf_attrs(full_store) == []
    assert "dataset/appearance_mask/appearance_mask" in {n for n, _ in zarr.open_group(full_store, mode="r").members(
        max_depth=None)}


def test_manifest_sample_ids_do_not_depend_on_where_the_data_lives(tmp_path):
    """Relative and absolute manifest paths under two different roots give the same ids."""
    def ids(root):
        return sorted(s.sample for s in get_adapter("manifest")(root, root / "manifest.csv").samples)

    first = tmp_path / "machine-a" / "data"
    touch_frames(first / "lab" / "p1" / "take 2", range(0, 8), lambda n: f"f{n:03d}.png")
    touch_frames(first / "lab" / "p2" / "take1", range(0, 8), lambda n: f"f{n:03d}.png")
    second = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, second)
    for root in (first, second):
        (root / "manifest.csv").write_text(
            "path,subject,label,fps\n"
            f"lab/p1/take 2,p1,happy,100\n"
            f"{root / 'lab' / 'p2' / 'take1'},p2,sad,100\n")
    assert ids(first) == ids(second) == ["lab_p1_take 2", "lab_p2_take1"]
