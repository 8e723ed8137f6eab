"""Frozen audio targets: the extractor interface and their alignment to the brain sampling rate."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ieegfm.io.audio import read_segment


class AudioFeatureExtractor(Protocol):
    """What the packer needs from an audio feature extractor.

    Attributes
    ----------
    name : str
        ``logmel`` or ``wav2vec2``.
    n_features : int
        Feature dimension (``n_features`` of ``(n_features, n_frames)``).
    sfreq : int
        Audio rate the extractor expects (Hz).
    context_s : float
        Audio context of one forward pass (s): features near a time depend on at most this much audio.
    chunk_s : float
        Length of the independent audio segments the packer feeds to :meth:`compute` (s).
    """

    name: str
    n_features: int
    sfreq: int
    context_s: float
    chunk_s: float

    def compute(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features of one segment.

        Parameters
        ----------
        audio : ndarray, shape (n_samples,)
            Mono audio at ``sfreq``.

        Returns
        -------
        features : ndarray, shape (n_features, n_frames)
            float32.
        frame_times : ndarray, shape (n_frames,)
            Centre of each frame in seconds from the segment start.
        """
        ...

    def config(self) -> dict:
        """JSON-able description for the shard manifest."""
        ...


def interpolation_weights(src_times: np.ndarray, dst_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear-interpolation indices and weights from a sorted time grid to query times (clamped at the ends).

    Returns
    -------
    index : ndarray of int, shape (n_dst,)
        Left neighbour in ``src_times``.
    weight : ndarray, shape (n_dst,)
        Weight of the right neighbour (``index + 1``), in [0, 1].
    """
    n = len(src_times)
    if n == 1:
        return np.zeros(len(dst_times), dtype=int), np.zeros(len(dst_times))
    idx = np.clip(np.searchsorted(src_times, dst_times, side="right") - 1, 0, n - 2)
    w = (dst_times - src_times[idx]) / (src_times[idx + 1] - src_times[idx])
    return idx, np.clip(w, 0.0, 1.0)


def targets_at(
    extractor: AudioFeatureExtractor,
    path: str | Path,
    times: np.ndarray,
    out: np.ndarray,
    chunk_s: float,
    batch_chunks: int = 1,
) -> np.ndarray:
    """Audio features at arbitrary times of an audio file, computed chunk by chunk.

    The audio is cut into consecutive ``chunk_s`` segments (the model's context, 30 s for wav2vec 2.0 as in
    arXiv 2512.15830); each segment's frames are linearly interpolated to the requested times inside it.
    ``batch_chunks`` segments go through the extractor together (one batched forward pass on a GPU) when it
    offers ``compute_batch``. Memory is bounded by ``batch_chunks`` segments whatever the file length.

    Parameters
    ----------
    extractor : AudioFeatureExtractor
    path : str | Path
        Audio file.
    times : ndarray, shape (n_out,)
        Sorted query times in seconds from the audio file start (e.g. brain samples ``k / 40``).
    out : ndarray, shape (n_features, n_out)
        Filled in place (may be a memory map); returned.
    chunk_s : float
        Segment length (s).
    batch_chunks : int
        Segments per extractor call.
    """
    if len(times) == 0:
        return out
    first = int(np.floor(times[0] / chunk_s))
    last = int(np.floor(times[-1] / chunk_s))
    jobs = []
    for c in range(first, last + 1):
        lo, hi = np.searchsorted(times, [c * chunk_s, (c + 1) * chunk_s], side="left")
        if hi > lo:
            jobs.append((c * chunk_s, lo, hi))
    for b in range(0, len(jobs), max(batch_chunks, 1)):
        batch = jobs[b : b + max(batch_chunks, 1)]
        audios = [read_segment(path, t0, t0 + chunk_s, extractor.sfreq) for t0, _, _ in batch]
        if len(audios) > 1 and hasattr(extractor, "compute_batch"):
            results = extractor.compute_batch(audios)
        else:
            results = [extractor.compute(a) for a in audios]
        for (t0, lo, hi), (feats, ftimes) in zip(batch, results):
            idx, w = interpolation_weights(ftimes, times[lo:hi] - t0)
            nxt = np.minimum(idx + 1, feats.shape[1] - 1)
            out[:, lo:hi] = feats[:, idx] * (1.0 - w) + feats[:, nxt] * w
    return out
