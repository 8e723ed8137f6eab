"""Linear baseline encoder: per-subject projection and one temporal convolution, no nonlinearity."""

from __future__ import annotations

import torch
from torch import nn

from ieegfm.models.base import BrainEncoder, _check_positive_int


class LinearEncoder(BrainEncoder):
    """Linear baseline: ``SubjectLayers -> Conv1d(projected_chans, n_features, kernel_size)``.

    No nonlinearity and no bias anywhere, so the output is linear in ``x`` for a fixed subject:
    ``f(a x1 + b x2) = a f(x1) + b f(x2)``. With ``pooling='mean'`` the sequence is averaged over
    time; with ``pooling='none'`` it is returned per time step.

    Parameters
    ----------
    n_chans : int
        Number of input channels (maximum over subjects; inputs are zero-padded to it).
    n_subjects : int
        Number of subjects.
    n_times : int
        Window length in samples.
    sfreq : float
        Sampling frequency of the input, in Hz.
    n_features : int
        Output embedding dimension (the audio target dimension).
    pooling : {'mean', 'none'}
        ``'mean'``: ``(batch, n_features)``; ``'none'``: ``(batch, n_features, n_times)``.
    projected_chans : int
        Channels after the per-subject projection.
    kernel_size : int
        Kernel size of the temporal convolution ('same' padding), in samples.
    input : {'subject_layers', 'spatial'}
        The input layer (:meth:`~ieegfm.models.base.BrainEncoder.build_input`).

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``sfreq`` is not positive or ``pooling`` is unknown.

    Notes
    -----
    The features returned with ``return_features=True`` are the convolution output before
    pooling, shape ``(batch, n_features, n_times)`` (so ``n_hidden == n_features``). Options of
    the deep encoder (``hidden``, ``depth``, ``dropout``) are not parameters here;
    :func:`ieegfm.models.build_encoder` drops them for this encoder.

    References
    ----------
    .. [1] arXiv 2512.15830 (linear encoder as the baseline; the deep encoder gains more from
       pretraining).
    .. [2] Défossez, A., et al. (2023). Decoding speech perception from non-invasive brain
       recordings. Nature Machine Intelligence, 5, 1097–1107 (``SubjectLayers``).
    """

    def __init__(
        self,
        n_chans: int,
        n_subjects: int,
        n_times: int,
        sfreq: float,
        n_features: int,
        pooling: str = "mean",
        projected_chans: int = 270,
        kernel_size: int = 3,
        input: str = "subject_layers",
    ) -> None:
        super().__init__(n_chans, n_subjects, n_times, sfreq, n_features, pooling)
        self.projected_chans = _check_positive_int("projected_chans", projected_chans)
        self.kernel_size = _check_positive_int("kernel_size", kernel_size)
        self.n_hidden = n_features
        self.build_input(input, projected_chans)
        self.conv = nn.Conv1d(projected_chans, n_features, kernel_size, padding="same", bias=False)

    def forward_features(self, x: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """Projection and convolution.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            iEEG windows.
        subject : torch.Tensor of int, shape (batch,)
            Subject indices.

        Returns
        -------
        torch.Tensor, shape (batch, n_features, n_times)
            Time-resolved linear embedding.
        """
        return self.conv(self.read_input(x, subject))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Mean over time (``'mean'``) or identity (``'none'``).

        Parameters
        ----------
        features : torch.Tensor, shape (batch, n_features, n_times)
            Time-resolved embedding.

        Returns
        -------
        torch.Tensor, shape (batch, n_features) or (batch, n_features, n_times)
            Embedding.
        """
        if self.pooling == "mean":
            return features.mean(dim=-1)
        return features
