"""Training and testing a fold of Nag et al. 2019: class and intensity from 14-step windows, spotting AUC.

Training items are windows of 14 consecutive frame pairs with their flow
(:class:`~mepipe.train.sequence_data.NagWindowDataset`); the loss is the
cross-entropy of every step against the clip's class plus the L1 distance
of the predicted intensity to the store's ``intensity`` (Nag §2.2). Test
clips are run whole: the clip's class is the last step's, and the per-frame
intensity gives the expression states of the paper's Fig. 2 and the
spotting measure, the ROC AUC of the predicted intensity against the
sheet's onset..offset span over every held-out frame.

References
----------
.. [1] S. Nag, A. K. Bhunia, A. Konwer and P. P. Roy, "Facial Micro-Expression
   Spotting and Recognition using Time Contrasted Feature with Visual Memory,"
   ICASSP 2019, pp. 2022–2026. arXiv:1902.03514
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import metrics
from .augment import AffineAugmentParams, affine_augment
from .data import fit_standardiser
from .fold_run import FoldContext, FoldResult, clip_rows, fold_report, history_records
from .loop import make_loader, save_checkpoint, seed_everything, to_device, train_model
from .models.nag2019 import SEQUENCE_LENGTH, StateParams, intensity_states, nag_loss
from .report import checkpoint_path
from .sequence_data import NagWindowDataset, pad_collate

__all__ = ["FLOW_CHANNELS", "run_nag_fold", "spotting_auc"]

FLOW_CHANNELS = (6, 7)
"""Channels of a Nag step that hold the flow (u, v): augmented as vectors."""


def run_nag_fold(ctx: FoldContext) -> FoldResult:
    """Train Nag's network on 14-step windows of the training clips, test on whole test clips."""
    params = ctx.params
    seed_everything(params.seed)
    io = {"in_memory": params.in_memory, "shared": ctx.shared}
    train_ids, test_ids = list(ctx.fold.train), list(ctx.fold.test)
    window = SEQUENCE_LENGTH
    train = NagWindowDataset(ctx.store, train_ids, ctx.labels(train_ids), window=window, **io)
    test = NagWindowDataset(ctx.store, test_ids, ctx.labels(test_ids), window=None, **io)
    standardiser = fit_standardiser(train, seed=params.seed)
    train.with_standardiser(standardiser)
    test.with_standardiser(standardiser)
    in_chans = int(train[0]["x"].shape[1])
    model = ctx.build_model(in_chans)
    loader = make_loader(train, ctx.train_params.batch_size, shuffle=True, seed=params.seed,
                         workers=ctx.train_params.workers, device=ctx.device, collate_fn=pad_collate)
    history = train_model(model, loader, ctx.train_params, ctx.device, objective=_objective(params.augment),
                          desc=ctx.desc)
    path = save_checkpoint(model, checkpoint_path(ctx.out, ctx.fold.name))
    logits, intensity = predict_clips(model, test, ctx.device)
    y_pred = np.array([int(row.argmax()) for row in logits], dtype=np.int64)
    y_true = test.labels
    spans = [test.targets(c)[1] for c in range(len(test))]
    rows = clip_rows(ctx, test_ids, y_true, y_pred)
    for row, curve, span in zip(rows, intensity, spans):
        row.update(intensity=[float(v) for v in curve], span=[int(v) for v in span],
                   states=intensity_states(curve, StateParams()).tolist())
    inputs = {"standardiser": standardiser.to_dict(), "in_chans": in_chans, "shape": list(train[0]["x"].shape),
              "window": window, "train_windows": len(train)}
    report = fold_report(ctx, y_true, y_pred, n_train_items=len(train), history=history_records(history),
                         checkpoint=path, inputs=inputs, model=model, spotting_auc=spotting_auc(intensity, spans))
    return FoldResult(report, rows)


def _objective(augment: bool):
    def step(model: nn.Module, batch: dict, generator: torch.Generator):
        x = batch["x"]
        if augment:
            x = affine_augment(x, generator, AffineAugmentParams(), vector_channels=FLOW_CHANNELS)
        output = model.sequence(x, batch["length"])
        loss, _ = nag_loss(output, batch["y"], batch["intensity"], lengths=batch["length"])
        last = batch["length"].to(output.step_logits.device) - 1
        logits = output.step_logits[torch.arange(len(last), device=last.device), last]
        return loss, logits, batch["y"]

    return step


@torch.no_grad()
def predict_clips(model: nn.Module, dataset: NagWindowDataset, device: torch.device
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Class logits (C,) from the last step and the per-step intensity (L,) of each whole-clip item."""
    model.to(device).eval()
    logits, intensity = [], []
    amp = device.type == "cuda"
    for i in range(len(dataset)):
        batch = to_device(pad_collate([dataset[i]]), device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            output = model.sequence(batch["x"], batch["length"])
        logits.append(output.step_logits[0, -1].float().cpu().numpy())
        intensity.append(output.intensity[0].float().cpu().numpy())
    return logits, intensity


def spotting_auc(intensity: list[np.ndarray], spans: list[np.ndarray]) -> float | None:
    """ROC AUC of predicted per-frame intensity against the onset..offset span, over all given frames.

    None when the frames are all inside or all outside a span (the AUC is undefined).
    """
    scores = np.concatenate([np.asarray(v, dtype=np.float64) for v in intensity]) if intensity else np.empty(0)
    truth = np.concatenate([np.asarray(v) > 0.5 for v in spans]) if spans else np.empty(0, dtype=bool)
    if truth.size == 0 or truth.all() or not truth.any():
        return None
    return metrics.roc_auc(scores, truth)
