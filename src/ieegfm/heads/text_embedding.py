"""Text-embedding head: the encoder features of one sentence, pooled over its samples, to a sentence embedding."""

from __future__ import annotations

import torch
from torch import nn

from ieegfm.heads.base import FinetuneHead

POOLS = ("mean", "lstm")


class TextEmbeddingHead(FinetuneHead):
    """Masked pooling of the encoder features over a sentence, then an MLP to a sentence-embedding space.

    Parameters
    ----------
    n_hidden : int
        Channels of the encoder features.
    n_features : int
        Dimension of the sentence embeddings (384 for all-MiniLM-L6-v2, 768 for vec2text's GTR).
    pooling : {'mean'}
        One output per sentence (the only mode of this head).
    dropout : float
        Dropout on the pooled features.
    hidden : int
        Width of the MLP's hidden layer.
    pool : {'mean', 'lstm'}
        ``'mean'``: the mean of the features over the sentence's samples (the mask). ``'lstm'``: a bidirectional
        one-layer LSTM over the sentence's samples (packed to their length), the two final states concatenated,
        the adapter of Neuro2Semantic.

    Raises
    ------
    ValueError
        A size that is not a positive integer, ``pooling`` other than ``'mean'``, an unknown ``pool``, ``dropout``
        outside [0, 1).

    References
    ----------
    .. [1] Shams, S., et al. (2025). Neuro2Semantic: a transfer learning framework for semantic reconstruction of
       continuous language from human intracranial EEG. Interspeech (LSTM adapter to a text-embedding space).
    """

    def __init__(
        self,
        n_hidden: int,
        n_features: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        hidden: int = 256,
        pool: str = "mean",
    ) -> None:
        super().__init__(n_hidden, n_features, pooling)
        if pooling != "mean":
            raise ValueError(
                f"the text-embedding head gives one embedding per sentence: pooling must be 'mean', got {pooling!r}"
            )
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        self.pool = pool
        width = n_hidden
        if pool == "lstm":
            self.lstm = nn.LSTM(n_hidden, n_hidden // 2 or 1, batch_first=True, bidirectional=True)
            width = 2 * (n_hidden // 2 or 1)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Dropout(float(dropout)), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, n_features)
        )

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Map features (batch, n_hidden, n_times) of sentences to (batch, n_features).

        Parameters
        ----------
        features : Tensor, shape (batch, n_hidden, n_times)
        mask : Tensor of bool, shape (batch, n_times), optional
            The sentence's samples (a prefix of each row for ``pool='lstm'``); default all.

        Raises
        ------
        ValueError
            Bad shapes, or a row whose mask is empty.
        """
        self.check_features(features)
        if mask is None:
            mask = torch.ones(features.shape[0], features.shape[2], dtype=torch.bool, device=features.device)
        if mask.shape != (features.shape[0], features.shape[2]):
            raise ValueError(f"mask must have shape {(features.shape[0], features.shape[2])}, got {tuple(mask.shape)}")
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("every sentence needs at least one sample in its mask")
        if self.pool == "mean":
            m = mask.unsqueeze(1).to(features.dtype)
            pooled = (features * m).sum(-1) / lengths.unsqueeze(1).to(features.dtype)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                features.transpose(1, 2), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.lstm(packed)
            pooled = torch.cat([h[0], h[1]], dim=-1)
        return self.mlp(self.norm(pooled))
