"""Neuro2Semantic's alignment loss: alpha * CLIP + (1 - alpha) * triplet, between brain and sentence embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ClipTripletLoss(nn.Module):
    """``alpha * CLIP + (1 - alpha) * triplet`` (Neuro2Semantic, Shams et al., Interspeech 2025).

    CLIP: symmetric cross-entropy of ``cos(brain_i, text_j) / temperature``. Triplet: for each brain embedding
    (anchor), its own text (positive) against every other text of the batch (negatives, "batch all"),
    ``max(0, |a - p| - |a - n| + margin)`` with Euclidean distances, averaged over the triplets; the Euclidean
    term also fixes the scale of the predictions, which an unnormalised target space (vec2text's GTR) needs.

    Rows with the same text (a sentence heard twice) are positives of each other: the CLIP targets are spread over
    them and they are never used as negatives.

    Parameters
    ----------
    alpha : float
        Weight of the CLIP term, in [0, 1]; the paper's default 0.25.
    temperature : float
        CLIP temperature (fixed); the paper's default 0.1.
    margin : float
        Triplet margin; the paper's default 1.0.

    Raises
    ------
    ValueError
        ``alpha`` outside [0, 1], non-positive ``temperature``, negative ``margin``.

    Notes
    -----
    Single-process: a patient's task data fits one process; no cross-rank negatives. The paper's public code
    accumulates to an effective batch of 4 sentences, leaving 3 negatives per anchor; ieegfm uses whole batches
    (``data.batch_size`` sentences, default 64).
    """

    def __init__(self, alpha: float = 0.25, temperature: float = 0.1, margin: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
        if not temperature > 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.alpha, self.temperature, self.margin = float(alpha), float(temperature), float(margin)

    def forward(self, brain: torch.Tensor, text: torch.Tensor, same: torch.Tensor | None = None) -> dict:
        """The loss of a batch.

        Parameters
        ----------
        brain : Tensor, shape (batch, dim)
            Predicted sentence embeddings.
        text : Tensor, shape (batch, dim)
            Target sentence embeddings (no gradient).
        same : Tensor of bool, shape (batch, batch), optional
            ``same[i, j]``: rows ``i`` and ``j`` have the same text (default: the identity).

        Returns
        -------
        dict
            ``loss`` (the weighted sum), ``clip``, ``triplet``.

        Raises
        ------
        ValueError
            Shapes differ or are not 2-d.
        """
        if brain.ndim != 2 or brain.shape != text.shape:
            raise ValueError(f"brain {tuple(brain.shape)} and text {tuple(text.shape)} must be (batch, dim) alike")
        n = len(brain)
        eye = torch.eye(n, dtype=torch.bool, device=brain.device)
        same = eye if same is None else (same | eye)
        brain, text = brain.float(), text.float()
        logits = F.normalize(brain, dim=-1) @ F.normalize(text, dim=-1).T / self.temperature
        soft = same.float() / same.float().sum(1, keepdim=True)
        clip = 0.5 * (-(soft * logits.log_softmax(1)).sum(1).mean() - (soft.T * logits.log_softmax(0)).sum(0).mean())
        dist = torch.cdist(brain, text)  # (anchor, candidate)
        pos = dist.diagonal().unsqueeze(1)
        neg = ~same
        hinge = F.relu(pos - dist + self.margin)[neg]
        triplet = hinge.mean() if hinge.numel() else dist.new_zeros(())
        return {"loss": self.alpha * clip + (1 - self.alpha) * triplet, "clip": clip, "triplet": triplet}
