"""Audio -> stimulus features that drive the simulated brain: log-mel band energies and the broadband envelope.

Frames are centred on ``k * hop / sfreq`` seconds (``hop = round(sfreq / frame_rate)``), so frame ``k`` describes
the audio around that instant and a causal kernel applied on the frame grid gives a response that lags the sound.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURE_FRAME_RATE", "mel_filterbank", "stimulus_features", "feature_names"]

#: Nominal frame rate of the stimulus features (Hz).
FEATURE_FRAME_RATE = 100.0


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, float) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, float) / 2595.0) - 1.0)


def mel_filterbank(
    sfreq: float, n_fft: int, n_mels: int, fmin: float = 60.0, fmax: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Triangular mel filterbank (HTK mel scale).

    Parameters
    ----------
    sfreq : float
        Audio sampling rate (Hz).
    n_fft : int
        FFT length (samples).
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Band edges (Hz); ``fmax`` defaults to ``min(7600, sfreq / 2)``.

    Returns
    -------
    fb : ndarray, shape (n_mels, n_fft // 2 + 1)
        Filter weights.
    edges : ndarray, shape (n_mels + 2,)
        Lower edge, centres, upper edge of the bands (Hz).

    References
    ----------
    Young et al., The HTK Book (mel scale ``2595 log10(1 + f / 700)``).
    """
    fmax = min(7600.0, sfreq / 2.0) if fmax is None else fmax
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, ce, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(ce - lo, 1e-9)
        down = (hi - freqs) / max(hi - ce, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb, edges


def feature_names(n_mels: int) -> list[str]:
    """Names of the rows of :func:`stimulus_features`: ``logmel00..`` then ``envelope``."""
    return [f"logmel{m:02d}" for m in range(n_mels)] + ["envelope"]


def stimulus_features(
    audio: np.ndarray, sfreq: float, n_mels: int = 12, frame_rate: float = FEATURE_FRAME_RATE, chunk_frames: int = 20000
) -> tuple[np.ndarray, float]:
    """Log-mel band energies and log broadband envelope on a ~100 Hz frame grid.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        Waveform (full scale 1).
    sfreq : float
        Audio sampling rate (Hz).
    n_mels : int
        Number of mel bands.
    frame_rate : float
        Nominal frame rate (Hz); the hop is ``round(sfreq / frame_rate)`` samples.
    chunk_frames : int
        Frames transformed at once (bounds memory).

    Returns
    -------
    features : ndarray, shape (n_features, n_frames), float64
        ``n_mels`` rows of ``log10`` mel power, then the ``log10`` RMS of the frame; ``n_features = n_mels + 1``,
        ``n_frames = n_samples // hop``. Frame ``k`` is centred at ``k * hop / sfreq`` s.
    frame_rate : float
        Actual frame rate ``sfreq / hop`` (Hz).
    """
    audio = np.asarray(audio, dtype=np.float32)
    hop = max(1, int(round(sfreq / frame_rate)))
    n_fft = int(2 ** np.ceil(np.log2(0.025 * sfreq)))
    n_frames = audio.shape[0] // hop
    fb, _ = mel_filterbank(sfreq, n_fft, n_mels)
    fb = fb.astype(np.float32)
    padded = np.pad(audio, (n_fft // 2, n_fft // 2 + hop))
    window = np.hanning(n_fft).astype(np.float32)
    out = np.empty((n_mels + 1, n_frames))
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        view = np.lib.stride_tricks.as_strided(
            padded[start * hop :], shape=(stop - start, n_fft), strides=(hop * padded.strides[0], padded.strides[0])
        )
        power = np.abs(np.fft.rfft(view * window, axis=1)) ** 2
        out[:n_mels, start:stop] = np.log10(power @ fb.T + 1e-10).T
        rms = np.sqrt(np.mean(view.astype(np.float64) ** 2, axis=1))
        out[n_mels, start:stop] = np.log10(rms + 1e-6)
    return out, sfreq / hop
