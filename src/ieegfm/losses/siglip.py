"""Sigmoid (SigLIP) loss between brain embeddings and frozen audio targets, with DDP negatives."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ieegfm.losses.clip import (
    LogitScaleMixin,
    _flatten_normalize,
    check_pair,
    gather_batches,
)


class SigLipLoss(LogitScaleMixin, nn.Module):
    """Pairwise sigmoid loss with a learnable logit scale and bias.

    ``loss = -(1 / batch) * sum_ij log sigmoid(z_ij * (exp(logit_scale) * cos(brain_i, audio_j) +
    logit_bias))`` with ``z_ij = +1`` for the matching pair and ``-1`` otherwise. Inputs are
    flattened to ``(batch, -1)`` and L2-normalised, as in :class:`~ieegfm.losses.ClipLoss`.

    Under ``torch.distributed`` (initialised, world size > 1, ``gather_distributed=True``) the
    frozen audio side is gathered without gradient and each rank scores its local brain rows
    against all audio columns. Every (brain, audio) pair is then scored exactly once over the
    ranks and, the audio being frozen, no brain gradient needs to cross ranks: the mean of the
    per-rank losses is the single-process loss over the global batch, and averaged gradients are
    the single-process gradients. Local batch sizes may differ between ranks: the local loss is
    divided by ``global_batch / world`` instead of ``batch``, which keeps that equality.

    Parameters
    ----------
    init_logit_scale : float
        Initial ``logit_scale``; default ``ln 10`` (Zhai et al.).
    init_logit_bias : float
        Initial ``logit_bias``; default ``-10``.
    max_logit_scale : float
        Upper clamp of ``logit_scale`` (lower clamp 0); default ``ln 100``.
    learnable : bool
        Whether ``logit_scale`` and ``logit_bias`` receive gradients.
    gather_distributed : bool
        Gather audio negatives across ranks when ``torch.distributed`` is initialised.

    Raises
    ------
    ValueError
        If a scale or bias is not finite or ``max_logit_scale`` is negative.

    References
    ----------
    .. [1] Zhai, X., Mustafa, B., Kolesnikov, A., & Beyer, L. (2023). Sigmoid loss for language
       image pre-training. ICCV.
    """

    def __init__(
        self,
        init_logit_scale: float = math.log(10),
        init_logit_bias: float = -10.0,
        max_logit_scale: float = math.log(100),
        learnable: bool = True,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("init_logit_scale", init_logit_scale),
            ("init_logit_bias", init_logit_bias),
            ("max_logit_scale", max_logit_scale),
        ):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if max_logit_scale < 0:
            raise ValueError(f"max_logit_scale must be >= 0, got {max_logit_scale!r}")
        self.max_logit_scale = float(max_logit_scale)
        self.learnable = bool(learnable)
        self.gather_distributed = bool(gather_distributed)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)), requires_grad=learnable)
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)), requires_grad=learnable)
        self.n_candidates = 0

    def logits(self, brain: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Local logits ``scale * cos(brain_i, audio_j) + bias``, shape ``(batch, batch)``.

        Parameters
        ----------
        brain : torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
            Brain embeddings.
        audio : torch.Tensor, same shape as ``brain``
            Audio targets.

        Returns
        -------
        torch.Tensor, shape (batch, batch)
            Logits; row ``i`` scores the candidates for brain window ``i``.
        """
        check_pair(brain, audio)
        return self._clamped_scale() * _flatten_normalize(brain) @ _flatten_normalize(audio).T + self.logit_bias

    def forward(self, brain: torch.Tensor, audio: torch.Tensor, gather: bool = True) -> torch.Tensor:
        """Sigmoid loss over all (local brain, global audio) pairs.

        Parameters
        ----------
        brain : torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
            Brain embeddings (local batch).
        audio : torch.Tensor, same shape as ``brain``
            Frozen audio targets (local batch).
        gather : bool
            Gather the other ranks' audio rows as negatives; ``False`` scores the local batch alone.

        Returns
        -------
        torch.Tensor, shape ()
            Loss summed over candidates and local rows, divided by ``global_batch / world`` (the local
            mean over rows when every rank holds the same batch size).

        Raises
        ------
        ValueError
            If the shapes do not match (see :func:`~ieegfm.losses.clip.check_pair`).
        """
        check_pair(brain, audio)
        scale = self._clamped_scale()
        b = _flatten_normalize(brain)
        a = _flatten_normalize(audio.detach())
        world = self.world_size if gather else 1
        if world > 1:
            a, sizes, offset = gather_batches(a, with_grad=False)
        else:
            sizes, offset = [b.shape[0]], 0
        total = sum(sizes)
        self.n_candidates = total
        logits = scale * b @ a.T + self.logit_bias  # (batch, global_batch)
        signs = -torch.ones_like(logits)
        rows = torch.arange(b.shape[0], device=b.device)
        signs[rows, rows + offset] = 1.0
        return -F.logsigmoid(signs * logits).sum() * (world / total)
