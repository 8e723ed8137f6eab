"""Throughput of ieegfm's StreamingPreprocessor against MNE's notch + filter + resample chain.

Usage: ``python tools/bench_preprocess.py [n_chans] [sfreq] [duration_s] [chunk_s]``
(defaults 64 2048 300 60). Prints seconds, throughput ratio and the correlation of the two
outputs after band-passing both to 0.5-18 Hz (first and last 10 s skipped). Never gates CI.
"""

from __future__ import annotations

import sys
import time

import mne
import numpy as np

from ieegfm.preprocess import StreamingPreprocessor


def main(n_chans: int = 64, sfreq: float = 2048.0, duration_s: float = 300.0, chunk_s: float = 60.0):
    rng = np.random.default_rng(0)
    n_times = int(duration_s * sfreq)
    spec = np.fft.rfft(rng.standard_normal((n_chans, n_times)), axis=1)
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    spec /= np.sqrt(np.maximum(freqs, 0.1))
    data = np.fft.irfft(spec, n=n_times, axis=1) * 1e-5 + 1e-3
    data += 2e-5 * np.sin(2 * np.pi * 60.0 * np.arange(n_times) / sfreq)

    t0 = time.perf_counter()
    pp = StreamingPreprocessor(sfreq, n_chans)
    step = int(chunk_s * sfreq)
    outs = [pp.process(data[:, i : i + step])[0] for i in range(0, n_times, step)]
    outs.append(pp.flush()[0])
    ours = np.concatenate(outs, axis=1)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    raw = mne.io.RawArray(data, mne.create_info(n_chans, sfreq, "seeg"), verbose=False)
    raw.notch_filter(np.arange(60.0, sfreq / 2, 60.0), verbose=False)
    raw.filter(0.05, 50.0, verbose=False)
    raw.resample(40.0, verbose=False)
    ref = raw.get_data()
    t_mne = time.perf_counter() - t0

    n = min(ours.shape[1], ref.shape[1])
    band = [mne.filter.filter_data(a[:, :n].astype(float), 40.0, 0.5, 18.0, verbose=False) for a in (ours, ref)]
    sl = slice(400, n - 400)
    corr = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(band[0][:, sl], band[1][:, sl])])
    print(f"{n_chans} ch x {sfreq:g} Hz x {duration_s:g} s, chunks of {chunk_s:g} s")
    print(f"ieegfm StreamingPreprocessor: {t_ours:7.2f} s ({duration_s / t_ours:8.0f}x real time)")
    print(f"MNE notch+filter+resample:    {t_mne:7.2f} s ({duration_s / t_mne:8.0f}x real time)")
    print(f"throughput ratio (MNE time / ieegfm time): {t_mne / t_ours:.1f}")
    print(f"mean correlation (0.5-18 Hz): {corr:.5f}; outputs {ours.shape} vs {ref.shape}")


if __name__ == "__main__":
    main(*[float(a) if i else int(a) for i, a in enumerate(sys.argv[1:])])
