"""The training loop: seeds, device, optimiser, mixed precision, checkpoints, prediction.

The loop knows nothing of stores, protocols or models: it trains one model
with one objective on one loader and predicts another
(:mod:`mepipe.train.fold` drives a fold's stages).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mepipe.featurestore.cachekey import NOT_IN_KEY
from mepipe.featurestore.errors import ConfigError, MepipeError
from mepipe.featurestore.progress import progress_bar

from .inputs.batches import Item, collate
from .targets import correct_decisions


class TrainingDiverged(MepipeError, FloatingPointError):
    """The training loss became NaN or infinite: the settings (usually the learning rate) do not suit the data.

    An expected failure of a run, not a bug: the CLI prints its sentence and
    exits with status 1, and ``mepipe reproduce`` reports it in the row.
    """

    exit_code = 1


log = logging.getLogger(__name__)

Objective = Callable[[nn.Module, Item, torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""``(model, batch on the device, generator) -> (loss, logits, y)``: one training step's loss and
the logits/labels its accuracy is counted on (:mod:`mepipe.train.objectives`)."""

EpochHook = Callable[[int], None]
"""Called with the 0-based epoch number before that epoch's first batch (per-epoch draws, statistics of the
training set an objective holds constant during the epoch)."""


@dataclass(frozen=True)
class TrainParams:
    """How one stage of a fold is trained (the recipe's settings, possibly overridden).

    Attributes
    ----------
    epochs : int
    batch_size : int
    lr : float
        Initial learning rate.
    optimizer : {"adam", "sgd", "rmsprop"}
    weight_decay : float
        L2 coefficient passed to the optimiser (its gradient is ``weight_decay * w``).
    momentum : float
        SGD / RMSProp momentum.
    lr_decay : float
        Learning rate multiplied by this after each epoch (1 = constant).
    patience : int or None
        Early stopping: stop after this many epochs without a lower training
        loss. None (default, as in the papers) trains every epoch. The test
        fold is never looked at.
    seed : int
    workers : int
        DataLoader worker processes (0 reads in the training process).
    progress : bool
        Show a tqdm bar per fold.

    ``workers`` and ``progress`` say how the stage runs, not what it computes
    (tagged :data:`~mepipe.featurestore.cachekey.NOT_IN_KEY`).
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.0
    lr_decay: float = 1.0
    patience: int | None = None
    seed: int = 0
    workers: int = field(default=0, metadata=NOT_IN_KEY)
    progress: bool = field(default=True, metadata=NOT_IN_KEY)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.optimizer not in _OPTIMISERS:
            raise ValueError(f"optimizer must be one of {sorted(_OPTIMISERS)}, got {self.optimizer!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience!r}")


@dataclass(frozen=True)
class EpochRecord:
    """Training figures of one epoch (on the augmented training batches); ``accuracy`` is the share of right
    decisions (:func:`~mepipe.train.targets.correct_decisions`: of clips' classes, or of each clip's AUs)."""

    epoch: int
    loss: float
    accuracy: float
    seconds: float
    lr: float


_OPTIMISERS = {
    "adam": lambda p, t: torch.optim.Adam(p, lr=t.lr, weight_decay=t.weight_decay),
    "sgd": lambda p, t: torch.optim.SGD(p, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay),
    "rmsprop": lambda p, t: torch.optim.RMSprop(p, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay),
}


SUBNORMAL = 1e-40
"""A float32 below the smallest normal one (1.18e-38): zero when the CPU flushes subnormals, itself otherwise."""


def flushing_denormals() -> bool:
    """Whether torch's CPU arithmetic now treats subnormal floats as zero (torch has no getter for the mode)."""
    return float((torch.tensor([SUBNORMAL]) * 1.0).item()) == 0.0


@contextlib.contextmanager
def denormals_flushed():
    """Compute with subnormal floats flushed to zero on the CPU; the previous mode comes back after.

    Why: weight decay shrinks every weight that gets no gradient from the
    data (a dead input of a layer) towards zero, and once such weights are
    subnormal each convolution reading them runs several times slower on
    x86 CPUs. The nag2019 spotter's fold on demo-lv took 89, 260 and 639 s
    for three epochs of the same windows, with up to 12,000 subnormal
    weights; flushed, they count as the zeros they nearly are. Usable as a
    decorator.
    """
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def make_loader(dataset: Dataset, batch_size: int, *, sampler: Sampler | None = None, shuffle: bool = False,
                seed: int = 0, workers: int = 0, device: torch.device | None = None) -> DataLoader:
    """Batches of a dataset of typed items (:func:`~mepipe.train.inputs.batches.collate`), shuffled by a
    generator seeded with ``seed`` unless a ``sampler`` orders them."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle and sampler is None,
                      generator=generator, num_workers=workers, collate_fn=collate,
                      pin_memory=device is not None and device.type == "cuda",
                      persistent_workers=workers > 0)


@denormals_flushed()
def train_model(model: nn.Module, loader: DataLoader, params: TrainParams, device: torch.device, *,
                objective: Objective, parameters: list[nn.Parameter] | None = None,
                desc: str = "train", before_epoch: EpochHook | None = None,
                after_epoch: Callable[[EpochRecord], bool] | None = None) -> list[EpochRecord]:
    """Train ``model`` in place; returns one record per epoch run.

    Mixed precision (``torch.autocast`` + ``GradScaler``) is used on CUDA only;
    subnormal floats are flushed to zero (:func:`denormals_flushed`).

    Parameters
    ----------
    objective : Objective
        The step's loss.
    parameters : list of Parameter, optional
        What the optimiser updates (a stage of a multi-stage model); default all.
    before_epoch : EpochHook, optional
        Called before each epoch (see :data:`EpochHook`); the model is in
        training mode again after it returns.
    after_epoch : callable, optional
        Called with each epoch's record once the epoch is done (the model as
        that epoch left it); returning True stops training (e.g. validation
        early stopping). The model is put back in training mode afterwards.
    """
    model.to(device).train()
    optimiser = _OPTIMISERS[params.optimizer](parameters if parameters is not None else model.parameters(), params)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=params.lr_decay)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    generator = torch.Generator().manual_seed(params.seed)
    history: list[EpochRecord] = []
    best, stale = math.inf, 0
    bar = progress_bar(range(params.epochs), desc=desc, unit="epoch", enabled=params.progress, leave=True)
    for epoch in bar:
        started = time.perf_counter()
        if before_epoch is not None:
            before_epoch(epoch)
            model.train()
        total_loss, correct, seen, clips = 0.0, 0, 0, 0
        lr = optimiser.param_groups[0]["lr"]
        for batch in loader:
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                loss, logits, y = objective(model, batch.to(device), generator)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"{desc}: the training loss became {loss.item()} at epoch {epoch + 1}; "
                                         "lower the learning rate (--lr)")
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total_loss += float(loss.detach()) * len(y)
            right, decisions = correct_decisions(logits.detach(), y)
            correct += right
            seen += decisions
            clips += len(y)
        scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        record = EpochRecord(epoch + 1, total_loss / max(clips, 1), correct / max(seen, 1),
                             time.perf_counter() - started, lr)
        history.append(record)
        bar.set_postfix(loss=f"{record.loss:.4f}", acc=f"{record.accuracy:.3f}")
        log.info("%s epoch %d: loss %.4f, accuracy %.3f, %.2f s", desc, record.epoch, record.loss,
                 record.accuracy, record.seconds)
        if after_epoch is not None:
            stop = after_epoch(record)
            model.train()
            if stop:
                break
        if params.patience is not None:
            if record.loss < best - 1e-6:
                best, stale = record.loss, 0
            else:
                stale += 1
                if stale >= params.patience:
                    log.info("%s: early stop after epoch %d", desc, record.epoch)
                    break
    bar.close()
    return history


@dataclass(frozen=True)
class ItemLogits:
    """The logits of every item of a loader, with what identifies each item.

    Attributes
    ----------
    logits : ndarray, float32, shape (N, n_outputs)
    y : ndarray, int64, shape (N,), or (N, K) for AU targets
        The items' class (or AU vector).
    clip, frame : ndarray, int64, shape (N,)
        The items' clip index and place within the clip
        (see :class:`~mepipe.train.inputs.batches.Item`).
    """

    logits: np.ndarray
    y: np.ndarray
    clip: np.ndarray
    frame: np.ndarray


@torch.no_grad()
@denormals_flushed()
def predict(model: nn.Module, loader: DataLoader, device: torch.device,
            forward: Callable[[nn.Module, Item], torch.Tensor] | None = None) -> ItemLogits:
    """Logits of every item of a (non-shuffled) loader.

    Parameters
    ----------
    forward : callable, optional
        ``(model, batch on the device) -> logits``; default ``model(batch.x)``.
    """
    model.to(device).eval()
    amp = device.type == "cuda"
    logits, y, clip, frame = [], [], [], []
    for batch in loader:
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            on_device = batch.to(device)
            out = forward(model, on_device) if forward is not None else model(on_device.x)
        logits.append(out.float().cpu().numpy())
        for column, values in ((y, batch.y), (clip, batch.clip), (frame, batch.frame)):
            column.append(np.asarray(values, dtype=np.int64))
    return ItemLogits(*(np.concatenate(part) if part else np.empty((0,)) for part in (logits, y, clip, frame)))


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the model's ``state_dict`` only (tensors, no pickled code), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(model: nn.Module, path: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist (was the fold trained?)") from None
    model.load_state_dict(state)
    return model.to(device)
