"""Does the nag2019 spotter's network learn demo-lv's held-out person, and with which changes?

Trains the spotter's network (the demo-lv runs' narrow widths) on one leave-one-subject-out fold of a
long-video store (its fit and validation people), with the spotter's objective (cross-entropy of each step's
kind plus the L1 distance of its intensity), and after every epoch prints the training loss and the ROC AUC of
the held-out person's per-frame curve (:func:`mepipe.train.spotters.nag2019.video_curve`'s averaging over
windows) for expression frames (Nag's intensity target > 0.3) and for micro-expression frames. The options are
what ``nag_demo_lv_blockers.py`` points to:

- ``--flow direct``: each step's flow is TV-L1 from frame t - k // 2 to t + k - k // 2 (the baseline's k and
  solver, ``nag_demo_lv_training.DirectFlowWindows``) instead of the store's consecutive-frame flow;
  ``--median`` takes each field's median vector away first;
- ``--motion-channels N``: the temporal network's output is a linear map of N channels instead of the paper's
  one-channel sigmoid likelihood (``--model-arg motion_channels=N``);
- ``--optimizer adam --batch 8``: Adam and eight windows a step instead of the recipe's RMSProp and one.

    OMP_NUM_THREADS=1 python benchmarks/nag_demo_lv_heldout.py --flow direct --median --motion-channels 8 \\
        --optimizer adam --batch 8 --weight-decay 0
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from nag_demo_lv_blockers import auc
from nag_demo_lv_training import QUICK_WIDTHS, DirectFlowWindows
from nag_spotter_signal import baseline_flows

from mepipe.train.inputs.base import fit_standardiser
from mepipe.train.inputs.batches import collate
from mepipe.train.loop import denormals_flushed
from mepipe.train.models import create_model
from mepipe.train.spotters import nag2019 as nag
from mepipe.train.spotters.run import SpotParams, plan_spot


def held_out_curve(model, windows: nag.TrainingWindows, video: int) -> np.ndarray:
    """Per-frame intensity of ``windows.ids[video]``: the mean over the windows whose steps end at each frame."""
    numbers = windows.videos.frame_numbers(windows.ids[video])
    total, count = np.zeros(len(numbers)), np.zeros(len(numbers))
    spans = nag.video_windows(numbers, windows.params.window, windows.params.stride)
    saved = windows.windows
    windows.windows = np.array([(video, start, length) for start, length in spans], dtype=np.int64)
    model.eval()
    with torch.no_grad():
        for i, (start, length) in enumerate(spans):
            item = windows[i]
            out = model.sequence(item.x[None], torch.tensor([length])).intensity[0].numpy()
            total[start + 1:start + length + 1] += out[:length]
            count[start + 1:start + length + 1] += 1
    model.train()
    windows.windows = saved
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo-lv.zarr")
    parser.add_argument("--fold", type=int, default=0, help="LOSO fold, from 0 [0].")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--flow", choices=("consecutive", "direct"), default="consecutive")
    parser.add_argument("--median", action="store_true", help="Take each direct field's median vector away.")
    parser.add_argument("--motion-channels", type=int, default=1, help="1: the paper's likelihood [1].")
    parser.add_argument("--optimizer", choices=("rmsprop", "adam"), default="rmsprop")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=nag.NagSpotParams().weight_decay)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model_args = QUICK_WIDTHS + (("motion_channels", args.motion_channels),)
    plan = plan_spot(SpotParams(spotter=nag.NAG2019.name, store=(args.store,), device="cpu", progress=False,
                                params=(("model_args", model_args),)))
    params, fold = plan.spotter_params, plan.folds[args.fold]
    fit, test = tuple(fold.fit) + tuple(fold.validation), tuple(fold.test)
    videos = plan.videos
    videos.hold(plan.spotter.reads, videos.ids)
    everyone = fit + test
    truth = videos.intervals_of(everyone)
    if args.flow == "direct":
        recorded = videos.stage_params("roi_motion")
        flows = {video: baseline_flows(videos, video, recorded) for video in everyone}
        spans = {v: f - np.median(f.reshape(len(f), 2, -1), axis=2)[:, :, None, None] if args.median else f
                 for v, (f, _) in flows.items()}
        windows = DirectFlowWindows(videos, everyone, truth, params, seed=0, spans=spans, k=flows[fit[0]][1])
    else:
        windows = nag.TrainingWindows(videos, everyone, truth, params, seed=0)
    fitted = np.isin(windows.positives[:, 0], range(len(fit)))
    windows.positives = windows.positives[fitted]
    keep = np.isin(windows.negatives[:, 0], range(len(fit)))
    windows.negatives, windows.motion = windows.negatives[keep], windows.motion[keep] / windows.motion[keep].sum()
    windows.draw(0)
    windows.standardiser = fit_standardiser(windows, seed=0)
    model = create_model(nag.RECIPE.name, **nag.model_kwargs(videos, params))
    optimiser = (torch.optim.Adam if args.optimizer == "adam" else torch.optim.RMSprop)(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    objective, generator = nag.SpotObjective(None), torch.Generator().manual_seed(0)
    print(f"fold {fold.fold.name}: fit {', '.join(fit)}; held out {', '.join(test)}; {vars(args)}")
    print("| epoch | windows | training loss | held-out AUC, expression frames | micro-expression frames | s |")
    print("|---|---|---|---|---|---|")
    with denormals_flushed():
        for epoch in range(args.epochs):
            started = time.perf_counter()
            windows.draw(epoch)
            order = np.random.default_rng(epoch).permutation(len(windows))
            losses = []
            for first in range(0, len(order), args.batch):
                optimiser.zero_grad(set_to_none=True)
                loss = objective(model, collate([windows[int(i)] for i in order[first:first + args.batch]]),
                                 generator)[0]
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
            scores = []
            for video in test:
                v = everyone.index(video)
                curve = held_out_curve(model, windows, v)
                intensity, kind = windows.targets[v]
                ok = ~np.isnan(curve)
                inside = intensity[ok] > 0.3
                micro = inside & (kind[ok] == nag.STEP_KINDS.index("micro"))
                scores.append((auc(inside, curve[ok]), auc(micro, curve[ok])))
            print(f"| {epoch + 1} | {len(windows)} | {np.mean(losses):.3f} | "
                  f"{', '.join(f'{s[0]:.3f}' for s in scores)} | {', '.join(f'{s[1]:.3f}' for s in scores)} | "
                  f"{time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
