"""Log-mel spectrogram targets (the classic baseline feature)."""

from __future__ import annotations

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank


class LogMel:
    """Log-mel spectrogram: 25 ms Hann windows, 10 ms hop, Slaney mel filterbank, natural log.

    Parameters
    ----------
    n_mels : int
        Number of mel bands (``n_features``).
    sfreq : int
        Audio rate (Hz).
    f_min, f_max : float
        Filterbank range (Hz); ``f_max`` defaults to ``sfreq / 2``.
    chunk_s : float
        Segment length used by the packer (s); the context of one frame is only 25 ms.

    Notes
    -----
    The filterbank comes from :func:`transformers.audio_utils.mel_filter_bank` (Slaney scale and norm, as
    librosa); the STFT is :func:`torch.stft` with ``center=True``, so frame ``j`` is centred at
    ``j * hop / sfreq`` seconds.
    """

    name = "logmel"

    def __init__(
        self,
        n_mels: int = 40,
        sfreq: int = 16000,
        f_min: float = 20.0,
        f_max: float | None = None,
        chunk_s: float = 30.0,
    ) -> None:
        if n_mels < 1:
            raise ValueError(f"audio.n_mels must be >= 1, got {n_mels}")
        self.n_features = int(n_mels)
        self.sfreq = int(sfreq)
        self.n_fft = int(round(0.025 * sfreq))
        self.hop = int(round(0.010 * sfreq))
        self.context_s = self.n_fft / sfreq
        self.chunk_s = chunk_s
        self.f_min, self.f_max = f_min, (f_max or sfreq / 2)
        fb = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=f_min,
            max_frequency=self.f_max,
            sampling_rate=sfreq,
            norm="slaney",
            mel_scale="slaney",
        )
        self._fb = torch.from_numpy(np.ascontiguousarray(fb.T, dtype=np.float32))  # (n_mels, n_freqs)
        self._window = torch.hann_window(self.n_fft)

    def compute(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel features ``(n_mels, n_frames)`` and frame centres (s) of a mono segment ``(n_samples,)``."""
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        spec = (
            torch.stft(x, n_fft=self.n_fft, hop_length=self.hop, window=self._window, center=True, return_complex=True)
            .abs()
            .pow(2)
        )
        mel = torch.log(self._fb @ spec + 1e-6)
        times = np.arange(mel.shape[1]) * self.hop / self.sfreq
        return mel.numpy(), times

    def config(self) -> dict:
        """JSON-able description for the manifest."""
        return {
            "features": "logmel",
            "n_mels": self.n_features,
            "sfreq": self.sfreq,
            "n_fft": self.n_fft,
            "hop": self.hop,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "chunk_s": self.chunk_s,
        }
