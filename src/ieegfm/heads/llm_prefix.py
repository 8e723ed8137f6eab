"""LLM-prefix head: encoder features of a window -> soft tokens in a frozen causal LM's embedding space (BrainLLM)."""

from __future__ import annotations

import torch
from torch import nn

from ieegfm.heads.base import FinetuneHead


class LLMPrefixHead(FinetuneHead):
    """Brain features to ``n_tokens`` soft tokens wrapped in learnable ``<brain/>`` ... ``</brain>`` embeddings.

    The encoder's hidden sequence (batch, n_hidden, n_times) is averaged over ``n_tokens`` equal time segments
    (adaptive average pooling, so token ``k`` summarises the ``k``-th part of the window) and each segment is mapped
    by a two-layer MLP (the adapter) to the LM's embedding width; a learnable start and end embedding frame them.
    The LM reads ``[<brain/>, b_1 .. b_T, </brain>, prompt tokens, continuation tokens]``.

    Parameters
    ----------
    n_hidden : int
        Channels of the encoder features.
    n_features : int
        The LM's embedding width (``lm.get_input_embeddings().embedding_dim``; 576 for SmolLM2-135M).
    pooling : {'mean'}
        Present for the registry's signature; the head always gives a token sequence.
    n_tokens : int
        Soft brain tokens ``T``.
    hidden : int
        Width of the adapter's hidden layer.
    dropout : float
        Dropout in the adapter.

    Raises
    ------
    ValueError
        A size that is not a positive integer, ``pooling`` other than ``'mean'``, ``dropout`` outside [0, 1).

    References
    ----------
    .. [1] Ye, Z., et al. (2025). Generative language reconstruction from brain recordings. Communications Biology
       (BrainLLM: brain adapter -> prompt embeddings of a frozen LLM, continuation cross-entropy).
    """

    def __init__(
        self,
        n_hidden: int,
        n_features: int,
        pooling: str = "mean",
        n_tokens: int = 8,
        hidden: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(n_hidden, n_features, pooling)
        if pooling != "mean":
            raise ValueError(f"the LLM-prefix head gives a token sequence: pooling must be 'mean', got {pooling!r}")
        for name, v in (("n_tokens", n_tokens), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.n_tokens = n_tokens
        self.segments = nn.AdaptiveAvgPool1d(n_tokens)
        self.adapter = nn.Sequential(
            nn.LayerNorm(n_hidden),
            nn.Linear(n_hidden, hidden),
            nn.GELU(),
            nn.Dropout(float(dropout)),
            nn.Linear(hidden, n_features),
        )
        self.brain_open = nn.Parameter(torch.randn(n_features) * 0.02)
        self.brain_close = nn.Parameter(torch.randn(n_features) * 0.02)

    def output_shape(self, batch: int, n_times: int) -> tuple[int, ...]:
        return (batch, self.n_tokens + 2, self.n_features)

    def soft_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """The adapter's output alone, (batch, n_tokens, n_features) (the warm-up's MSE reads it)."""
        self.check_features(features)
        return self.adapter(self.segments(features).transpose(1, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map features (batch, n_hidden, n_times) to the prefix (batch, n_tokens + 2, n_features).

        Raises
        ------
        ValueError
            ``features`` not of shape (batch, n_hidden, n_times).
        """
        tokens = self.soft_tokens(features)
        b = tokens.shape[0]
        return torch.cat([self.brain_open.expand(b, 1, -1), tokens, self.brain_close.expand(b, 1, -1)], dim=1)
