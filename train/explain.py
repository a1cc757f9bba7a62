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

from mepipe.featurestore.features import CROPS
from mepipe.featurestore.views import apex_field, code_flow, field_frames

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
    frames : (int, int)
        Source frame numbers the field joins (from, to).
    face : ndarray, shape (H, W), uint8, or None
        The aligned grey face of the field's last frame at the field's size,
        which the map is drawn over (None when the store has no crops).
    """

    clip: str
    fold: str
    frame: int
    coded: np.ndarray
    gradient: np.ndarray
    predicted: str
    true: str
    shrinkage: float
    frames: tuple[int, int] = (0, 0)
    face: np.ndarray | None = None


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
    start, end = field_frames(feature, int(index))
    numbers = clips.frame_numbers(clip)
    return SaliencyResult(clip, fold_name, int(index), np.rint(coded.transpose(1, 2, 0) * 255).astype(np.uint8),
                          gradient, classes[int(logits.argmax())], classes[int(true)],
                          float(logits.abs().max()), (int(numbers[start]), int(numbers[end])),
                          _face(clips, clip, end, coded.shape[1:]))


def _face(clips: ClipTable, clip: str, frame: int, size: tuple[int, int]) -> np.ndarray | None:
    """The clip's aligned crop at ``frame``, grey, resized to the field's (H, W); None without crops."""
    if not clips.has(CROPS.name, clip):
        return None
    import cv2

    crop = clips.read(CROPS.name, clip)[frame]
    grey = crop[..., 0] if crop.shape[-1] == 1 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_AREA)


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
    """Write :func:`saliency_figure` to ``out`` (PNG)."""
    return save_figure(saliency_figure(result), out, dpi=120)


def saliency_figure(result: SaliencyResult):
    """Three panels: the coded flow, |dV/dI| over the face, and the saliency pixels over the face.

    Saliency pixels (eq. 11) are those whose gradient, summed over the three
    colour channels, is >= 0; pixels whose gradient is below 5 % of the
    largest (flat areas, where it is ~0) are left out so the panel shows
    where the network looks. The face is the aligned crop of the field's
    last frame (the coded flow itself where the store has no crops); frames
    are named by their source numbers.
    """
    plt = pyplot()
    magnitude = np.abs(result.gradient).max(axis=0)
    pixel_gradient = result.gradient.sum(axis=0)
    salient = (pixel_gradient >= 0) & (magnitude > 0.05 * magnitude.max())
    face = result.face if result.face is not None else result.coded.mean(axis=-1)
    under = "the face" if result.face is not None else "the coded flow"
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    start, end = result.frames
    axes[0].imshow(result.coded)
    axes[0].set_title(f"coded flow, frame {start} \u2192 {end}\n(hue = direction, brightness = magnitude)", fontsize=9)
    axes[1].imshow(face, cmap="gray", vmin=0, vmax=255)
    heat = axes[1].imshow(np.ma.masked_less(magnitude, 0.05 * magnitude.max()), cmap="inferno", alpha=0.6)
    axes[1].set_title(f"|dV/dI| over {under} (frame {end}), M = {result.shrinkage:.3g}", fontsize=9)
    fig.colorbar(heat, ax=axes[1], fraction=0.046, label="|dV/dI| per unit of standardised input")
    axes[2].imshow(face, cmap="gray", vmin=0, vmax=255)
    axes[2].imshow(np.ma.masked_where(~salient, salient), cmap="autumn", alpha=0.7, vmin=0, vmax=1)
    axes[2].set_title(f"saliency pixels (dV/dI >= 0, yellow) over {under}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"{result.clip} (fold {result.fold}): true {result.true}, frame predicted {result.predicted}",
                 fontsize=10)
    return fig
