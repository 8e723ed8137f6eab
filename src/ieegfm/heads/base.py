"""Base of the finetune heads, and the encoder + head pair they make (pure torch).

A head reads the encoder's pre-head hidden sequence (``BrainEncoder.forward(..., return_features=True)``),
shape (batch, n_hidden, n_times), and maps it to the finetuning target space.
"""

from __future__ import annotations

import torch
from torch import nn

from ieegfm.conventions import POOLINGS
from ieegfm.models.base import BrainEncoder, _check_positive_int


class FinetuneHead(nn.Module):
    """Base class of the finetune heads.

    Parameters
    ----------
    n_hidden : int
        Channels of the encoder features (``encoder.n_hidden``).
    n_features : int
        Output dimension (the finetuning targets, e.g. the task audio features).
    pooling : {'mean', 'none'}
        ``'mean'``: one output per window, shape (batch, n_features); ``'none'``: time-resolved,
        (batch, n_features, n_times).

    Raises
    ------
    ValueError
        A size that is not a positive integer, or an unknown ``pooling``.
    """

    def __init__(self, n_hidden: int, n_features: int, pooling: str = "mean") -> None:
        super().__init__()
        self.n_hidden = _check_positive_int("n_hidden", n_hidden)
        self.n_features = _check_positive_int("n_features", n_features)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling

    def output_shape(self, batch: int, n_times: int) -> tuple[int, ...]:
        """Shape of the head's output for ``batch`` windows of ``n_times`` feature steps."""
        return (batch, self.n_features) if self.pooling == "mean" else (batch, self.n_features, n_times)

    def check_features(self, features: torch.Tensor) -> None:
        """Raise ValueError unless ``features`` has shape (batch, n_hidden, n_times)."""
        if not isinstance(features, torch.Tensor) or features.ndim != 3 or features.shape[1] != self.n_hidden:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"features must have shape (batch, n_hidden={self.n_hidden}, n_times), got {got}")


class EncoderWithHead(nn.Module):
    """A brain encoder whose output is replaced by a finetune head on its features.

    Parameters
    ----------
    encoder : BrainEncoder
    head : FinetuneHead
        ``head.n_hidden`` must equal ``encoder.n_hidden``.

    Raises
    ------
    ValueError
        The head does not read the encoder's feature size.
    """

    def __init__(self, encoder: BrainEncoder, head: FinetuneHead) -> None:
        super().__init__()
        if head.n_hidden != encoder.n_hidden:
            raise ValueError(f"head reads {head.n_hidden} features, the encoder gives {encoder.n_hidden}")
        self.encoder, self.head = encoder, head
        self.pooling = head.pooling

    def forward(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """Encode iEEG windows (batch, n_chans, n_times) with subject indices (batch,) into the head's output:
        (batch, n_features) for ``pooling='mean'``, (batch, n_features, n_times) for ``'none'``."""
        _, features = self.encoder(x, subject, return_features=True)
        return self.head(features)
