"""Training from the store: fold leakage, metrics wiring, checkpoints, the run folder, learnability.

A synthetic store (written once per session with ``StoreWriter``) holds
flow fields whose direction encodes the class, so a short SHCNN run under
LOSO must be well above chance, and must not be when the labels are
shuffled. The 6-clip demo store with every feature (``full_store``) checks
that each model trains from real store features.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import finish_synthetic_store, train_cli

from mepipe.featurestore.schema import SAMPLE_COLUMNS
from mepipe.featurestore.views import build_mask, time_normalise
from mepipe.featurestore.writer import StoreWriter
from mepipe.pipeline.stages.appearance import heatmap
from mepipe.train import metrics
from mepipe.featurestore.features import FLOW_ONSET_APEX
from mepipe.train.augment import Magnification, frame_subset, magnification_scale, recorded_subset_levels
from mepipe.train.clips import ClipTable, MissingFeatureError, MissingStageError
from mepipe.train.fold import FoldInputs
from mepipe.train.inputs.appearance import AppearanceDataset, AppearanceMatrices, fold_mask
from mepipe.train.inputs.base import ClipReader, fit_standardiser
from mepipe.train.inputs.batches import Item
from mepipe.train.inputs.clip_arrays import ClipArrayDataset, ClipArrays
from mepipe.train.inputs.flow_frames import FlowFrameDataset
from mepipe.train.inputs.magnified_flows import MagnifiedFlowDataset
from mepipe.train.loop import ItemLogits, TrainParams, load_checkpoint, resolve_device, save_checkpoint
from mepipe.train.models import create_model, get_recipe
from mepipe.train.labels import apply_scheme
from mepipe.train.protocols import loso, overlapping_subjects
from mepipe.train.recipe import RunOptions
from mepipe.train.report import REQUIRED_KEYS, read_report
from mepipe.train.rules import FrameVote
from mepipe.train.plan import plan_run
from mepipe.train.run import RunParams, run_training, stage_train_params
from mepipe.train.targets import ClassTargets

torch.set_num_threads(1)

EMOTIONS = ("Happiness", "Anger", "Surprise")
SMALL_SHCNN = (("widths", (8, 16, 32)), ("hidden", 64))
"""A narrow SHCNN keeps the learnability runs inside the suite's time budget."""


def write_synthetic_store(path, *, n_subjects=4, n_clips=2, n_fields=4, seed=0, shuffle_labels=False,
                          class_aus=None):
    """Clips whose motion direction (flow) and moving rows (appearance) depend on the class.

    Each clip has ``flow_first_each`` fields rising and falling around a
    blob at a random place moving at angle 120°·class (plus noise), an
    onset→apex field, the greyscale clip at two α whose rows
    ``8 + 12·class`` brighten, its heat map and time-normalised frames.
    ``shuffle_labels`` permutes the emotions over the clips afterwards;
    ``class_aus`` (emotion -> AU codes) then gives each clip its emotion's AUs.
    """
    rng = np.random.default_rng(seed)
    writer = StoreWriter(path)
    writer.create()
    yy, xx = np.mgrid[0:112, 0:112] / 111.0
    rows = []
    for s in range(n_subjects):
        subject = f"{s + 1:03d}"
        for c, emotion in enumerate(EMOTIONS):
            for k in range(n_clips):
                sample = f"{subject}_{c}_{k}"
                angle = 2 * np.pi * c / 3 + rng.normal(0, 0.3)
                cy, cx = rng.uniform(0.3, 0.7, 2)
                blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
                ramp = np.sin(np.linspace(0.3, np.pi - 0.3, n_fields))
                field = np.stack([np.cos(angle) * blob, np.sin(angle) * blob])
                flow = np.stack([2 * r * field for r in ramp]) + rng.normal(0, 0.15, (n_fields, 2, 112, 112))
                writer.write_feature(sample, "flow_first_each", flow, "synthetic")
                onset_apex = rng.normal(0, 0.1, (2, 245, 300))
                onset_apex[:, 60:172, 90:202] += flow[n_fields // 2]
                writer.write_feature(sample, "flow_onset_apex", onset_apex, "synthetic")
                base = rng.uniform(80, 160, (48, 64))
                wave = np.sin(np.linspace(0, np.pi, n_fields + 1))
                clips = np.repeat(base[None, None], n_fields + 1, 0).repeat(2, 1)
                for a, gain in enumerate((40, 60)):
                    clips[:, a, 8 + 12 * c:16 + 12 * c, 16:48] += gain * wave[:, None, None]
                clips = np.clip(clips[..., None] + rng.normal(0, 3, clips.shape + (1,)), 0, 255)
                writer.write_feature(sample, "magnified_small", clips.astype(np.uint8), "synthetic")
                writer.write_feature(sample, "heatmap", heatmap(clips[:, 0]), "synthetic")
                writer.write_feature(sample, "appearance_frames", time_normalise(clips[:, 0], 30), "synthetic")
                writer.write_feature(sample, "frame", np.arange(100, 101 + n_fields), "synthetic")
                row = dict.fromkeys(SAMPLE_COLUMNS, "")
                row.update(sample=sample, dataset="synth", subject=subject, clip=sample, fps=200.0,
                           n_frames=n_fields + 1, emotion=emotion, onset=100, apex=101 + n_fields // 2,
                           offset=100 + n_fields, status="ok", onset_est=None, apex_est=None, offset_est=None,
                           apex_ncc=None)
                rows.append(row)
    table = pd.DataFrame(rows)
    if shuffle_labels:
        table["emotion"] = rng.permutation(table["emotion"].to_numpy())
    if class_aus is not None:
        table["action_units"] = table["au_codes"] = table["emotion"].map(class_aus)
    writer.write_samples(table)
    finish_synthetic_store(writer, "synth", magnify={"alphas": (40.0, 60.0), "test_alpha": 40.0})
    return path


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("synth") / "synth.zarr")


@pytest.fixture(scope="session")
def shuffled_store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("shuffled") / "shuffled.zarr", shuffle_labels=True)


def _shcnn_params(store, out, **changes):
    return RunParams(**{"model": "shcnn", "store": str(store), "labels": "samm-3", "out": str(out), "epochs": 3,
                        "batch_size": 16, "device": "cpu", "progress": False, "model_args": SMALL_SHCNN,
                        **changes})


@pytest.fixture(scope="session")
def shcnn_run(synth_store, tmp_path_factory):
    """A short SHCNN LOSO run on the synthetic store, through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "shcnn"
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "shcnn", "--store", str(synth_store), "--labels", "samm-3", "--protocol", "loso",
        "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--no-progress", "--out", str(out),
        "--model-arg", "widths=[8,16,32]", "--model-arg", "hidden=64"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


@pytest.mark.slow
def test_a_diverging_run_says_so_in_a_sentence_not_a_traceback(synth_store, tmp_path):
    """A learning rate far too high makes the loss infinite: exit status 1, the fold and epoch, and what to change."""
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "shcnn", "--store", str(synth_store), "--labels", "samm-3", "--folds", "1",
        "--epochs", "3", "--lr", "1e30", "--optimizer", "sgd", "--device", "cpu", "--no-progress",
        "--out", str(tmp_path / "run"), "--model-arg", "widths=[4,4,4]", "--model-arg", "hidden=8"])
    assert result.exit_code == 1, result.output
    assert "error: fold 1/1" in result.output and "lower the learning rate (--lr)" in result.output
    assert "Traceback" not in result.output


def _folds(store_path):
    plan = plan_run(RunParams(model="shcnn", store=str(store_path), labels="samm-3"))
    return plan.clips, plan.table, [sides.fold for sides in plan.folds]


def _inputs(clips, table, fold, **options):
    labels = dict(zip(table["sample"], table["label"]))
    return FoldInputs(clips, list(fold.train), [labels[s] for s in fold.train], list(fold.test),
                      [labels[s] for s in fold.test], RunOptions(**options), torch.device("cpu"))


def test_loso_training_side_holds_no_test_subject(synth_store):
    clips, table, folds = _folds(synth_store)
    subject = dict(zip(table["sample"], table["subject"]))
    assert len(folds) == 4
    for fold in folds:
        assert {subject[s] for s in fold.test} == {fold.name.split("/")[1]}
        assert not {subject[s] for s in fold.train} & {subject[s] for s in fold.test}
        assert not overlapping_subjects(fold, table)
    with pytest.raises(ValueError, match="both sides"):
        FoldInputs(clips, list(folds[0].train), [0] * len(folds[0].train), list(folds[0].train[:1]), [0],
                   RunOptions(), torch.device("cpu"))


def test_strcn_a_mask_is_built_from_the_training_clips_only(synth_store):
    clips, table, folds = _folds(synth_store)
    fold = folds[0]
    inputs = _inputs(clips, table, fold)
    train, test = AppearanceMatrices().datasets(inputs, None)
    mask, mask_clips = inputs.statistics.mask, inputs.statistics.mask_clips
    assert set(mask_clips) == set(fold.train) and not set(mask_clips) & set(fold.test)
    expected = build_mask(np.stack([clips.read("heatmap", s) for s in fold.train]), 0.30)
    np.testing.assert_array_equal(mask, expected)
    with_test_clip = fold_mask(clips, [*fold.train, fold.test[0]], 0.30)
    assert not np.array_equal(mask, with_test_clip)
    assert train.mask is mask and test.mask is mask
    glob = _inputs(clips, table, fold, choices=(("mask", "global"),))
    AppearanceMatrices().datasets(glob, None)
    assert set(glob.statistics.mask_clips) == set(clips.ids)
    assert not np.array_equal(glob.statistics.mask, mask)


def test_standardisation_is_fitted_on_the_training_fold(synth_store):
    clips, table, folds = _folds(synth_store)
    fold = folds[1]
    inputs = _inputs(clips, table, fold)
    train, test = ClipArrays(FLOW_ONSET_APEX).datasets(inputs, None)
    train_only = fit_standardiser(ClipArrayDataset(clips, fold.train, [0] * len(fold.train)), center=False)
    everything = fit_standardiser(ClipArrayDataset(clips, clips.ids, [0] * 24), center=False)
    assert inputs.statistics.standardiser == train_only != everything
    assert test.standardiser is inputs.statistics.standardiser


def test_frame_dataset_codes_flow_and_carries_clip_and_frame(synth_store):
    clips = ClipTable.of(synth_store)
    ids = clips.ids[:3]
    lazy = FlowFrameDataset(clips, ids, [0, 1, 2])
    held = FlowFrameDataset(clips, ids, [0, 1, 2], in_memory=True)
    assert len(lazy) == len(held) == 12
    item = lazy[5]
    assert item.x.shape == (3, 112, 112) and item.x.dtype == torch.float32
    assert (item.clip, item.frame, item.y) == (1, 1, 1)
    assert 0 <= float(item.x.min()) and float(item.x.max()) <= 1
    torch.testing.assert_close(item.x, held[5].x)
    assert lazy.apex_fields == [2, 2, 2]  # apex = frame 103 of 100..104 (index 3): field 2 (frame 0 -> 3)
    with pytest.raises(MissingFeatureError, match="flow_consecutive"):
        ClipReader(clips, "flow_consecutive", ids)


def test_shcnn_codes_flow_hsi_unless_the_run_asks_for_hsv(synth_store):
    from mepipe.featurestore.views import code_flow
    from mepipe.train.models import get_recipe
    from mepipe.train.recipe import RunOptions

    recipe = get_recipe("shcnn")
    items = recipe.stages[0].items
    assert items.coding_of(RunOptions(choices=recipe.resolve_choices(()))) == "hsi"  # Miao §III-C
    assert items.coding_of(RunOptions(choices=recipe.resolve_choices((("colour", "hsv"),)))) == "hsv"
    clips = ClipTable.of(synth_store)
    ids = clips.ids[:2]
    for coding in ("hsi", "hsv"):
        dataset = FlowFrameDataset(clips, ids, [0, 1], coding=coding)
        np.testing.assert_array_equal(dataset.raw(5), code_flow(dataset.field(1, 1), coding=coding))
    with pytest.raises(ValueError, match="colour must be one of hsi, hsv"):
        recipe.resolve_choices((("colour", "rgb"),))


def test_vote_uses_frames_and_the_apex_field_on_ties(synth_store):
    ds = FlowFrameDataset(ClipTable.of(synth_store), ClipTable.of(synth_store).ids[:2], [0, 0])
    frames = np.tile(np.arange(4), 2)
    clips = np.repeat([0, 1], 4)
    logits = np.zeros((8, 3), np.float32)
    logits[[0, 1, 2, 3], [2, 2, 2, 0]] = 1
    logits[[4, 5, 6, 7], [0, 1, 0, 1]] = 1
    predicted = ItemLogits(logits=logits, y=np.zeros(8), clip=clips, frame=frames)
    pred = FrameVote().decide(predicted, [np.arange(4), np.arange(4, 8)], ds, ClassTargets("test", ("a", "b", "c")))
    assert pred.tolist() == [2, int(logits[4 + ds.apex_fields[1]].argmax())]


def test_augmentations_keep_shapes_and_draw_from_the_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 30, dtype=torch.float32).reshape(1, 1, 2, 30).repeat(4, 1, 1, 1)
    out = frame_subset(x, g, (0.6,))
    assert out.shape == x.shape
    assert torch.all(out[..., 0] >= x[..., 0]) and torch.all(torch.diff(out, dim=-1) >= 0)
    torch.testing.assert_close(frame_subset(x, g, (1.0,)), x)
    flow = torch.ones(200, 2, 3, 3)
    factors = magnification_scale(flow, g, tuple(float(a) for a in range(5, 15)))[:, 0, 0, 0]
    assert factors.min() >= 6 / 10.5 - 1e-6 and factors.max() <= 15 / 10.5 + 1e-6
    assert len(torch.unique(factors)) > 5


def test_scale_augmentation_draws_the_stores_alphas(synth_store):
    """The synthetic store records magnify.alphas (40, 60): (1 + a) / (1 + 50) gives 41/51 and 61/51 only."""
    clips, table, folds = _folds(synth_store)
    scale = _inputs(clips, table, folds[0], choices=(("augmentation", "scale"),))
    step = get_recipe("strcn-g").stages[0].objective(scale)
    seen = []
    batch = Item(x=torch.ones(64, 2, 70, 70), y=torch.zeros(64, dtype=torch.long), clip=torch.zeros(64))
    step(lambda x: seen.append(x) or torch.zeros(64, 3, requires_grad=True), batch, torch.Generator().manual_seed(0))
    factors = {round(float(f), 5) for f in seen[0][:, 0, 0, 0]}
    assert factors == {round(41 / 51, 5), round(61 / 51, 5)}
    assert Magnification.recorded(clips, "a test").alphas == (40.0, 60.0)


def test_random_alpha_reads_every_stored_alpha(synth_store):
    clips = ClipTable.of(synth_store)
    ids = clips.ids[:2]
    mask = fold_mask(clips, ids, 0.30)
    ds = AppearanceDataset(clips, ids, [0, 0], mask=mask, random_alpha=True, seed=1)
    plain = AppearanceDataset(clips, ids, [0, 0], mask=mask)
    assert ds[0].x.shape == plain[0].x.shape == (1, int(mask.sum()), 30)
    distinct = {round(float(ds.raw(0).max()), 2) for _ in range(12)}
    assert len(distinct) == 2


RAMP_SUBSETS = (
    np.array([[1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [0, 1, 1, 1, 1], [1, 0, 1, 1, 1], [1, 1, 0, 0, 1]], bool),
    np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 1], [1, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 1, 1, 0, 1]], bool),
)
"""Each ramp clip's five frame subsets (keeping 5, 4, 4, 4 and 3 of 5 frames, as Xia's levels would)."""


def _ramp_store(path, n_frames=5, alphas=(5.0, 8.0), subsets=True):
    """Two clips whose magnified frame t at alpha number a is the constant 10 t + 100 a (48x64, grey), with the
    frame subsets of :data:`RAMP_SUBSETS` (none with ``subsets=False``)."""
    writer = StoreWriter(path)
    writer.create()
    rows = []
    for k, emotion in enumerate(("Happiness", "Surprise")):
        sample = f"00{k + 1}_0_0"
        clip = np.zeros((n_frames, len(alphas), 48, 64, 1))
        for a in range(len(alphas)):
            clip[:, a] = (10 * np.arange(n_frames) + 100 * a)[:, None, None, None]
        writer.write_feature(sample, "magnified_small", clip.astype(np.uint8), "synthetic")
        writer.write_feature(sample, "heatmap", heatmap(clip[:, 0, ..., 0]) + np.arange(48 * 64).reshape(48, 64),
                             "synthetic")
        writer.write_feature(sample, "appearance_frames", time_normalise(clip[:, 1], 30), "synthetic")
        writer.write_feature(sample, "frame", np.arange(n_frames), "synthetic")
        if subsets:
            writer.write_feature(sample, "subset_frames", RAMP_SUBSETS[k], "synthetic")
        row = dict.fromkeys(SAMPLE_COLUMNS, "")
        row.update(sample=sample, dataset="ramp", subject=f"00{k + 1}", clip=sample, fps=200.0, n_frames=n_frames,
                   emotion=emotion, onset=0, apex=2, offset=n_frames - 1, status="ok", onset_est=None,
                   apex_est=None, offset_est=None, apex_ncc=None)
        rows.append(row)
    writer.write_samples(pd.DataFrame(rows))
    finish_synthetic_store(writer, "ramp", magnify={"alphas": alphas})
    return path


def test_strcn_a_items_are_the_stored_frame_subsets_of_each_alphas_clip_then_time_normalised(tmp_path):
    clips = ClipTable.of(_ramp_store(tmp_path / "ramp.zarr"))
    mask = np.zeros((48, 64), bool)
    mask[:2, :3] = True
    ds = AppearanceDataset(clips, clips.ids, [0, 1], mask=mask, variants=True)
    assert ds.n_variants == 2 * 5  # two stored alphas x the clips' five stored subsets
    # Variant 1 * 5 + 4: alpha number 1 (frames 100 + 10 t) under subset 4 of clip 1 (frames 0, 1, 4):
    # 100, 110, 140 time-normalised to 30 columns, kept frame k at position 2 j / 29 of column j.
    expected = np.interp(np.arange(30) * 2 / 29, [0, 1, 2], [100, 110, 140])
    matrix = ds.raw_variant(0, 1 * 5 + 4)[0]
    assert matrix.shape == (6, 30) and np.ptp(matrix, axis=0).max() < 1e-4  # every masked pixel alike
    assert np.allclose(matrix[0], expected, atol=1e-3)
    # The subsets are the clip's own and fixed: clip 2's subset 4 keeps frames 1, 2, 4 (alpha number 0: 10 t).
    assert np.allclose(ds.raw_variant(1, 4)[0, 0], np.interp(np.arange(30) * 2 / 29, [0, 1, 2], [10, 20, 40]),
                       atol=1e-3)
    assert all(np.array_equal(ds.raw_variant(0, 9), matrix[None]) for _ in range(3))
    # Subset 0 keeps every frame: alpha number 0's whole clip, 10 t over 0..4.
    assert np.allclose(ds.raw_variant(1, 0)[0, 0], np.linspace(0, 40, 30), atol=1e-3)
    # Items asked for by index are the stored appearance_frames (the test alpha, number 1 here).
    assert np.allclose(ds.raw(0)[0, 0], np.linspace(100, 140, 30), atol=0.1)


def test_strcn_a_epochs_cover_every_alpha_and_fraction_and_the_columns_option_keeps_the_old_way(tmp_path):
    clips = ClipTable.of(_ramp_store(tmp_path / "ramp.zarr"))
    labels, _, _ = apply_scheme(clips.samples, "samm-3")
    table = clips.samples.loc[labels.index].assign(label=labels)
    fold = loso(table)[0]
    recipe = get_recipe("strcn-a")
    items, objective = recipe.stages[0].items, recipe.stages[0].objective
    inputs = _inputs(clips, table, fold)
    train, _ = items.datasets(inputs, None)
    draws = [d for batch in items.loader(train, 4, inputs, train=True) for d in batch.variant.tolist()]
    assert sorted(draws) == list(range(10))  # one clip x 2 alphas x 5 fractions, each once per epoch
    x = torch.rand(3, 1, 8, 30)
    step = objective(inputs)
    logits = torch.zeros(3, 3, requires_grad=True)
    model = lambda v: logits + v.sum() * 0  # noqa: E731 - a stand-in network that records nothing
    seen = []
    batch = Item(x=x, y=torch.tensor([0, 1, 2]), clip=torch.zeros(3))
    step(lambda v: seen.append(v) or model(v), batch, torch.Generator())
    assert torch.equal(seen[0], x)  # Xia's augmentation is in the items; the batch is left alone
    columns = _inputs(clips, table, fold, choices=(("augmentation", "columns"),))
    train, _ = items.datasets(columns, None)
    assert train.random_alpha
    objective(columns)(lambda v: seen.append(v) or model(v), batch, torch.Generator().manual_seed(0))
    assert not torch.equal(seen[1], x)  # the column subset of the time-normalised matrix


def test_strcn_a_subsets_need_the_stores_frame_subsets(tmp_path):
    """Xia's subsets are the store's (subset_frames, drawn once per clip by the build), never drawn in training:
    a store without them is refused naming the feature and the build command, unless the run does not augment."""
    clips = ClipTable.of(_ramp_store(tmp_path / "ramp.zarr", subsets=False))
    labels, _, _ = apply_scheme(clips.samples, "samm-3")
    table = clips.samples.loc[labels.index].assign(label=labels)
    fold = loso(table)[0]
    recipe = get_recipe("strcn-a")
    items = recipe.stages[0].items
    inputs = _inputs(clips, table, fold)
    assert "subset_frames" in recipe.reads_for(inputs.options)
    with pytest.raises(MissingFeatureError, match=r"'subset_frames' is missing .*mepipe build --features subset_frames"):
        items.datasets(inputs, None)
    plain = _inputs(clips, table, fold, augment=False)
    assert "subset_frames" not in recipe.reads_for(plain.options)
    train, _ = items.datasets(plain, None)
    assert train.n_variants == 0


def test_strcn_a_columns_option_draws_the_stores_subset_levels(tmp_path):
    """The earlier augmentation (augmentation=columns) keeps fractions of the store's subset levels
    (flow_onset_apex_magnified.subset_levels): a store with no record of that stage is refused with the build
    command."""
    from mepipe.featurestore.manifest import write_manifest

    path = _ramp_store(tmp_path / "ramp.zarr")
    assert recorded_subset_levels(ClipTable.of(path), "a test") == (1.0, 0.9, 0.8, 0.7, 0.6)
    writer = StoreWriter(path)
    stages = dict(writer.root_attrs()["stages"])
    del stages["flow_onset_apex_magnified"]
    writer.update_root_attrs({"stages": stages})
    writer.consolidate()
    write_manifest(path)
    clips = ClipTable.of(path)
    labels, _, _ = apply_scheme(clips.samples, "samm-3")
    table = clips.samples.loc[labels.index].assign(label=labels)
    columns = _inputs(clips, table, loso(table)[0], choices=(("augmentation", "columns"),))
    with pytest.raises(MissingStageError, match=r"STRCN-A's augmentation=columns reads the parameters of stage "
                                                r"flow_onset_apex_magnified.*--features flow_onset_apex_magnified"):
        get_recipe("strcn-a").stages[0].objective(columns)


def test_strcn_g_items_are_each_alphas_flow_of_each_subsets_pair(tmp_path):
    """Field (alpha a, pair p) holds 100 a + 10 p; subsets use pairs 0, 1, 1, 2, 0; the test alpha is 8 (number 1)."""
    writer = StoreWriter(tmp_path / "g.zarr")
    writer.create()
    rows = []
    for k, emotion in enumerate(("Happiness", "Surprise")):
        sample = f"00{k + 1}_0_0"
        flows = np.zeros((2, 3, 2, 245, 300), np.float32) + (100 * np.arange(2)[:, None] + 10 * np.arange(3))[
            :, :, None, None, None] + k
        writer.write_feature(sample, "flow_onset_apex_magnified", flows, "synthetic")
        writer.write_feature(sample, "onset_apex_pairs", np.array([[0, 2], [1, 2], [1, 3]], np.int32), "synthetic")
        writer.write_feature(sample, "subset_pair", np.array([0, 1, 1, 2, 0], np.int32), "synthetic")
        row = dict.fromkeys(SAMPLE_COLUMNS, "")
        row.update(sample=sample, dataset="g", subject=f"00{k + 1}", clip=sample, fps=200.0, n_frames=5,
                   emotion=emotion, onset=0, apex=2, offset=4, status="ok", onset_est=None, apex_est=None,
                   offset_est=None, apex_ncc=None)
        rows.append(row)
    writer.write_samples(pd.DataFrame(rows))
    finish_synthetic_store(writer, "g", magnify={"alphas": (5.0, 8.0), "test_alpha": 8.0})
    clips = ClipTable.of(tmp_path / "g.zarr")
    labels, _, _ = apply_scheme(clips.samples, "samm-3")
    table = clips.samples.loc[labels.index].assign(label=labels)
    fold = loso(table)[0]
    inputs = _inputs(clips, table, fold)
    assert Magnification.recorded(clips, "a test").test_index == 1
    ds = MagnifiedFlowDataset(clips, clips.ids, [0, 1], test_alpha=1)
    assert ds.n_variants == 2 * 5
    assert ds.raw(1)[0, 0, 0] == 100 + 1  # the test alpha's own onset->apex pair (pair 0), clip 2
    # Variant a * 5 + k: alpha number a, the pair of subset k.
    for variant, expected in ((0, 0), (2, 10), (3, 20), (5 + 1, 110), (5 + 3, 120), (5 + 4, 100)):
        assert ds.raw_variant(0, variant)[0, 0, 0] == expected
    recipe = get_recipe("strcn-g")
    assert recipe.reads_for(inputs.options) == ("flow_onset_apex_magnified", "subset_pair")
    items = recipe.stages[0].items
    train, test = items.datasets(inputs, None)
    draws = [v for batch in items.loader(train, 4, inputs, train=True) for v in batch.variant.tolist()]
    assert sorted(draws) == list(range(10))  # every alpha x subset of the training clip, once per epoch
    scale = RunOptions(choices=(("augmentation", "scale"),))
    assert recipe.reads_for(scale) == ("flow_onset_apex",)


def test_checkpoint_roundtrip_with_weights_only(tmp_path):
    model = create_model("shcnn", num_classes=3, widths=(4, 4, 4), hidden=8)
    path = save_checkpoint(model, tmp_path / "checkpoints" / "fold-a.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == set(model.state_dict())
    other = load_checkpoint(create_model("shcnn", num_classes=3, widths=(4, 4, 4), hidden=8), path)
    x = torch.rand(2, 3, 112, 112)
    torch.testing.assert_close(model.eval()(x), other.eval()(x))


def test_train_params_come_from_the_recipe_and_can_be_overridden():
    # Xia §IV-A: SGD, momentum 0.9, weight decay 5e-4, lr 1e-3 x 0.8 per epoch, batch 20.
    params = RunParams(model="strcn-g", store="s", labels="strcn-4")
    assert stage_train_params(params, get_recipe("strcn-g")) == [TrainParams(
        epochs=30, batch_size=20, lr=1e-3, optimizer="sgd", weight_decay=5e-4, momentum=0.9, lr_decay=0.8)]
    # Miao §III-D: Adam, lr 1e-3, batch 100; loss term 3e-4 * ||w||^2 -> gradient coefficient 6e-4.
    (shcnn,) = stage_train_params(RunParams(model="shcnn", store="s", labels="samm-3"), get_recipe("shcnn"))
    assert (shcnn.optimizer, shcnn.lr, shcnn.batch_size, shcnn.weight_decay) == ("adam", 1e-3, 100, 6e-4)
    changed = RunParams(model="shcnn", store="s", labels="samm-3", epochs=2, batch_size=7, lr=0.1)
    (first,) = stage_train_params(changed, get_recipe("shcnn"))
    assert (first.epochs, first.batch_size, first.lr, first.optimizer) == (2, 7, 0.1, "adam")
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="test_dataset"):
        RunParams(model="shcnn", store="s", labels="samm-3", protocol="cross")
    with pytest.raises(ValueError, match="no recipe option 'mask'"):
        RunParams(model="shcnn", store="s", labels="samm-3", recipe_options=(("mask", "global"),))


@pytest.mark.slow
def test_run_folder_report_and_metrics_wiring(shcnn_run):
    report = read_report(shcnn_run)
    assert set(REQUIRED_KEYS) <= set(report)
    assert (report["model"], report["labels"], report["protocol"]) == ("shcnn", "samm-3", "loso")
    assert report["classes"] == ["negative", "positive", "surprise"]
    assert len(report["store"]["fingerprint"]) == 64 and report["device"].startswith("cpu")
    assert report["seconds_per_epoch"] > 0 and report["parameters"]["stages"][0]["train"]["batch_size"] == 16
    assert report["parameters"]["recipe"]["doi"] == "10.1109/ACCESS.2019.2921220"
    true = np.array([p["true"] for p in report["predictions"]])
    pred = np.array([p["pred"] for p in report["predictions"]])
    confusion = np.array(report["confusion"])
    assert confusion.sum() == len(true) == 24
    np.testing.assert_array_equal(confusion, metrics.sum_confusions([f["confusion"] for f in report["folds"]]))
    assert report["accuracy"] == pytest.approx(metrics.accuracy(true, pred))
    assert report["uf1"] == pytest.approx(metrics.uf1(confusion))
    assert report["uar"] == pytest.approx(metrics.uar(confusion))
    assert report["macro_f1"] == pytest.approx(metrics.macro_f1(true, pred, 3))
    for fold in report["folds"]:
        assert len(fold["history"]) == fold["epochs"] == 1
        state = torch.load(shcnn_run / fold["checkpoint"], map_location="cpu", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    for name in ("confusion.png", "curves.png"):
        assert (shcnn_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reprints_and_replots(shcnn_run):
    for name in ("confusion.png", "curves.png"):
        (shcnn_run / name).unlink()
    result = CliRunner().invoke(train_cli(), ["evaluate", str(shcnn_run)])
    assert result.exit_code == 0, result.output
    assert "UF1" in result.output and "synth/001" in result.output
    assert (shcnn_run / "confusion.png").exists() and (shcnn_run / "curves.png").exists()
    as_json = CliRunner().invoke(train_cli(), ["evaluate", str(shcnn_run), "--json", "--no-plots"])
    assert json.loads(as_json.output)["model"] == "shcnn"


def test_saliency_command_writes_a_png(shcnn_run, tmp_path):
    out = tmp_path / "saliency.png"
    result = CliRunner().invoke(train_cli(), ["saliency", str(shcnn_run), "002_1_0", "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert out.read_bytes()[:4] == b"\x89PNG"
    missing = CliRunner().invoke(train_cli(), ["saliency", str(shcnn_run), "nope", "--out", str(out)])
    assert missing.exit_code != 0 and "not tested" in missing.output


@pytest.mark.slow
def test_shcnn_learns_class_dependent_flow_under_loso(synth_store, shuffled_store, tmp_path):
    learned = run_training(_shcnn_params(synth_store, tmp_path / "learned"))
    print(f"shcnn: LOSO accuracy {learned['accuracy']:.3f}, UF1 {learned['uf1']:.3f}")
    assert learned["accuracy"] >= 0.75 and learned["uf1"] >= 0.7
    shuffled = run_training(_shcnn_params(shuffled_store, tmp_path / "shuffled"))
    print(f"shcnn shuffled: LOSO accuracy {shuffled['accuracy']:.3f}")
    assert shuffled["accuracy"] <= 0.55, "labels shuffled over the clips must not be learnable"


@pytest.mark.slow
@pytest.mark.parametrize("model,args", [("shcnn", SMALL_SHCNN), ("strcn-g", (("n_maps", 8),)),
                                        ("strcn-a", (("n_maps", 8),))])
def test_each_model_trains_from_the_demo_store(full_store, tmp_path, model, args):
    report = run_training(RunParams(model=model, store=str(full_store), labels="samm-3", out=str(tmp_path / model),
                                    epochs=1, batch_size=8, folds=1, device="cpu", progress=False,
                                    model_args=args, in_memory=model == "strcn-a"))
    assert len(report["folds"]) == 1 and report["n_test_clips"] == 3
    assert (tmp_path / model / "checkpoints" / "fold-demo_001.pt").exists()
    assert report["folds"][0]["inputs"]["stages"][0]["shape"][0] == {"shcnn": 3, "strcn-g": 2, "strcn-a": 1}[model]
