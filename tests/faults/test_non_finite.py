"""Fault suite, issue 24 item 2: non-finite numbers never become results.

Before: with NaN written into the test clips' ``intensity`` (manifest
resealed, as a hostile store would), training predicted class 0 for every
one and exited 0; NaN in training clips ended in "the training loss became
nan; lower the learning rate", which blames the wrong thing; ``--lr nan``
and ``--weight-decay nan`` were ValueError tracebacks, and ``--lr inf``
trained. Now the writer refuses NaN or infinity, every read of a float
feature refuses the ones the feature does not declare, naming store, clip
and feature, and the options refuse non-finite numbers.
"""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from conftest import train_cli
from storekit import write_store

from mepipe.featurestore import open_store
from mepipe.featurestore.features import FLOW_CONSECUTIVE, FLOW_FIRST_EACH, INTENSITY, LANDMARKS
from mepipe.featurestore.finite import NonFiniteError, non_finite_problem
from mepipe.featurestore.manifest import write_manifest
from mepipe.featurestore.writer import StoreWriter
from mepipe.train.loop import TrainParams


def _damage(store, sample: str, feature: str, at: tuple, value: float = np.nan) -> None:
    """Write ``value`` into one element of a stored array through Zarr and reseal the manifest."""
    array = zarr.open_array(store / "clips" / sample / feature / feature, mode="r+")
    values = array[...]
    values[at] = value
    array[...] = values
    write_manifest(store)


def test_the_problem_counts_nan_and_infinity_and_names_the_first():
    values = np.array([0.5, np.nan, np.inf, 1.0, np.nan], dtype=np.float32)
    assert non_finite_problem(INTENSITY, values) == "2 NaN and 1 infinite of 5 values, the first at frame 1"
    assert non_finite_problem(INTENSITY, values[[0, 3]]) is None
    assert non_finite_problem(INTENSITY, np.array([1, 2], dtype=np.int8)) is None


def test_float16_values_are_told_by_their_exponent_bits():
    """Stored flows are float16, checked by bits: the largest finite value, -0 and subnormals pass, the rest not."""
    edge = np.zeros((1, 2, 1, 4), dtype=np.float16)
    edge[0, 0, 0] = [65504, -65504, -0.0, 6e-8]
    assert non_finite_problem(FLOW_FIRST_EACH, edge) is None
    for value, word in [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")]:
        bad = edge.copy()
        bad[0, 1, 0, 3] = value
        assert non_finite_problem(FLOW_FIRST_EACH, bad) == f"1 {word} of 8 values, the first at pair 0, uv 1, y 0, x 3"


def test_flow_consecutive_may_hold_whole_nan_fields_only():
    flows = np.zeros((3, 2, 4, 5), dtype=np.float16)
    flows[1] = np.nan  # the pair across a frame gap
    assert non_finite_problem(FLOW_CONSECUTIVE, flows) is None
    flows[2, 1, 3, 4] = np.nan  # one value of another pair
    assert non_finite_problem(FLOW_CONSECUTIVE, flows) == (
        "1 NaN of 120 values (NaN is allowed only as whole uv/y/x items), the first at pair 2, uv 1, y 3, x 4")
    flows[2, 1, 3, 4] = 0
    flows[1, 0, 0, 0] = np.inf  # infinity inside the missing field
    assert "1 infinite of 120 values" in non_finite_problem(FLOW_CONSECUTIVE, flows)


def test_a_build_never_writes_nan(tmp_path):
    writer = StoreWriter(tmp_path / "s.zarr")
    writer.create()
    bad = np.full((4, 68, 2), 100, dtype=np.float32)
    bad[2, 5, 0] = np.nan
    with pytest.raises(ValueError, match="clipA: feature 'landmarks' came out with 1 NaN of 544 values \\(NaN is "
                                         "allowed only as whole landmark/xy items\\), the first at frame 2, "
                                         "landmark 5, xy 0; not written"):
        writer.write_feature("clipA", LANDMARKS.name, bad, "key")
    assert not writer.stored_features()
    gap = np.zeros((3, 2, 64, 64), dtype=np.float32)
    gap[1] = np.nan
    writer.write_feature("clipA", FLOW_CONSECUTIVE.name, gap, "key")
    assert np.isnan(writer.read_feature("clipA", FLOW_CONSECUTIVE.name)[1]).all()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_every_read_of_a_damaged_float_feature_names_store_clip_and_feature(tmp_path, value):
    path = write_store(tmp_path / "s.zarr")
    _damage(path, "s2", "landmarks", (1, 3, 0), value)
    store = open_store(path)
    expected = f"{store.path}: clip 's2', feature 'landmarks' holds 1 .* the first at frame 1, landmark 3, xy 0"
    reads = {"read": lambda: store.read("landmarks", "s2"), "read_xr": lambda: store.read_xr("landmarks", "s2"),
             "dataset": lambda: store.dataset("landmarks").compute(), "clip": lambda: store.clip("s2").load(),
             "stage input": lambda: StoreWriter(path).read_feature("s2", "landmarks")}
    for name, read in reads.items():
        with pytest.raises(NonFiniteError, match=expected):
            read()
    assert np.isfinite(store.read("landmarks", "s1")).all()  # the intact clip still reads


def test_options_refuse_numbers_that_are_not_finite(tmp_path):
    for option, value in [("--lr", "nan"), ("--weight-decay", "nan"), ("--lr", "inf"), ("--weight-decay", "inf")]:
        result = CliRunner().invoke(train_cli(), ["train", "--model", "shcnn", "--labels", "samm-3", "--store",
                                                  str(tmp_path), option, value])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"Invalid value for '{option}': '{value}' is not a finite number" in result.output
    for field in ("lr", "weight_decay"):
        with pytest.raises(ValueError, match=f"{field} must be a finite number"):
            TrainParams(epochs=1, batch_size=1, **{"lr": 0.1, field: float("nan")})


@pytest.mark.slow
def test_training_on_nan_test_clips_stops_naming_store_clip_and_feature(toy_network, store_copy, tmp_path):
    store = open_store(store_copy)
    tested = [s for s in store.sample_ids if s.startswith("001_")]  # the first LOSO fold tests subject 001
    for sample in tested:
        _damage(store_copy, sample, INTENSITY.name, (slice(None),))
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "toy-curve", "--store", str(store_copy), "--labels", "samm-3", "--epochs", "1",
        "--folds", "1", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")])
    output = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert output[-1].startswith(f"error: {store_copy}: clip '{tested[0]}', feature 'intensity' holds ")
    assert "the store is damaged" in output[-1]
    assert not (tmp_path / "run" / "report.json").exists()
