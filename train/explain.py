"""SHCNN saliency maps of a trained run (Miao et al. 2019, eq. 9-12), drawn over the coded flow.

The map is the input gradient of the shrunk softmax ``V = softmax(o / M)``,
``M = max_j |o_j|``, for the class the network predicts for the frame
(:func:`mepipe.train.models.saliency`). It is computed with the model of the
fold that held the clip out, on the input exactly as that fold saw it
(colour coding, then the fold's standardisation).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mepipe.featurestore.views import apex_field, code_flow

from .clips import ClipTable
from .inputs.base import Standardiser
from .inputs.flow_frames import FlowFrames
from .models import get_recipe, saliency
from .recipe import RunOptions
from .report import pyplot, read_report, save_figure
from .run import load_fold_model


@dataclass(frozen=True)
class SaliencyResult:
    """One frame's saliency map.

    Attributes
    ----------
    clip, fold : str
    frame : int
        Flow field index (see :func:`mepipe.featurestore.views.field_frames`).
    coded : ndarray, shape (H, W, 3), uint8
        The colour-coded flow field.
    gradient : ndarray, shape (3, H, W), float32
        dV_j / dI for the predicted class j.
    predicted, true : str
        Class of this frame and the clip's true class.
    shrinkage : float
        M = max_j |o_j| of the frame's logits.
    """

    clip: str
    fold: str
    frame: int
    coded: np.ndarray
    gradient: np.ndarray
    predicted: str
    true: str
    shrinkage: float


def saliency_map(run: str | os.PathLike, clip: str, *, frame: int | None = None,
                 device: str = "cpu") -> SaliencyResult:
    """Saliency map of one flow frame of a clip tested in a finished SHCNN run.

    Parameters
    ----------
    run : path
        Run folder written by ``mepipe train``.
    clip : str
        Sample id; it must be in a test fold of the run.
    frame : int, optional
        Flow field index; default: the field ending at the apex frame.
    device : str
    """
    model, report = load_fold_model_for(run, clip, device)
    fold_name = next(p["fold"] for p in report["predictions"] if p["sample"] == clip)
    entry = next(f for f in report["folds"] if f["name"] == fold_name)
    recipe = get_recipe(report["model"])
    items = recipe.stages[0].items
    feature = items.feature.name
    coding = items.coding_of(RunOptions(choices=recipe.resolve_choices(report["parameters"]["run"].get(
        "recipe_options") or ())))
    clips = ClipTable.reopen(report["store"]["stores"])
    fields = clips.read(feature, clip).astype(np.float32)
    apex = [clips.value(clip, "apex"), clips.value(clip, "apex_est")]
    index = apex_field(clips.frame_numbers(clip), apex, len(fields)) if frame is None else frame
    if not 0 <= index < len(fields):
        raise IndexError(f"clip {clip!r} has flow fields 0..{len(fields) - 1}, not {index}")
    coded = code_flow(fields[index], coding=coding)
    x = Standardiser.from_dict(entry["inputs"]["standardiser"])(coded)
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(device)
    with torch.no_grad():
        logits = model(x)[0].float().cpu()
    gradient = saliency(model, x, target=None)[0].float().cpu().numpy()
    classes = report["classes"]
    true = next(p["true"] for p in report["predictions"] if p["sample"] == clip)
    return SaliencyResult(clip, fold_name, int(index), np.rint(coded.transpose(1, 2, 0) * 255).astype(np.uint8),
                          gradient, classes[int(logits.argmax())], classes[int(true)],
                          float(logits.abs().max()))


def load_fold_model_for(run: str | os.PathLike, clip: str, device: str = "cpu"):
    """The model of the fold that tested ``clip``, with the run's report; the run must classify coded flow."""
    report = read_report(run)
    if not isinstance(get_recipe(report["model"]).stages[0].items, FlowFrames):
        raise ValueError(f"{run}: saliency maps are defined for networks on coded flow frames (SHCNN); "
                         f"this run trained {report['model']!r}")
    tested = {p["sample"]: p["fold"] for p in report["predictions"]}
    if clip not in tested:
        raise KeyError(f"{run}: clip {clip!r} was not tested in this run "
                       f"({len(tested)} clips were, e.g. {', '.join(sorted(tested)[:3])})")
    return load_fold_model(run, tested[clip], device)


def draw_saliency(result: SaliencyResult, out: str | os.PathLike) -> Path:
    """Three panels: the coded flow, |dV/dI| over it, and the saliency pixels.

    Saliency pixels (eq. 11) are those whose gradient, summed over the three
    colour channels, is >= 0; pixels whose gradient is below 5 % of the
    largest (flat areas, where it is ~0) are left out so the panel shows
    where the network looks. Other pixels are dimmed.
    """
    plt = pyplot()
    magnitude = np.abs(result.gradient).max(axis=0)
    pixel_gradient = result.gradient.sum(axis=0)
    salient = (pixel_gradient >= 0) & (magnitude > 0.05 * magnitude.max())
    dimmed = (result.coded * np.where(salient[..., None], 1.0, 0.25)).astype(np.uint8)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    axes[0].imshow(result.coded)
    axes[0].set_title(f"coded flow, field {result.frame}", fontsize=9)
    axes[1].imshow(result.coded)
    heat = axes[1].imshow(magnitude, cmap="inferno", alpha=0.65)
    axes[1].set_title(f"|dV/dI|, M = {result.shrinkage:.3g}", fontsize=9)
    fig.colorbar(heat, ax=axes[1], fraction=0.046)
    axes[2].imshow(dimmed)
    axes[2].set_title("saliency pixels (dV/dI >= 0)", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"{result.clip} (fold {result.fold}): true {result.true}, frame predicted {result.predicted}",
                 fontsize=10)
    return save_figure(fig, out, dpi=120)
