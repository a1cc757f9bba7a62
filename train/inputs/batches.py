"""Typed items: what an input form's dataset returns and, collated, what its loader yields.

Every form's dataset returns instances of one dataclass, :class:`Item` or a
subclass adding what the form carries (Kim's expression ``state``, a
sequence's ``length``, Nag's per-step targets). :func:`collate` stacks a
list of items into the same class with a leading batch dim, so objectives
and clip rules read ``batch.x``, ``batch.length`` ... with the fields the
form declares, never a string key.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

__all__ = ["Item", "collate", "stepwise"]

T = TypeVar("T", bound="Item")


def stepwise() -> Any:
    """A field whose axis 0 runs over the steps of a sequence: :func:`collate` zero-pads it to the longest."""
    return dataclasses.field(metadata={"stepwise": True})


@dataclass(kw_only=True)
class Item:
    """One item of a stage, or a batch of them (:func:`collate`).

    In an item ``x`` is one example and the other fields are ints; in a
    batch every field is a tensor with a leading batch dim (int64 for the
    ints).

    Attributes
    ----------
    x : Tensor, float32
        The network's input.
    y : int or LongTensor
        Class of the item's clip.
    clip : int or LongTensor
        Index of the item's clip in its dataset's clip list.
    frame : int or LongTensor
        The item's place within its clip (a flow field, a state, a map, a
        window's first step); -1 for whole-clip items.
    variant : int or LongTensor
        The augmentation variant the item was drawn under (-1: none).
    """

    x: torch.Tensor
    y: torch.Tensor | int
    clip: torch.Tensor | int
    frame: torch.Tensor | int = -1
    variant: torch.Tensor | int = -1

    def _map_tensors(self: T, move) -> T:
        return dataclasses.replace(self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})

    def to(self: T, device: torch.device | str) -> T:
        """The same item with every tensor on ``device``."""
        return self._map_tensors(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self: T) -> T:
        """The same item with every tensor in pinned memory (the DataLoader calls it with ``pin_memory=True``)."""
        return self._map_tensors(torch.Tensor.pin_memory)

    def with_x(self: T, x: torch.Tensor) -> T:
        """The same item with another input (an augmented batch)."""
        return dataclasses.replace(self, x=x)


def _pad(values: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors zero-padded at the end of axis 0 to the longest one's length."""
    longest = max(int(v.shape[0]) for v in values)
    return [v if v.shape[0] == longest else torch.cat([v, v.new_zeros((longest - v.shape[0], *v.shape[1:]))])
            for v in values]


def collate(items: Sequence[T]) -> T:
    """Items of one class as a batch of that class: tensors stacked (:func:`stepwise` fields zero-padded), ints
    as int64.

    Raises
    ------
    TypeError
        When the items are of different classes.
    """
    kind = type(items[0])
    if any(type(item) is not kind for item in items):
        raise TypeError(f"cannot batch items of different kinds: {sorted({type(i).__name__ for i in items})}")
    values = {}
    for spec in dataclasses.fields(kind):
        column = [getattr(item, spec.name) for item in items]
        if isinstance(column[0], torch.Tensor):
            values[spec.name] = torch.stack(_pad(column) if spec.metadata.get("stepwise") else column)
        else:
            values[spec.name] = torch.tensor(column)
    return kind(**values)
