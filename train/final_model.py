"""A final recognition model (``mepipe train --final``) applied to clips nobody labelled.

:func:`restore_final_model` rebuilds the network of a final run from its
report and checkpoint, with the statistics its fold fitted on the training
clips (the standardisation), and :meth:`FinalModel.classify` predicts the
class of clips of any store holding what the run reads, by the run's own
clip rule (its last stage's ``predict``). Class probabilities are the
softmax of the clip's mean item logits (one item per clip: its logits);
the class itself is always the rule's.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mepipe.featurestore.errors import UsageError

from .clips import ClipTable
from .fold import FoldInputs, FoldStatistics
from .inputs.base import Standardiser
from .loop import load_checkpoint, predict, resolve_device
from .models import create_model, get_recipe
from .protocols import FINAL
from .recipe import Recipe, RunOptions
from .report import read_report
from .rules import LogitRule
from .targets import CLASS, parse_targets

__all__ = ["FinalModel", "restore_final_model", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so that large logits do not overflow."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class FinalModel:
    """A final run's network, ready to classify clips.

    Attributes
    ----------
    run : Path
    report : dict
        The run's ``report.json``.
    recipe : Recipe
    model : torch.nn.Module
    statistics : FoldStatistics
        What the run fitted on its training clips.
    options : RunOptions
        The run's options, augmentation off (nothing is trained here).
    device : torch.device
    """

    run: Path
    report: dict[str, Any]
    recipe: Recipe
    model: torch.nn.Module
    statistics: FoldStatistics
    options: RunOptions
    device: torch.device

    @property
    def classes(self) -> list[str]:
        return list(self.report["classes"])

    @property
    def reads(self) -> tuple[str, ...]:
        """The store features the network reads."""
        return self.recipe.reads_for(self.options)

    def classify(self, clips: ClipTable, samples: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Class index of every clip of ``samples`` (in order) by the run's rule, and its class probabilities.

        Returns
        -------
        pred : ndarray of int64, shape (n,)
        probabilities : ndarray of float64, shape (n, n_classes), or None
            None when the rule does not decide from item logits.
        """
        samples = list(samples)
        if not samples:
            return np.empty(0, dtype=np.int64), np.empty((0, len(self.classes)))
        stage = self.recipe.stages[-1]
        targets = parse_targets(self.report["labels"])
        inputs = FoldInputs(clips, [], [], samples, [0] * len(samples), self.options, self.device,
                            statistics=self.statistics, targets=targets)
        _, test = stage.items.datasets(inputs, self.model)
        batch = self.report["parameters"]["stages"][-1]["train"]["batch_size"]
        loader = stage.items.loader(test, batch, inputs, train=False)
        rule = stage.predict
        if not isinstance(rule, LogitRule):
            return np.asarray(rule(self.model, loader, test, len(samples), self.device, targets).pred,
                              dtype=np.int64), None
        predicted = predict(self.model, loader, self.device, forward=rule.forward)
        rows = [np.flatnonzero(predicted.clip == c) for c in range(len(samples))]
        empty = [samples[c] for c, r in enumerate(rows) if not r.size]
        if empty:
            raise ValueError(f"clips {', '.join(empty[:5])} have no items to classify")
        pred = rule.decide(predicted, rows, test, targets)
        probabilities = np.stack([softmax(predicted.logits[r].mean(axis=0)) for r in rows])
        return np.asarray(pred, dtype=np.int64), probabilities


def restore_final_model(run: str | os.PathLike, device: str = "cpu") -> FinalModel:
    """The model a final run (``mepipe train --final``) trained, with what it fitted on its clips.

    Raises
    ------
    UsageError
        The run is not a final run, or fitted a statistic that its report
        cannot give back (STRCN-A's mask: rebuild it by training with
        another model).
    """
    run = Path(run)
    report = read_report(run)
    if report["protocol"] != FINAL:
        raise UsageError(f"{run} is a {report['protocol']} run; only a final run (mepipe train --final) keeps one "
                         "model for later use")
    if parse_targets(report["labels"]).kind != CLASS:
        raise UsageError(f"{run} trained {report['labels']} (action units); predict classifies each interval, so give "
                         "it a model trained on a label scheme")
    fold = report["folds"][0]
    inputs = fold.get("inputs", {})
    if "mask_pixels" in inputs:
        raise UsageError(f"{run}: {report['model']} reads a mask fitted on its training clips, which the run does "
                         "not keep; predict with a model without one (e.g. strcn-g, shcnn)")
    statistics = FoldStatistics(
        standardiser=Standardiser.from_dict(inputs["standardiser"]) if "standardiser" in inputs else None)
    recipe = get_recipe(report["model"])
    choices = recipe.resolve_choices(report["parameters"]["run"].get("recipe_options") or ())
    options = RunOptions(augment=False, seed=int(report["parameters"]["run"].get("seed", 0)), choices=choices)
    torch_device = resolve_device(device)
    model = create_model(report["model"], **fold["model_kwargs"])
    load_checkpoint(model, run / fold["checkpoint"], torch_device)
    return FinalModel(run, report, recipe, model.eval(), statistics, options, torch_device)
