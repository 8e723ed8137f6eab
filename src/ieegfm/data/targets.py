"""The contrastive target of a window: one home for what the brain embedding is scored against.

Pretraining, finetuning and evaluation all call :func:`target_of`; the DataLoader workers may already have
applied it (``ShardDataModule(audio_pooling='mean')`` time-averages the audio), which it accepts.
"""

from __future__ import annotations

import torch

from ieegfm.conventions import POOLINGS


def target_of(audio: torch.Tensor, pooling: str) -> torch.Tensor:
    """Contrastive target of a window: the mean of its audio frames (``mean``) or the frames (``none``).

    Parameters
    ----------
    audio : Tensor, shape (batch, n_features, n_times), or (batch, n_features) already time-averaged
        (training batches of a ``ShardDataModule(audio_pooling='mean')``).
    pooling : {'mean', 'none'}
        ``'mean'``: one target per window (arXiv 2512.15830); ``'none'``: time-resolved (brainmagick).

    Returns
    -------
    target : Tensor, shape (batch, n_features) or (batch, n_features, n_times), float32

    Raises
    ------
    ValueError
        Unknown ``pooling``, or time-averaged audio with ``pooling='none'`` (the frames are needed).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if audio.ndim == 2:
        if pooling != "mean":
            raise ValueError(
                f"pooling={pooling!r} needs audio frames (batch, n_features, n_times), got time-averaged audio "
                f"{tuple(audio.shape)}; use data audio_pooling=None"
            )
        return audio.float()
    audio = audio.float()
    return audio.mean(dim=-1) if pooling == "mean" else audio
