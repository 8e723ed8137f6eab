"""LLM-prefix head: encoder features of a window -> soft tokens in a frozen causal LM's embedding space (BrainLLM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ieegfm.heads.base import FinetuneHead
from ieegfm.heads.text_embedding import TextEmbeddingHead

#: Where the soft tokens come from (``head_options.prefix_from``).
PREFIX_SOURCES = ("segments", "sentence_embedding")


class LLMPrefixHead(FinetuneHead):
    """Brain features to ``n_tokens`` soft tokens wrapped in learnable ``<brain/>`` ... ``</brain>`` embeddings.

    Two ways from features to tokens (``prefix_from``):

    ``'segments'``
        The encoder's hidden sequence (batch, n_hidden, n_times) is averaged over ``n_tokens`` equal time segments
        (adaptive average pooling, so token ``k`` summarises the ``k``-th part of the window) and each segment is
        mapped by a two-layer MLP (the adapter) to the LM's embedding width [1]_.
    ``'sentence_embedding'``
        Through a sentence-embedding bottleneck: a :class:`~ieegfm.heads.text_embedding.TextEmbeddingHead`
        (``align``: brain -> the ``embed_dim``-d embedding of the heard sentence, unit norm; warm-started from a
        trained text-embedding head, as BrainLLM aligns the brain embedding first [1]_) and a ClipCap mapping
        network [2]_ (``mapper``: an MLP embed_dim -> n_tokens * n_features / 2 -> n_tokens * n_features). The mapper
        can be trained on text alone, from the true sentence embeddings with Gaussian noise injected (CapDec [3]_),
        and then reads the embedding the brain predicts (:meth:`tokens_from_embedding`).

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
        Width of the adapter's hidden layer (``segments``), or of the ``align`` head's (``sentence_embedding``).
    dropout : float
        Dropout in the adapter (or the ``align`` head).
    prefix_from : {'segments', 'sentence_embedding'}
    embed_dim : int
        Width of the sentence embedding (``sentence_embedding`` only; 384 for all-MiniLM-L6-v2).
    pool : {'mean', 'lstm'}
        The ``align`` head's pooling over the window (``sentence_embedding`` only).

    Raises
    ------
    ValueError
        A size that is not a positive integer, ``pooling`` other than ``'mean'``, ``dropout`` outside [0, 1), an
        unknown ``prefix_from``, ``sentence_embedding`` without ``embed_dim``.

    References
    ----------
    .. [1] Ye, Z., et al. (2025). Generative language reconstruction from brain recordings. Communications Biology
       (BrainLLM: brain adapter -> prompt embeddings of a frozen LLM, continuation cross-entropy).
    .. [2] Mokady, R., Hertz, A., Bermano, A. H. (2021). ClipCap: CLIP prefix for image captioning. arXiv:2111.09734.
    .. [3] Nukrai, D., Mokady, R., Globerson, A. (2022). Text-only training for image captioning using noise-injected
       CLIP. Findings of EMNLP.
    """

    def __init__(
        self,
        n_hidden: int,
        n_features: int,
        pooling: str = "mean",
        n_tokens: int = 8,
        hidden: int = 256,
        dropout: float = 0.1,
        prefix_from: str = "segments",
        embed_dim: int = 0,
        pool: str = "mean",
    ) -> None:
        super().__init__(n_hidden, n_features, pooling)
        if pooling != "mean":
            raise ValueError(f"the LLM-prefix head gives a token sequence: pooling must be 'mean', got {pooling!r}")
        for name, v in (("n_tokens", n_tokens), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if prefix_from not in PREFIX_SOURCES:
            raise ValueError(f"prefix_from must be one of {PREFIX_SOURCES}, got {prefix_from!r}")
        self.n_tokens, self.prefix_from = n_tokens, prefix_from
        if prefix_from == "segments":
            self.segments = nn.AdaptiveAvgPool1d(n_tokens)
            self.adapter = nn.Sequential(
                nn.LayerNorm(n_hidden),
                nn.Linear(n_hidden, hidden),
                nn.GELU(),
                nn.Dropout(float(dropout)),
                nn.Linear(hidden, n_features),
            )
        else:
            if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
                raise ValueError(f"prefix_from='sentence_embedding' needs embed_dim >= 1, got {embed_dim!r}")
            self.embed_dim = embed_dim
            self.align = TextEmbeddingHead(n_hidden, embed_dim, dropout=dropout, hidden=hidden, pool=pool)
            width = n_tokens * n_features
            self.mapper = nn.Sequential(nn.Linear(embed_dim, width // 2), nn.Tanh(), nn.Linear(width // 2, width))
        self.brain_open = nn.Parameter(torch.randn(n_features) * 0.02)
        self.brain_close = nn.Parameter(torch.randn(n_features) * 0.02)

    def output_shape(self, batch: int, n_times: int) -> tuple[int, ...]:
        return (batch, self.n_tokens + 2, self.n_features)

    def sentence_embedding(self, features: torch.Tensor) -> torch.Tensor:
        """The sentence embedding the brain predicts, (batch, embed_dim), unit norm (``sentence_embedding`` only)."""
        self.check_features(features)
        return F.normalize(self.align(features), dim=-1)

    def soft_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """The soft tokens alone, (batch, n_tokens, n_features) (the warm-up's MSE reads them)."""
        self.check_features(features)
        if self.prefix_from == "segments":
            return self.adapter(self.segments(features).transpose(1, 2))
        return self._map(self.sentence_embedding(features))

    def _map(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.mapper(embedding).view(embedding.shape[0], self.n_tokens, self.n_features)

    def _frame(self, tokens: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        return torch.cat([self.brain_open.expand(b, 1, -1), tokens, self.brain_close.expand(b, 1, -1)], dim=1)

    def tokens_from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """The prefix (batch, n_tokens + 2, n_features) of given sentence embeddings (batch, embed_dim), normalised
        here: the text-only stage's input (``sentence_embedding`` only).

        Raises
        ------
        ValueError
            ``prefix_from='segments'``, or ``embedding`` not of shape (batch, embed_dim).
        """
        if self.prefix_from != "sentence_embedding":
            raise ValueError("tokens_from_embedding needs prefix_from='sentence_embedding'")
        if embedding.ndim != 2 or embedding.shape[1] != self.embed_dim:
            raise ValueError(f"embedding must have shape (batch, {self.embed_dim}), got {tuple(embedding.shape)}")
        return self._frame(self._map(F.normalize(embedding, dim=-1)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map features (batch, n_hidden, n_times) to the prefix (batch, n_tokens + 2, n_features).

        Raises
        ------
        ValueError
            ``features`` not of shape (batch, n_hidden, n_times).
        """
        return self._frame(self.soft_tokens(features))
