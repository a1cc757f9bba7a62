"""``mepipe info --clips/--features`` and ``store.features`` / ``store.dataset_features``.

The store is written with the real writer and finished as a build leaves it: clips of different lengths, one
flagged and one failed clip, a dataset-level mask, and a plug-in's feature that this process's feature table
no longer knows when the store is read (as for a store built elsewhere), so that every column has to come from
the store's own metadata.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import finish_synthetic_store

from mepipe.featurestore import features as feature_table
from mepipe.featurestore import open_store
from mepipe.featurestore.features import FeatureDef
from mepipe.featurestore.info import list_contents
from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.text_table import cell_lines, text_table
from mepipe.featurestore.writer import StoreWriter

PLUGIN = FeatureDef("blink_rate", "blinks", ("frame", "xy"), "float32", "Hz", "eye blinks per second",
                    "a plug-in's feature: per frame, blinks per second of each eye")
FRAMES = {"s1": 5, "s2": 7}
"""Frames of the two built clips; ``s3`` failed and ``s4`` was flagged (4 frames)."""


def _sample(sample: str, **values) -> dict:
    """A sample-table row: ``values`` over an ok clip of the demo dataset with nothing else known."""
    unknown = dict.fromkeys(("n_frames", "onset", "apex", "offset", "onset_est", "apex_est", "offset_est",
                             "apex_ncc"))
    return dict.fromkeys(SAMPLE_COLUMNS, "") | unknown | {"sample": sample, "dataset": "demo", "fps": 100.0,
                                                          "status": "ok"} | values


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("info") / "s.zarr"
    rng = np.random.default_rng(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(feature_table.FEATURES, PLUGIN.name, PLUGIN)
        writer = StoreWriter(path)
        writer.create()
        for sample, n in {**FRAMES, "s4": 4}.items():
            frames = np.arange(100, 100 + n)
            writer.write_feature(sample, "frame", frames, f"key-{sample}")
            writer.write_feature(sample, "landmarks", rng.normal(100, 30, (n, 68, 2)), f"key-{sample}",
                                 frame_numbers=frames)
            writer.write_feature(sample, PLUGIN.name, rng.random((n, 2)), f"key-{sample}", frame_numbers=frames)
        writer.write_dataset_feature("appearance_mask", rng.random((6, 8)) > 0.5, "key-mask")
        writer.write_samples(pd.DataFrame([
            _sample("s1", subject="001", n_frames=5), _sample("s2", subject="002", n_frames=7),
            _sample("s3", subject="003", status="failed", error="s3/frames: truncated JPEG"),
            _sample("s4", subject="004", n_frames=4, status="flagged", flags="apex_outside_span")]))
        finish_synthetic_store(writer, "demo")
    return path


def test_dataset_level_features_are_listed_apart_from_the_clip_features(store):
    opened = open_store(store)
    assert opened.dataset_features == ["appearance_mask"]
    assert "appearance_mask" not in opened.features and {"frame", "landmarks", PLUGIN.name} <= set(opened.features)
    with pytest.raises(KeyError, match=r"dataset-level feature.*dataset_array\('appearance_mask'\)"):
        opened.read("appearance_mask", "s1")
    assert opened.dataset_array("appearance_mask").shape == (6, 8)


def test_clips_list_every_clip_with_its_status_and_why(store):
    clips = {c["sample"]: c for c in list_contents(store, clips=True)["clips"]}
    assert list(clips) == ["s1", "s2", "s3", "s4"]
    assert clips["s1"] == {"sample": "s1", "dataset": "demo", "subject": "001", "n_frames": 5, "status": "ok",
                           "reason": ""}
    assert clips["s3"]["status"] == "failed" and clips["s3"]["reason"] == "s3/frames: truncated JPEG"
    assert clips["s3"]["n_frames"] is None
    assert clips["s4"]["status"] == "flagged" and clips["s4"]["reason"] == "apex_outside_span"


def test_features_come_from_the_stores_own_metadata(store, monkeypatch):
    """The plug-in's feature is described with the plug-in not loaded: dims, units and meaning are the store's."""
    monkeypatch.delitem(feature_table.FEATURES, PLUGIN.name, raising=False)
    rows = {f["name"]: f for f in list_contents(store, features=True)["features"]}
    blink = rows[PLUGIN.name]
    assert blink["dims"] == ["frame", "xy"] and blink["dtype"] == "float32" and blink["units"] == "Hz"
    assert blink["long_name"] == "eye blinks per second" and blink["comment"] == PLUGIN.description
    assert blink["scope"] == "clip" and blink["n_clips"] == 3


def test_a_dim_that_varies_between_clips_is_given_as_its_range(store):
    rows = {f["name"]: f for f in list_contents(store, features=True)["features"]}
    landmarks = rows["landmarks"]
    lengths = [4, *FRAMES.values()]
    assert landmarks["shape_min"] == [min(lengths), 68, 2] and landmarks["shape_max"] == [max(lengths), 68, 2]
    assert landmarks["shape"] == "4–7 × 68 × 2"
    mask = rows["appearance_mask"]
    assert mask["scope"] == "dataset" and mask["n_clips"] is None and mask["shape"] == "6 × 8"
    assert list(rows)[-1] == "appearance_mask"  # dataset-level features come after the clip features


def test_cli_prints_the_lists_as_tables_and_as_json(store):
    from mepipe.cli.main import cli

    text = CliRunner().invoke(cli, ["info", str(store), "--clips", "--features"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    header = next(line for line in lines if line.startswith("sample"))
    assert header.split() == ["sample", "dataset", "subject", "frames", "status", "reason"]
    failed = next(line for line in lines if line.startswith("s3 "))
    assert failed.split()[-4:] == ["failed", "s3/frames:", "truncated", "JPEG"]
    landmarks = next(line for line in lines if line.startswith("landmarks "))
    assert "4–7 × 68 × 2" in landmarks and "facial landmark position in source pixels" in landmarks
    as_json = CliRunner().invoke(cli, ["info", str(store), "--features", "--json"])
    data = json.loads(as_json.output)
    assert "clips" not in data and data["store_id"] == open_store(store).store_id
    assert {f["name"] for f in data["features"]} == {"frame", "landmarks", PLUGIN.name, "appearance_mask"}


def test_store_info_lists_too_and_the_description_points_to_the_lists(store):
    from mepipe.cli.store_cmd import store as store_group

    listed = CliRunner().invoke(store_group, ["info", str(store), "--clips", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [c["sample"] for c in json.loads(listed.output)["clips"]] == ["s1", "s2", "s3", "s4"]
    described = CliRunner().invoke(store_group, ["info", str(store)])
    assert "dataset-level features" in described.output and "--clips" in described.output
    assert json.loads(CliRunner().invoke(store_group, ["info", str(store), "--json"]).output)[
        "dataset_features"] == ["appearance_mask"]


def test_escape_codes_in_a_failure_reach_the_terminal_escaped(tmp_path):
    path = tmp_path / "s.zarr"
    writer = StoreWriter(path)
    writer.create()
    writer.write_samples(pd.DataFrame([_sample("s1", status="failed", error="bad \x1b]0;owned\x07 title")]))
    finish_synthetic_store(writer, "demo")
    from mepipe.cli.main import cli

    result = CliRunner().invoke(cli, ["info", str(path), "--clips"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output and "\\x1b]0;owned" in result.output


def test_cells_wrap_at_the_width_and_a_cut_cell_says_the_whole_length():
    text = "word " * 30  # 150 characters
    wrapped = cell_lines(text.strip(), 20, 10)
    assert all(len(line) <= 20 for line in wrapped) and " ".join(wrapped) == text.strip()
    cut = cell_lines(text.strip(), 20, 2)
    assert len(cut) == 2 and all(len(line) <= 20 for line in cut) and cut[-1].endswith("… (149 chars)")
    assert cell_lines("x" * 45, 20, 3) == ["x" * 20, "x" * 20, "x" * 5]


def test_a_table_pads_each_column_to_its_widest_line_and_wraps_rows_onto_several_lines():
    lines = text_table([["a", "bb", "c"], ["dddd", "e " * 6, "f"]], width=5, lines=3)
    assert lines == ["a     bb     c",
                     "dddd  e e e  f",
                     "      e e e"]
    assert text_table([["x", "a long cell"]]) == ["x  a long cell"]
