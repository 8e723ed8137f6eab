"""Linear head: a linear readout of the encoder features (a linear probe when the encoder is frozen)."""

from __future__ import annotations

import torch
from torch import nn

from ieegfm.heads.base import FinetuneHead


class LinearHead(FinetuneHead):
    """Time-mean of the encoder features then one linear map (``pooling='mean'``), or the same linear map at
    every time step (``pooling='none'``, a 1x1 convolution).

    Parameters
    ----------
    n_hidden : int
        Channels of the encoder features.
    n_features : int
        Output dimension.
    pooling : {'mean', 'none'}
        See :class:`~ieegfm.heads.base.FinetuneHead`.
    dropout : float
        Dropout on the features before the linear map (regularises finetuning on little data).

    References
    ----------
    .. [1] arXiv 2512.15830 (per-patient finetuning of the pretrained encoder on an audiobook task).
    .. [2] Alain, G. & Bengio, Y. (2017). Understanding intermediate layers using linear classifier probes.
    """

    def __init__(self, n_hidden: int, n_features: int, pooling: str = "mean", dropout: float = 0.0) -> None:
        super().__init__(n_hidden, n_features, pooling)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.dropout = nn.Dropout(float(dropout))
        self.proj = nn.Conv1d(n_hidden, n_features, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map features (batch, n_hidden, n_times) to (batch, n_features) or (batch, n_features, n_times).

        Raises
        ------
        ValueError
            ``features`` not of shape (batch, n_hidden, n_times).
        """
        self.check_features(features)
        x = self.dropout(features)
        if self.pooling == "mean":
            x = x.mean(dim=-1, keepdim=True)  # the time-mean commutes with the linear map
            return self.proj(x).squeeze(-1)
        return self.proj(x)
