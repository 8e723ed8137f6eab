"""Band envelopes of iEEG, streamed: high gamma and Neuro2Semantic's six bands (``preprocess.bands``).

Cortical speech responses are strongest in the high-gamma envelope (70-170 Hz analytic amplitude), which the
0.05-50 Hz signal at 40 Hz (:class:`~ieegfm.preprocess.StreamingPreprocessor`, band ``lfp``) discards. The chain
here gives, for each requested band, the Hilbert envelope of the band-passed, notched, re-referenced signal at the
output rate, chunk by chunk, zero-phase, and the same whatever the chunk sizes:

1. **Decimation** by an integer factor ``decim`` to ``sfreq_mid >= max(2.5 f_top, 4 sfreq_out)``, ``f_top`` the
   highest frequency a requested band passes (its upper edge plus transition): a Kaiser-window low-pass (100 dB), polyphase
   (:func:`scipy.signal.upfirdn`), cheap because it is the only stage at the input rate.
2. **The montage** (a linear map of channels, ``mix``): it commutes with stage 1, not with the envelope.
3. **Analytic band-pass** per band at ``sfreq_mid``: the window-method FIR whose ideal response is 2 on the pass
   band's positive frequencies and 0 elsewhere, ``h[n] = w[n] (e^{2i pi f2 n} - e^{2i pi f1 n}) / (i pi n)``; its real
   part is the Hamming-window band-pass that MNE designs (edges at -6 dB: ``l_freq - l_trans/2``,
   ``h_freq + h_trans/2``; MNE's ``'auto'`` transition bandwidths and length ``3.3 / min(l_trans, h_trans)``), so
   the modulus of its output is the Hilbert envelope of the band-passed signal (a complex filter and a Hilbert
   transform of the band-passed signal are the same operation, Bruns 2004 [2]_). Line harmonics near the band are
   removed by band-stops (MNE's notch widths) convolved into the same FIR (linear-phase FIRs, as Widmann et al. [3]_
   advise).
4. **Resampling** of the envelopes to ``sfreq_out`` with the anti-aliased resampler of
   :class:`~ieegfm.preprocess.StreamingPreprocessor` (no notch, no high-pass; low-pass at ``0.45 sfreq_out``).

Band edges (Hz) are :data:`BAND_EDGES`: the canonical delta ... gamma, and high gamma 70-170 Hz (the seed paper's
and Neuro2Semantic's [1]_ band).

References
----------
.. [1] Shams, S. et al. (2025). Neuro2Semantic: a transfer learning framework for semantic reconstruction of
       continuous language from human intracranial EEG. Interspeech 2025 (bands delta ... highgamma).
.. [2] Bruns, A. (2004). Fourier-, Hilbert- and wavelet-based signal analysis: are they really different
       approaches? Journal of Neuroscience Methods, 137, 321-332.
.. [3] Widmann, A., Schröger, E., & Maess, B. (2015). Digital filter design for electrophysiological data - a
       practical approach. J. Neurosci. Methods, 250, 34-46.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import fftconvolve, firwin, kaiserord, oaconvolve, upfirdn

from ieegfm.conventions import BANDS, band_channel_name, strip_band

from ._validate import _check_float
from .filters import (
    _MIN_OVERSAMPLE,
    _NOTCH_TRANS,
    _STAGE1_ATTEN_DB,
    StreamingPreprocessor,
    _delta_minus,
    _hamming_len,
    _hold_nonfinite,
    _lowpass,
)

__all__ = ["BAND_EDGES", "BANDS", "StreamingEnvelopes", "band_channel_name", "check_bands", "min_sfreq", "strip_band"]

#: Envelope bands (Hz): pass band ``(l_freq, h_freq)`` of each of ``ieegfm.conventions.BANDS[1:]``.
BAND_EDGES: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 70.0),
    "highgamma": (70.0, 170.0),
}


_MID_OVERSAMPLE = 2.5  # sfreq_mid >= this * f_top


def check_bands(bands: Sequence[str]) -> list[str]:
    """The bands as a list, checked: known names (:data:`BANDS`), none twice, at least one.

    Raises
    ------
    ValueError
        An unknown or repeated band, or none.
    """
    bands = [str(b) for b in bands]
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise ValueError(f"unknown band(s) {unknown}; expected some of {list(BANDS)}")
    if len(set(bands)) != len(bands) or not bands:
        raise ValueError(f"bands={bands}: expected at least one band, each once")
    return bands


def min_sfreq(bands: Sequence[str]) -> float:
    """The input rate (Hz) the envelope ``bands`` need: above twice the highest frequency one passes (0 for
    ``lfp`` alone)."""
    return max([2.0 * (BAND_EDGES[b][1] + max(0.25 * BAND_EDGES[b][1], 2.0)) for b in bands if b != "lfp"] or [0.0])


def _auto_trans(l_freq: float, h_freq: float, nyq: float) -> tuple[float, float]:
    """MNE's ``'auto'`` transition bandwidths (Hz) of a band-pass."""
    return min(max(0.25 * l_freq, 2.0), l_freq), min(max(0.25 * h_freq, 2.0), nyq - h_freq)


def _analytic_bandpass(f1: float, f2: float, n_taps: int, sfreq: float) -> np.ndarray:
    """Window-method FIR (Hamming, odd ``n_taps``) of the response 2 on ``(f1, f2)`` Hz, 0 elsewhere (complex)."""
    c = n_taps // 2
    n = np.arange(-c, c + 1, dtype=np.float64)
    a, b = f1 / sfreq, f2 / sfreq
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (np.exp(2j * np.pi * b * n) - np.exp(2j * np.pi * a * n)) / (1j * np.pi * n)
    h[c] = 2.0 * (b - a)
    return h * np.hamming(n_taps)


class _StreamingFIR:
    """Zero-phase FIR ``y[m] = sum_j h[j] x[m d + c - j]`` (``h`` of odd length ``2c + 1``), streamed.

    Constant padding by the edge value before the first and after the last sample; the outputs are those at
    input samples ``0, d, 2d, ...`` (``ceil(n_in / d)`` in all), the same whatever the chunks.
    """

    def __init__(self, h: np.ndarray, decim: int) -> None:
        c = len(h) // 2
        if decim > 1:  # half-length a multiple of decim, so that upfirdn's phase lands on our samples
            pad = -c % decim
            h = np.pad(h, pad)
            c += pad
        self.h, self.d, self.c = h, int(decim), c
        self.reset()

    def reset(self) -> None:
        self.n_in = 0
        self._buf = None  # x_ext[_xs:]
        self._xs = 0
        self._m = 0  # next output

    def process(self, x: np.ndarray) -> np.ndarray:
        if self._buf is None:
            self._xs = -self.c
            self._buf = np.concatenate([np.repeat(x[:, :1], self.c, axis=1), x], axis=1)
        else:
            self._buf = np.concatenate([self._buf, x], axis=1)
        self.n_in += x.shape[1]
        return self._emit((self._xs + self._buf.shape[1] - 1 - self.c) // self.d + 1)

    def flush(self) -> np.ndarray:
        if self._buf is None:
            return np.zeros((0, 0), self.h.dtype)
        m_end = (self.n_in - 1) // self.d + 1
        n_pad = (m_end - 1) * self.d + self.c - (self._xs + self._buf.shape[1] - 1)
        if n_pad > 0:
            self._buf = np.concatenate([self._buf, np.repeat(self._buf[:, -1:], n_pad, axis=1)], axis=1)
        out = self._emit(m_end)
        self.reset()
        return out

    def _emit(self, m_end: int) -> np.ndarray:
        d, c, m0 = self.d, self.c, self._m
        if m_end <= m0:
            return np.zeros((self._buf.shape[0], 0), np.result_type(self._buf, self.h))
        seg = self._buf[:, m0 * d - c - self._xs : (m_end - 1) * d + c + 1 - self._xs]
        if d > 1:
            first = 2 * c // d
            y = upfirdn(self.h, seg, 1, d, axis=1)[:, first : first + m_end - m0]
        else:
            y = oaconvolve(seg, self.h[None, :], mode="valid", axes=1)
        keep = m_end * d - c - self._xs
        self._buf = self._buf[:, keep:].copy()
        self._xs += keep
        self._m = m_end
        return y


class StreamingEnvelopes:
    """Hilbert envelopes of band-passed, re-referenced iEEG at ``sfreq_out``, chunk by chunk.

    Feed consecutive chunks of one recording to :meth:`process` and call :meth:`flush` at the end, as with
    :class:`~ieegfm.preprocess.StreamingPreprocessor`: output sample ``k`` is at time ``k / sfreq_out`` (s) from
    the first input sample, the concatenated outputs do not depend on the chunk sizes (to float rounding), there
    are ``ceil(n_in * sfreq_out / sfreq)`` of them, and the state carried is O(filter length).

    Parameters
    ----------
    sfreq : float
        Input sampling rate (Hz); must exceed twice the highest frequency a band passes (``h_freq + h_trans``;
        212.5 Hz for ``highgamma``).
    n_chans : int
        Input channels.
    bands : sequence of str
        Envelope bands, keys of :data:`BAND_EDGES` (not ``lfp``), in the order of the output's row blocks.
    line_freq : float | None
        Power-line frequency (Hz): harmonics within a band's pass band and transitions are notched (MNE's notch
        widths ``freq / 200``, 1 Hz transition). ``None`` or 0: no notch.
    sfreq_out : float
        Output rate (Hz); the envelopes are low-passed at ``0.45 sfreq_out`` before resampling.
    mix : callable, optional
        The montage: ``(n_chans, n) -> (n_mixed, n)`` array, linear in its input; default: identity.

    Attributes
    ----------
    decim : int
        Stage-1 decimation factor; ``sfreq_mid = sfreq / decim`` is the rate of the band-passes.
    support_s : float
        Half-width (s) of the support of stages 1 and 3 (without the notches): an output within ``support_s``
        (plus the resampler's) of a non-finite input sample is marked invalid.

    Raises
    ------
    ValueError
        An unknown band, ``lfp`` among ``bands``, or a band the input rate cannot hold.

    Notes
    -----
    Non-finite input samples are held at the channel's last finite value (as in ``StreamingPreprocessor``) and
    the outputs whose support contains one are invalid. The output rows are band-major: all channels of
    ``bands[0]``, then of ``bands[1]``, ...; envelopes are in the input's unit (V), non-negative up to the
    resampler's ripple.
    """

    def __init__(
        self,
        sfreq: float,
        n_chans: int,
        bands: Sequence[str],
        line_freq: float | None = 60.0,
        sfreq_out: float = 40.0,
        mix: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.sfreq = _check_float("sfreq", sfreq, low=0.0)
        self.n_chans = int(n_chans)
        self.bands = check_bands(bands)
        if "lfp" in self.bands:
            raise ValueError("'lfp' is not an envelope band: StreamingPreprocessor computes it")
        self.line_freq = None if not line_freq else _check_float("line_freq", line_freq, low=0.0)
        self.sfreq_out = _check_float("sfreq_out", sfreq_out, low=0.0, high=self.sfreq, high_inclusive=True)
        self.mix = mix
        nyq = self.sfreq / 2.0
        edges = {}
        for band in self.bands:
            lo, hi = BAND_EDGES[band]
            if self.sfreq <= min_sfreq([band]):
                raise ValueError(
                    f"band {band!r} ({lo:g}-{hi:g} Hz) needs sfreq > {min_sfreq([band]):g} Hz, got {self.sfreq:g} Hz"
                )
            edges[band] = (lo, hi, *_auto_trans(lo, hi, nyq))
        f_top = max(hi + h_tb for _, hi, _, h_tb in edges.values())
        mid_min = max(_MID_OVERSAMPLE * f_top, _MIN_OVERSAMPLE * self.sfreq_out)  # the envelope's rate, too
        self.decim = max(1, int(np.floor(self.sfreq / mid_min)))
        self.sfreq_mid = self.sfreq / self.decim
        c1 = 0
        if self.decim > 1:
            width = self.sfreq_mid - 2 * f_top  # pass edge f_top, stop edge sfreq_mid - f_top
            n_taps, beta = kaiserord(_STAGE1_ATTEN_DB, width / nyq)
            n_taps += 1 - n_taps % 2
            h1 = firwin(n_taps, (self.sfreq_mid / 2.0), window=("kaiser", beta), fs=self.sfreq)
            self._stage1 = _StreamingFIR((h1 / h1.sum()).astype(np.float32), self.decim)
            c1 = n_taps // 2
        else:
            self._stage1 = None
        self._stage3, half3 = [], 0
        for lo, hi, l_tb, h_tb in edges.values():
            n_taps = _hamming_len(min(l_tb, h_tb), self.sfreq_mid)
            h = _analytic_bandpass(lo - l_tb / 2.0, hi + h_tb / 2.0, n_taps, self.sfreq_mid)
            half3 = max(half3, n_taps // 2)
            for freq in self._notches(lo - l_tb, hi + h_tb):
                tb_2 = _NOTCH_TRANS / 2.0
                n_notch = _hamming_len(tb_2, self.sfreq_mid)
                half = freq / 400.0 + tb_2 / 2.0
                stop = _lowpass(freq + half, n_notch, self.sfreq_mid) - _lowpass(freq - half, n_notch, self.sfreq_mid)
                h = fftconvolve(h, _delta_minus(stop))
            self._stage3.append(_StreamingFIR(h.astype(np.complex64), 1))
        self.support_s = c1 / self.sfreq + half3 / self.sfreq_mid
        self.n_mixed = self.n_chans if mix is None else int(mix(np.zeros((self.n_chans, 1), np.float32)).shape[0])
        self.reset()

    def _notches(self, f_lo: float, f_hi: float) -> list[float]:
        """Line harmonics within ``[f_lo, f_hi]`` Hz that the intermediate rate holds."""
        if self.line_freq is None:
            return []
        freqs = self.line_freq * np.arange(1, int(f_hi // self.line_freq) + 1)
        nyq = self.sfreq_mid / 2.0
        return [float(f) for f in freqs if f_lo <= f <= f_hi and f + f / 400.0 + _NOTCH_TRANS / 2.0 < nyq]

    def reset(self) -> None:
        """Forget the stream."""
        self.n_in = 0
        self._ref = None
        self._hold = None
        self._bad = np.zeros((2, 0))  # bad input intervals (s), dilated by support_s
        self._t_mid = 0  # next intermediate sample handed to the resampler
        if self._stage1 is not None:
            self._stage1.reset()
        for fir in self._stage3:
            fir.reset()
        self._pending = [np.zeros((self.n_mixed, 0), np.float32) for _ in self._stage3]
        self._n_out = 0
        self._resample = StreamingPreprocessor(
            self.sfreq_mid,
            len(self.bands) * self.n_mixed,
            line_freq=None,
            l_freq=None,
            h_freq=None,
            sfreq_out=self.sfreq_out,
        )

    def process(self, chunk) -> tuple[np.ndarray, np.ndarray]:
        """Consume one chunk and return the envelopes now complete.

        Parameters
        ----------
        chunk : array-like, shape (n_chans, n_times)
            Next samples (V); may contain NaN.

        Returns
        -------
        out : ndarray of float32, shape (n_bands * n_mixed, n_out)
            Envelopes (V), band-major rows; ``n_out`` may be 0.
        valid : ndarray of bool, shape (n_out,)
            False where an output depends on a non-finite input sample.

        Raises
        ------
        ValueError
            A chunk that is not ``(n_chans, n_times)`` of reals.
        """
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[0] != self.n_chans:
            raise ValueError(f"chunk must have shape (n_chans={self.n_chans}, n_times), got {x.shape}.")
        if x.dtype.kind not in "fiu":
            raise ValueError(f"chunk must be a real float array, got dtype {x.dtype}.")
        if x.shape[1] == 0:
            return self._empty()
        if self._ref is None:
            first = x[:, 0].astype(np.float64)
            self._ref = np.where(np.isfinite(first), first, 0.0)
            self._hold = np.zeros(self.n_chans, np.float32)
        x32 = np.empty(x.shape, np.float32)
        np.subtract(x, self._ref[:, None], out=x32, casting="same_kind")
        x32, bad = _hold_nonfinite(x32, self._hold)
        self._hold = x32[:, -1].copy()
        if bad is not None:
            self._add_bad(bad)
        self.n_in += x.shape[1]
        z = self._stage1.process(x32) if self._stage1 is not None else x32
        return self._bands(z, final=False)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the remaining envelopes (edge-padded end of stream) and reset the state."""
        if self.n_in == 0:
            self.reset()
            return self._empty()
        z = self._stage1.flush() if self._stage1 is not None else np.zeros((self.n_chans, 0), np.float32)
        out = self._bands(z, final=True)
        self.reset()
        return out

    # ------------------------------------------------------------------ internals
    def _empty(self):
        return np.zeros((len(self.bands) * self.n_mixed, 0), np.float32), np.zeros(0, bool)

    def _add_bad(self, bad: np.ndarray) -> None:
        edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
        start = (np.flatnonzero(edges == 1) + self.n_in) / self.sfreq - self.support_s
        stop = (np.flatnonzero(edges == -1) - 1 + self.n_in) / self.sfreq + self.support_s
        self._bad = np.concatenate([self._bad, np.stack([start, stop])], axis=1)

    def _bands(self, z: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """Stages 2-4 on intermediate-rate samples ``z`` (n_chans, n)."""
        z = np.asarray(self.mix(z), dtype=np.float32) if self.mix is not None else z
        for i, fir in enumerate(self._stage3):  # the band FIRs differ in length: keep what one has ahead
            parts = [self._pending[i]]
            if z.shape[1]:
                parts.append(np.abs(fir.process(z)))
            if final and fir.n_in:
                parts.append(np.abs(fir.flush()))
            self._pending[i] = np.concatenate(parts, axis=1)
        n = min(p.shape[1] for p in self._pending)
        e = np.concatenate([p[:, :n] for p in self._pending], axis=0).astype(np.float64)
        self._pending = [p[:, n:] for p in self._pending]
        if self._bad.shape[1] and n:
            t = (self._t_mid + np.arange(n)) / self.sfreq_mid
            tainted = ((t[:, None] >= self._bad[0]) & (t[:, None] <= self._bad[1])).any(axis=1)
            e[:, tainted] = np.nan
            self._bad = self._bad[:, self._bad[1] >= t[-1]]
        self._t_mid += n
        out, valid = self._resample.process(e) if n else self._empty()
        if final:
            rest, rest_valid = self._resample.flush()
            out, valid = np.concatenate([out, rest], axis=1), np.concatenate([valid, rest_valid])
        n_total = int(np.ceil(self.n_in * self.sfreq_out / self.sfreq - 1e-9))
        n_keep = max(0, min(out.shape[1], n_total - self._n_out)) if final else out.shape[1]
        self._n_out += n_keep  # the intermediate grid may hold one more output at the end: dropped
        return out[:, :n_keep].astype(np.float32), valid[:n_keep]
