"""Recurrent heads over per-frame feature sequences (Kim's LSTM, Choi's LSTM, Nag's GRU).

A :class:`SequenceHead` reads a batch of feature sequences ``(B, T, D)`` with
optional true lengths (shorter clips right-padded) and classifies each
sequence from the output of its last valid step, as Kim et al. (§2.3) and
Choi et al. (§3.3) do.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["SequenceHead", "last_valid"]

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class SequenceHead(nn.Module):
    """Stacked LSTM or GRU over feature sequences, then a linear classifier on the last valid step.

    Parameters
    ----------
    input_dim : int
        Size D of each step's feature vector.
    hidden : int
        Units per recurrent layer (Kim: 512; Choi: 128; Nag: 256).
    num_layers : int
        Stacked recurrent layers (Kim: 3; Choi and Nag: 1).
    num_classes : int
    cell : {"lstm", "gru"}
    dropout : float
        Dropout between stacked layers (0 with one layer).
    """

    def __init__(self, input_dim: int, hidden: int, num_layers: int, num_classes: int, cell: str = "lstm",
                 dropout: float = 0.0):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.rnn = _CELLS[cell](input_dim, hidden, num_layers=num_layers, batch_first=True,
                                dropout=dropout if num_layers > 1 else 0.0)
        self.classifier = nn.Linear(hidden, num_classes)
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_std", torch.ones(input_dim))

    def set_input_scale(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise each input dimension by ``(f - mean) / std`` before the recurrent layers.

        Two-stage training fits these on the training fold's frozen CNN
        features, whose scale the CNN's own objective sets (Kim's E2/E4 pull
        features tight around their means); they are buffers, so a
        checkpoint carries them. Zero-variance dimensions keep a std of 1.
        """
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        self.input_mean.copy_(mean.to(self.input_mean))
        self.input_std.copy_(std.to(self.input_std))

    def steps(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs of the last recurrent layer at every step, (B, T, hidden); zero past each length."""
        if features.ndim != 3:
            raise ValueError(f"features must be (B, T, D), got {tuple(features.shape)}")
        features = (features - self.input_mean) / self.input_std
        if lengths is None:
            return self.rnn(features)[0]
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        packed = pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=features.shape[1])[0]

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, num_classes) from each sequence's last valid step."""
        return self.classifier(last_valid(self.steps(features, lengths), lengths))


def last_valid(steps: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Step ``lengths[b] - 1`` of each sequence b of ``steps`` (B, T, H); the last step without lengths."""
    if lengths is None:
        return steps[:, -1]
    index = torch.as_tensor(lengths, dtype=torch.long, device=steps.device) - 1
    if bool((index < 0).any()) or bool((index >= steps.shape[1]).any()):
        raise ValueError(f"lengths must lie in 1..{steps.shape[1]}, got {lengths.tolist()}")
    return steps[torch.arange(steps.shape[0], device=steps.device), index]
