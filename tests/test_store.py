"""The store contract: atomic feature groups, plain-xarray readability, schema refusal, nothing executable."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from mepipe.featurestore import IncompatibleStoreError, IncompleteStoreError, open_store
from mepipe.featurestore.lock import BuildLock, StoreLockedError
from mepipe.featurestore.manifest import write_manifest
from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.writer import StoreWriter


def _table(ids):
    rows = [{c: "" for c in SAMPLE_COLUMNS} | {"sample": s, "fps": 200.0, "n_frames": 3, "onset": 10, "apex": None,
                                               "offset": 12, "status": "ok", "subject": "001"} for s in ids]
    for c in ("onset_est", "apex_est", "offset_est", "apex_ncc"):
        for r in rows:
            r[c] = None
    return pd.DataFrame(rows)


def _complete(path, ids=("a", "b")):
    w = StoreWriter(path)
    w.create()
    for s in ids:
        w.write_feature(s, "landmarks", np.full((3, 68, 2), ord(s[0]), np.float32), "key-" + s,
                        frame_numbers=np.arange(10, 13))
        w.write_feature(s, "frame", np.arange(10, 13), "key-" + s)
    w.write_samples(_table(ids))
    w.update_root_attrs({"state": "complete", "features": ["frame", "landmarks"]})
    w.consolidate()
    write_manifest(path)
    return w


def test_roundtrip_and_plain_xarray(tmp_path):
    _complete(tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")
    assert store.sample_ids == ["a", "b"]
    assert store.read("landmarks", "b")[0, 0, 0] == ord("b")
    df = store.samples
    assert df.loc[0, "onset"] == 10 and pd.isna(df.loc[0, "apex"])
    plain = xr.open_zarr(tmp_path / "s.zarr", group="clips/a/landmarks")
    assert plain["landmarks"].dims == ("frame", "landmark", "xy")
    assert plain["frame"].values.tolist() == [10, 11, 12]
    assert plain.attrs["cache_key"] == "key-a"
    assert plain["landmarks"].attrs["units"] == "pixel" and "source pixels" in plain["landmarks"].attrs["long_name"]
    tree = xr.open_datatree(tmp_path / "s.zarr", group="clips/a", engine="zarr")
    assert set(tree.children) == {"landmarks", "frame"}
    assert set(store.clip("a").children) == {"landmarks", "frame"}
    table = xr.open_zarr(tmp_path / "s.zarr", group="samples")
    assert table["sample"].values.tolist() == ["a", "b"]
    ds = store.dataset("landmarks")
    assert ds["landmarks"].shape == (6, 68, 2) and ds["sample"].values.tolist() == ["a"] * 3 + ["b"] * 3
    assert store.read_xr("landmarks", "a").coords["frame"].values.tolist() == [10, 11, 12]


def test_one_chunk_per_clip_feature(tmp_path):
    _complete(tmp_path / "s.zarr")
    arr = zarr.open_array(tmp_path / "s.zarr" / "clips" / "a" / "landmarks" / "landmarks", mode="r")
    assert arr.chunks == arr.shape


def test_rewrite_replaces_atomically_and_leaves_no_staging(tmp_path):
    w = _complete(tmp_path / "s.zarr")
    w.write_feature("a", "landmarks", np.zeros((4, 68, 2), np.float32), "new")
    assert w.stored_key("a", "landmarks") == "new"
    assert w.read_feature("a", "landmarks").shape == (4, 68, 2)
    assert not any((tmp_path / "s.zarr" / ".mepipe" / "staging").iterdir())


def test_half_written_array_is_invisible(tmp_path):
    """A write killed before its rename leaves only staging debris, never a visible array."""
    w = _complete(tmp_path / "s.zarr")
    debris = tmp_path / "s.zarr" / ".mepipe" / "staging" / "deadbeef"
    zarr.create_array(store=str(debris), shape=(3,), dtype="int64", zarr_format=3)
    assert w.stored_key("c", "landmarks") is None
    store = open_store(tmp_path / "s.zarr", allow_incomplete=True)
    assert not store.has("landmarks", "c")


def test_wrong_shape_is_refused(tmp_path):
    w = StoreWriter(tmp_path / "s.zarr")
    w.create()
    with pytest.raises(ValueError, match="dims"):
        w.write_feature("a", "landmarks", np.zeros((3, 68)), "k")


def test_sizes_are_checked_against_the_stage_parameters(tmp_path):
    """A flow field whose size disagrees with the recorded flow size is refused, naming the parameter."""
    w = StoreWriter(tmp_path / "s.zarr")
    w.create()
    params = {"flow_consecutive": {"size": [32, 24]}}  # (W, H)
    w.write_feature("a", "flow_consecutive", np.zeros((5, 2, 24, 32)), "k", stage_params=params)
    with pytest.raises(ValueError, match=r"y = 32 where flow_consecutive.size\[1\] = 24"):
        w.write_feature("a", "flow_consecutive", np.zeros((5, 2, 32, 32)), "k", stage_params=params)


def test_incomplete_store_is_refused_by_default(tmp_path):
    w = StoreWriter(tmp_path / "s.zarr")
    w.create()
    w.update_root_attrs({"state": "building"})
    with pytest.raises(IncompleteStoreError, match="rerun `mepipe build`"):
        open_store(tmp_path / "s.zarr")


def _set_schema(path, version, **extra):
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"].update(schema_version=version, **extra)
    doc.pop("consolidated_metadata", None)
    meta.write_text(json.dumps(doc))
    write_manifest(path)


def test_newer_schema_is_refused_with_the_version_that_reads_it(tmp_path):
    _complete(tmp_path / "s.zarr")
    _set_schema(tmp_path / "s.zarr", 99, reader_min_version="7.0")
    with pytest.raises(IncompatibleStoreError, match="mepipe >= 7.0"):
        open_store(tmp_path / "s.zarr")


def test_schema_1_store_is_refused_with_a_rebuild_hint(tmp_path):
    _complete(tmp_path / "s.zarr")
    _set_schema(tmp_path / "s.zarr", 1)
    with pytest.raises(IncompatibleStoreError, match=r"schema 1.*Rebuild it with `mepipe build`"):
        open_store(tmp_path / "s.zarr")
    with pytest.raises(IncompatibleStoreError, match="schema 1"):
        StoreWriter(tmp_path / "s.zarr").create()


def test_schema_1_store_is_a_short_message_at_the_command_line(tmp_path):
    from click.testing import CliRunner

    from mepipe.cli.main import cli

    _complete(tmp_path / "s.zarr")
    _set_schema(tmp_path / "s.zarr", 1)
    for args in (["info", str(tmp_path / "s.zarr")],
                 ["show", str(tmp_path / "s.zarr"), "a", "--feature", "intensity", "--out", str(tmp_path / "x.png")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "schema 1" in result.output and "mepipe build" in result.output
        assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output


def test_second_build_lock_is_refused(tmp_path):
    with BuildLock(tmp_path):
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            BuildLock(tmp_path).acquire()
    BuildLock(tmp_path).acquire().release()


def test_a_stores_tables_are_read_in_this_process_whatever_dask_scheduler_the_session_set(small_store):
    import dask

    def refuse(*args, **kwargs):
        raise AssertionError("a table read went to the session's dask scheduler")

    with dask.config.set(scheduler=refuse):
        store = open_store(small_store)
        assert len(store.samples) == len(store.sample_ids) > 0 and store.intervals.empty


def test_store_holds_nothing_executable(small_store):
    """No pickled or object-dtype arrays anywhere: every array is a plain numeric or fixed-width type."""
    for meta in Path(small_store).rglob("zarr.json"):
        doc = json.loads(meta.read_text())
        nodes = [doc] + list(doc.get("consolidated_metadata", {}).get("metadata", {}).values())
        for node in nodes:
            if node.get("node_type") != "array":
                continue
            dtype = node["data_type"]
            name = dtype if isinstance(dtype, str) else dtype["name"]
            assert name in {"bool", "int8", "int32", "int64", "uint8", "float16", "float32", "float64",
                            "fixed_length_utf32"}, (meta, name)
            assert all(c["name"] in {"bytes", "zstd", "blosc", "gzip", "crc32c", "transpose"}
                       for c in node["codecs"]), (meta, node["codecs"])
    for f in Path(small_store).rglob("*"):
        assert f.suffix not in {".pkl", ".pickle", ".npy", ".py"}, f
