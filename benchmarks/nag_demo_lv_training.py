"""What the nag2019 spotter's network does while it trains on demo-lv: does it learn, and why do epochs slow down?

Trains the spotter's network (its narrow quick widths unless ``--paper-widths``) on the training windows of the
first leave-one-subject-out fold of a long-video store, one window per step, with the spotter's objective and
RMSProp, and every ``--every`` steps prints:

- the mean training loss of those steps (a network that learnt nothing sits at the loss of the best constant
  output, about 1.25 on demo-lv);
- ``spread``: the standard deviation of the predicted intensity along one fixed window that climbs into an
  expression (0.03 .. 0.41 in its target): near 0, the network gives every step the same output;
- ``subnormal``: weights below float32's smallest normal number (1.18e-38) but not 0, which weight decay leaves of
  weights that get no gradient from the data;
- the seconds those steps took.

At the end, the seconds per training step of the network as trained, computed with subnormals kept and with them
flushed to zero (what :func:`mepipe.train.loop.denormals_flushed` does in every training loop).

``--flow direct`` replaces each step's consecutive-frame flow by TV-L1 from frame t - k // 2 to t + k - k // 2
(the baseline's k and solver as the store records them for ``roi_motion``), centred on the frame the step is
scored on, on grey versions of the stored crops: the spotter as it would be if it read the baseline's flow.

    OMP_NUM_THREADS=1 python benchmarks/nag_demo_lv_training.py --store data/stores/demo-lv.zarr --steps 600
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from nag_spotter_signal import baseline_flows

from mepipe.featurestore.features import FRAMES_RGB
from mepipe.train.inputs.base import fit_standardiser, image
from mepipe.train.inputs.batches import collate
from mepipe.train.models import create_model
from mepipe.train.spotters import nag2019 as nag
from mepipe.train.spotters.run import SpotParams, plan_spot

QUICK_WIDTHS = (("widths", [8, 16, 16]), ("fc6", 16), ("feature_channels", 8), ("fused", 16), ("fc", 32),
                ("hidden", 32))
"""The narrow network every demo-lv run of the spotter used (``--model-arg``)."""

SUBNORMAL_LIMIT = 1.18e-38
"""float32's smallest normal number."""


class DirectFlowWindows(nag.TrainingWindows):
    """The spotter's training windows with each step's flow replaced by the centred flow from t to t + k."""

    def __init__(self, *args, spans: dict[str, np.ndarray], k: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.spans, self.k = spans, k

    def raw(self, i: int) -> np.ndarray:
        v, start, length = (int(x) for x in self.windows[i])
        video = self.ids[v]
        frames = image(self.videos.read(FRAMES_RGB.name, video, start, start + length + 1))
        span = self.spans[video]
        flow = np.zeros((2, length, *span.shape[2:]), np.float32)
        for step in range(length):
            first = start + 1 + step - self.k // 2
            if 0 <= first < len(span):
                flow[:, step] = span[first]
        return np.concatenate([frames[:, :-1], frames[:, 1:], flow], axis=0)


def subnormal_weights(model: torch.nn.Module) -> int:
    return sum(int(((p.abs() < SUBNORMAL_LIMIT) & (p != 0)).sum()) for p in model.parameters())


def step_seconds(model, objective, batch, generator, flush: bool, repeats: int = 10) -> float:
    """CPU seconds of one forward and backward pass, with subnormals flushed or kept."""
    torch.set_flush_denormal(flush)
    started = time.process_time()
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        objective(model, batch, generator)[0].backward()
    torch.set_flush_denormal(False)
    return (time.process_time() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="data/stores/demo-lv.zarr")
    parser.add_argument("--steps", type=int, default=600, help="Training windows, one per step [600].")
    parser.add_argument("--every", type=int, default=50, help="Steps per printed line [50].")
    parser.add_argument("--lr", type=float, default=1e-3, help="RMSProp learning rate [1e-3, the demo-lv runs'].")
    parser.add_argument("--weight-decay", type=float, default=nag.NagSpotParams().weight_decay,
                        help="RMSProp weight decay [the spotter's, 0.005].")
    parser.add_argument("--flow", choices=("consecutive", "direct"), default="consecutive",
                        help="The steps' flow: the store's consecutive-frame flow, or t -> t + k (see above).")
    parser.add_argument("--flush", action="store_true", help="Flush subnormals while training (the loop does).")
    parser.add_argument("--paper-widths", action="store_true", help="The paper's layer widths (slow on a CPU).")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_flush_denormal(args.flush)
    widths = () if args.paper_widths else QUICK_WIDTHS
    plan = plan_spot(SpotParams(spotter=nag.NAG2019.name, store=(args.store,), device="cpu", progress=False,
                                params=(("lr", args.lr), ("weight_decay", args.weight_decay),
                                        ("model_args", widths))))
    params, fit = plan.spotter_params, tuple(plan.folds[0].fit)
    videos = plan.videos.subset(fit)
    videos.hold(plan.spotter.reads, fit)
    truth = videos.intervals_of(fit)
    if args.flow == "direct":
        recorded = videos.stage_params("roi_motion")
        flows = {video: baseline_flows(videos, video, recorded) for video in fit}
        spans, k = {video: flow for video, (flow, _) in flows.items()}, flows[fit[0]][1]
        train = DirectFlowWindows(videos, fit, truth, params, seed=0, spans=spans, k=k)
    else:
        train = nag.TrainingWindows(videos, fit, truth, params, seed=0)
    train.standardiser = fit_standardiser(train, seed=0)
    train.draw(0)
    model = create_model(nag.RECIPE.name, **nag.model_kwargs(videos, params))
    optimiser = torch.optim.RMSprop(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    objective, generator = nag.SpotObjective(None), torch.Generator().manual_seed(0)
    climbing = next(i for i in range(len(train.positives)) if 0 < float(train[i].intensity[0]) < 0.1)
    probe = collate([train[climbing]])
    order = np.random.default_rng(0).permutation(len(train))
    print(f"fold {plan.folds[0].fold.name}: {len(train)} windows, flow {args.flow}, lr {args.lr}, "
          f"weight decay {args.weight_decay}, flushed {args.flush}")
    print("| steps | loss | spread | subnormal weights | seconds |")
    print("|---|---|---|---|---|")
    losses, started = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        optimiser.zero_grad(set_to_none=True)
        loss = objective(model, collate([train[int(order[(step - 1) % len(order)])]]), generator)[0]
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if step % args.every == 0:
            with torch.no_grad():
                spread = float(model.sequence(probe.x, probe.length).intensity.std())
            print(f"| {step} | {np.mean(losses[-args.every:]):.3f} | {spread:.2g} | {subnormal_weights(model)} | "
                  f"{time.perf_counter() - started:.0f} |", flush=True)
            started = time.perf_counter()
    kept = step_seconds(model, objective, probe, generator, flush=False)
    flushed = step_seconds(model, objective, probe, generator, flush=True)
    print(f"\nseconds per step as trained: {kept:.3f} with subnormals, {flushed:.3f} flushed ({kept / flushed:.2f}x)")


if __name__ == "__main__":
    main()
