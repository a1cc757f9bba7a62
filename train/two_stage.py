"""Two-stage training of a fold: a per-frame CNN, then a recurrent head over its frozen features.

Kim et al. 2017 and Choi & Song 2020 train the same way (Kim §2.2–2.3,
Choi §III-C):

1. **Stage 1** trains the CNN on single frames: Kim's five expression-state
   frames with the objective E1…E5 (:mod:`mepipe.train.models.kim2017_loss`),
   Choi's LFM/CLFM maps with cross-entropy against the clip's label.
2. **Stage 2** freezes the CNN, extracts its per-frame features (Kim: F5 of
   every frame; Choi: FC1 of the middle 24 maps) and trains the LSTM head on
   these sequences.

Both stages' weights are saved (``checkpoints/fold-NAME-stage1.pt`` and
``fold-NAME.pt``), and the CNN alone is also evaluated on the test clips
(Kim: Fc on the apex frame, the measure of Kim's Table 6; Choi: mean logits
of the clip's maps) so that stage 1 can be judged on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import AffineAugmentParams, affine_augment
from .data import fit_standardiser
from .fold_run import FoldContext, FoldResult, clip_rows, figures, fold_report, history_records
from .loop import TrainParams, make_loader, predict, save_checkpoint, seed_everything, train_model
from .models import choi2020
from .models.kim2017_loss import KimLossParams, kim_objective
from .models.registry import OptimDefaults
from .report import checkpoint_path
from .sequence_data import (ClipSequenceDataset, FeatureSequenceDataset, MapDataset, StateFrameDataset,
                            WholeClipSampler, pad_collate)

__all__ = ["RECIPES", "TwoStageRecipe", "run_two_stage_fold", "stage1_checkpoint_path"]


@dataclass(frozen=True)
class TwoStageRecipe:
    """How one two-stage model is trained.

    Attributes
    ----------
    frames : {"states", "maps"}
        Stage-1 items: Kim's expression-state frames or Choi's maps.
    frame_feature : str
        Store feature of the stage-1 items.
    sequence_feature : str
        Store feature of the stage-2 sequences.
    temporal : OptimDefaults
        Optimiser of the recurrent head.
    temporal_epochs : int
        Stage-2 epochs when ``--temporal-epochs`` is not given.
    temporal_copies : int
        Augmented copies of each training sequence whose features stage 2
        also trains on (Kim trains the LSTM on augmented sequences); 0 for none.
    """

    frames: str
    frame_feature: str
    sequence_feature: str
    temporal: OptimDefaults
    temporal_epochs: int
    temporal_copies: int = 0


_KIM_TEMPORAL = OptimDefaults(optimizer="adam", lr=1e-3, weight_decay=0.0, momentum=None, batch_size=16)
"""Kim trains the LSTM with Keras and gives only the shared initial lr (0.01 on CASME II) and 50 epochs;
Adam at 1e-3 is Keras' default optimiser setting and converges reliably on short sequences."""

RECIPES = {
    "kim2017": TwoStageRecipe("states", "state_frames", "frames64", _KIM_TEMPORAL, 50, temporal_copies=4),
    "lfm": TwoStageRecipe("maps", "lfm68", "lfm68", choi2020.LSTM_OPTIM, choi2020.LSTM_EPOCHS),
    "clfm": TwoStageRecipe("maps", "lfm21", "lfm21", choi2020.LSTM_OPTIM, choi2020.LSTM_EPOCHS),
}
"""The two-stage models and their recipes."""


def stage1_checkpoint_path(run: str | Path, fold: str) -> Path:
    """Where the stage-1 (CNN) checkpoint of a fold lives."""
    path = checkpoint_path(run, fold)
    return path.with_name(path.stem + "-stage1" + path.suffix)


def run_two_stage_fold(ctx: FoldContext) -> FoldResult:
    """Train stage 1 and stage 2 on the fold's training clips, test on its test clips."""
    params, recipe = ctx.params, RECIPES[ctx.params.model]
    seed_everything(params.seed)
    io = {"in_memory": params.in_memory, "shared": ctx.shared}
    train_ids, test_ids = list(ctx.fold.train), list(ctx.fold.test)
    train_y, test_y = ctx.labels(train_ids), ctx.labels(test_ids)
    if recipe.frames == "states":
        frames_train = StateFrameDataset(ctx.store, train_ids, train_y, **io)
        frames_test = StateFrameDataset(ctx.store, test_ids, test_y, **io)
    else:
        frames_train = MapDataset(ctx.store, recipe.frame_feature, train_ids, train_y, **io)
        frames_test = MapDataset(ctx.store, recipe.frame_feature, test_ids, test_y, **io)
    standardiser = fit_standardiser(frames_train, seed=params.seed)
    frames_train.with_standardiser(standardiser)
    frames_test.with_standardiser(standardiser)
    in_chans = int(frames_train[0]["x"].shape[0])
    model = ctx.build_model(in_chans)

    # Stage 1: the CNN on single frames.
    stage1_params = ctx.train_params
    if recipe.frames == "states":  # batch size counts clips, each with its five state frames
        loader = make_loader(frames_train, stage1_params.batch_size * frames_train.n_states,
                             sampler=WholeClipSampler(frames_train, params.seed), workers=stage1_params.workers,
                             device=ctx.device)
    else:
        loader = make_loader(frames_train, stage1_params.batch_size, shuffle=True, seed=params.seed,
                             workers=stage1_params.workers, device=ctx.device)
    history1 = train_model(model, loader, stage1_params, ctx.device, objective=_stage1_objective(params, recipe),
                           parameters=list(model.cnn.parameters()), desc=f"{ctx.desc} stage 1")
    stage1_path = save_checkpoint(model, stage1_checkpoint_path(ctx.out, ctx.fold.name))
    stage1_pred = _stage1_clip_predictions(model, frames_test, recipe, stage1_params, ctx.device)
    stage1 = {**figures(frames_test.labels, stage1_pred, ctx.n_classes), "epochs": len(history1),
              "checkpoint": str(stage1_path.relative_to(ctx.out)),
              "measured_on": "Fc on the apex frame" if recipe.frames == "states" else "mean logits of the maps",
              "seconds_per_epoch": float(np.mean([h.seconds for h in history1])) if history1 else 0.0}

    # Stage 2: the recurrent head over frozen per-frame features.
    seq_train = ClipSequenceDataset(ctx.store, recipe.sequence_feature, train_ids, train_y,
                                    standardiser=standardiser, **io)
    seq_test = ClipSequenceDataset(ctx.store, recipe.sequence_feature, test_ids, test_y,
                                   standardiser=standardiser, **io)
    copies = recipe.temporal_copies if params.augment else 0
    features_train = encode_sequences(model, seq_train, ctx.device, copies=copies, seed=params.seed)
    features_test = encode_sequences(model, seq_test, ctx.device)
    frames = torch.cat(features_train.features)
    model.temporal.set_input_scale(frames.mean(0), frames.std(0))
    stage2_params = temporal_train_params(params, recipe)
    loader2 = make_loader(features_train, stage2_params.batch_size, shuffle=True, seed=params.seed,
                          device=ctx.device, collate_fn=pad_collate)
    history2 = train_model(model, loader2, stage2_params, ctx.device, objective=_temporal_objective,
                           parameters=list(model.temporal.parameters()), desc=f"{ctx.desc} stage 2")
    path = save_checkpoint(model, checkpoint_path(ctx.out, ctx.fold.name))
    test_loader = make_loader(features_test, stage2_params.batch_size, device=ctx.device, collate_fn=pad_collate)
    predicted = predict(model, test_loader, ctx.device, forward=_temporal_forward)
    y_pred = np.empty(len(test_ids), dtype=np.int64)
    y_pred[predicted["clip"]] = predicted["logits"].argmax(axis=1)
    y_true = seq_test.labels
    history = history_records(history1, stage=1) + history_records(history2, stage=2, first_epoch=len(history1) + 1)
    inputs = {"standardiser": standardiser.to_dict(), "in_chans": in_chans,
              "shape": list(seq_train[0]["x"].shape), "frame_shape": list(frames_train[0]["x"].shape),
              "stage2_sequences": len(features_train)}
    report = fold_report(ctx, y_true, y_pred, n_train_items=len(frames_train), history=history, checkpoint=path,
                         inputs=inputs, model=model, stage1=stage1,
                         stage_seconds_per_epoch={"1": stage1["seconds_per_epoch"],
                                                  "2": float(np.mean([h.seconds for h in history2]))})
    rows = clip_rows(ctx, list(test_ids), y_true, y_pred)
    for row, first in zip(rows, stage1_pred):
        row["stage1_pred"] = int(first)
    return FoldResult(report, rows)


def temporal_train_params(params, recipe: TwoStageRecipe) -> TrainParams:
    """Stage-2 settings: the recipe's optimiser, ``--temporal-epochs`` or the recipe's epochs."""
    optim = recipe.temporal
    return TrainParams(epochs=params.temporal_epochs or recipe.temporal_epochs, batch_size=optim.batch_size,
                       lr=optim.lr, optimizer=optim.optimizer, weight_decay=optim.weight_decay,
                       momentum=optim.momentum or 0.0, lr_decay=optim.lr_decay, seed=params.seed,
                       progress=params.progress)


def _stage1_objective(params, recipe: TwoStageRecipe) -> Callable:
    augment = params.augment and recipe.frames == "states"
    if recipe.frames == "states":
        loss_params = KimLossParams(terms=tuple(params.terms)) if params.terms else KimLossParams()

        def kim_step(model: nn.Module, batch: dict, generator: torch.Generator):
            x = affine_augment(batch["x"], generator, AffineAugmentParams()) if augment else batch["x"]
            output = model.cnn(x)
            loss, _ = kim_objective(output, batch["y"], batch["state"], loss_params)
            return loss, output.class_logits, batch["y"]

        return kim_step

    def map_step(model: nn.Module, batch: dict, generator: torch.Generator):
        logits = model.frame_logits(batch["x"])
        return F.cross_entropy(logits.float(), batch["y"]), logits, batch["y"]

    return map_step


def _temporal_objective(model: nn.Module, batch: dict, generator: torch.Generator):
    logits = _temporal_forward(model, batch)
    return F.cross_entropy(logits.float(), batch["y"]), logits, batch["y"]


def _temporal_forward(model: nn.Module, batch: dict) -> torch.Tensor:
    return model.temporal(batch["x"], batch["length"])


@torch.no_grad()
def encode_sequences(model: nn.Module, dataset: ClipSequenceDataset, device: torch.device, *, copies: int = 0,
                     seed: int = 0, chunk: int = 256) -> FeatureSequenceDataset:
    """Per-frame features of every sequence by the (frozen) stage-1 network, plus augmented copies.

    Parameters
    ----------
    model : nn.Module
        Has ``encode(x (N, C, H, W)) -> (N, D)``; run in eval mode.
    dataset : ClipSequenceDataset
    copies : int
        Extra copies of each sequence, each under one random
        :func:`~mepipe.train.augment.affine_augment` draw (Kim §3.1).
    chunk : int
        Frames encoded per forward pass.
    """
    was_training = model.training
    model.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    features, labels, clips = [], [], []
    try:
        for clip in range(len(dataset)):
            x = dataset[clip]["x"].to(device)
            for copy in range(copies + 1):
                frames = x if copy == 0 else affine_augment(x[None], generator, AffineAugmentParams())[0]
                encoded = torch.cat([model.encode(frames[i:i + chunk]) for i in range(0, len(frames), chunk)])
                features.append(encoded.float().cpu())
                labels.append(int(dataset.labels[clip]))
                clips.append(clip)
    finally:
        model.train(was_training)
    return FeatureSequenceDataset(features, labels, clips)


@torch.no_grad()
def _stage1_clip_predictions(model: nn.Module, frames: StateFrameDataset | MapDataset, recipe: TwoStageRecipe,
                             train_params: TrainParams, device: torch.device) -> np.ndarray:
    """The CNN's own clip classes: Fc on the apex state frame (Kim Table 6), or the maps' mean logits (Choi)."""
    loader = make_loader(frames, train_params.batch_size, device=device)
    predicted = predict(model, loader, device, forward=lambda m, b: m.frame_logits(b["x"]))
    logits, clip, frame = predicted["logits"], predicted["clip"], predicted["frame"]
    out = np.empty(len(frames.samples), dtype=np.int64)
    for c in range(len(frames.samples)):
        rows = np.flatnonzero(clip == c)
        if recipe.frames == "states":
            apex = rows[frame[rows] == 2]
            out[c] = int(logits[apex[0] if apex.size else rows[len(rows) // 2]].argmax())
        else:
            out[c] = int(logits[rows].mean(axis=0).argmax())
    return out
