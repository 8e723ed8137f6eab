"""A position-aware input layer: spatial attention over electrode coordinates (``model.input=spatial``).

Instead of a matrix per subject (:class:`~ieegfm.models.base.SubjectLayers`), each of ``projected_chans`` output
channels is a softmax-weighted sum of the input channels, the weights a learned function of each contact's position
(Fourier features of its coordinates): brainmagick's spatial attention (Défossez et al. 2023), in 3-D. No weight is
tied to a subject or a channel, so a patient the model never saw is read zero-shot from their electrode positions.
Positions are set from the shards (:meth:`SpatialAttention.set_positions`), not stored with the weights. This
module is pure torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Positions are divided by this length (mm) before the Fourier features: one period of the lowest frequency.
SCALE_MM = 200.0


class SpatialAttention(nn.Module):
    """Spatial attention from electrode positions to ``projected_chans`` virtual channels.

    Parameters
    ----------
    n_chans : int
        Input channels (the maximum over subjects; inputs are zero-padded to it).
    projected_chans : int
        Output channels.
    n_subjects : int
        Subjects whose positions are held (:meth:`set_positions`).
    n_freqs : int
        Fourier frequencies per axis: features ``cos, sin(2 pi k . p / SCALE_MM)`` for ``k`` in
        ``{0..n_freqs-1}^3`` (``2 n_freqs^3`` features).

    Notes
    -----
    Channels without a position (NaN: unknown contact, or padding) get weight 0 (masked before the softmax); a
    subject none of whose channels has a position gives zeros.

    References
    ----------
    .. [1] Défossez, A., Caucheteux, C., Rapin, J., Kabeli, O., & King, J.-R. (2023). Decoding speech perception
       from non-invasive brain recordings. Nature Machine Intelligence, 5, 1097–1107. Code:
       https://github.com/facebookresearch/brainmagick (``SpatialAttention``, ``FourierEmb``).
    """

    def __init__(self, n_chans: int, projected_chans: int, n_subjects: int, n_freqs: int = 4) -> None:
        super().__init__()
        self.n_chans, self.projected_chans, self.n_subjects, self.n_freqs = (
            n_chans,
            projected_chans,
            n_subjects,
            n_freqs,
        )
        k = torch.stack(torch.meshgrid(*[torch.arange(n_freqs, dtype=torch.float32)] * 3, indexing="ij"), -1)
        self.register_buffer("freqs", k.reshape(-1, 3), persistent=False)  # (n_freqs^3, 3)
        self.score = nn.Linear(2 * n_freqs**3, projected_chans)
        self.register_buffer("positions", torch.full((n_subjects, n_chans, 3), math.nan), persistent=False)

    def set_positions(self, positions: torch.Tensor) -> None:
        """Set each subject's channel positions.

        Parameters
        ----------
        positions : torch.Tensor, shape (n_subjects, n_chans, 3)
            Coordinates in mm; NaN where a channel has no position or is padding.

        Raises
        ------
        ValueError
            Another shape.
        """
        shape = (self.n_subjects, self.n_chans, 3)
        if tuple(positions.shape) != shape:
            raise ValueError(f"positions must have shape {shape}, got {tuple(positions.shape)}")
        self.positions = positions.to(self.positions.device, torch.float32)

    def weights(self) -> torch.Tensor:
        """Attention weights, shape (n_subjects, n_chans, projected_chans): a softmax over each subject's channels."""
        known = ~torch.isnan(self.positions).any(-1)  # (n_subjects, n_chans)
        p = torch.nan_to_num(self.positions) / SCALE_MM
        phase = 2 * math.pi * p @ self.freqs.T  # (n_subjects, n_chans, n_freqs^3)
        logits = self.score(torch.cat([torch.cos(phase), torch.sin(phase)], -1))
        logits = logits.masked_fill(~known[..., None], -math.inf)
        w = torch.softmax(logits, dim=1)
        return torch.nan_to_num(w)  # a subject without any position: zeros

    def forward(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """Mix each window's channels with its subject's weights.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
        subject : torch.Tensor of int, shape (batch,)

        Returns
        -------
        torch.Tensor, shape (batch, projected_chans, n_times)
        """
        w = self.weights()[subject.long(), : x.shape[1]]  # (batch, channels of x, projected_chans); the rest: padding
        return torch.einsum("bct,bcd->bdt", x, w.to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"n_chans={self.n_chans}, projected_chans={self.projected_chans}, n_subjects={self.n_subjects}, "
            f"n_freqs={self.n_freqs}"
        )
