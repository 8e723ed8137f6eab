"""StreamingEnvelopes: the envelope it recovers, chunk invariance, agreement with MNE, line noise, NaN, bad input."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from ieegfm.conventions import band_channel_name, strip_band
from ieegfm.preprocess import BAND_EDGES, StreamingEnvelopes, apply_montage, min_sfreq


def _envelopes(se: StreamingEnvelopes, x: np.ndarray, sizes=None):
    outs, valids, start = [], [], 0
    for size in sizes or [x.shape[1]]:
        out, valid = se.process(x[:, start : start + size])
        assert out.shape == (se.n_mixed * len(se.bands), valid.shape[0])
        outs.append(out)
        valids.append(valid)
        start += size
    out, valid = se.flush()
    return np.concatenate([*outs, out], axis=1), np.concatenate([*valids, valid])


def _carrier(sfreq: float, seconds: float):
    """Channel 0: a 100-Hz carrier at amplitude 1 + 0.5 sin(2 pi 0.5 t) (10 uV) on a DC offset; channel 1: white
    noise; channel 2: 60 + 120 Hz line noise and a 10-Hz rhythm, nothing in 70-170 Hz but the 120-Hz harmonic."""
    rng = np.random.default_rng(0)
    t = np.arange(int(sfreq * seconds)) / sfreq
    amp = 1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)
    line = np.sin(2 * np.pi * 60 * t) + 0.5 * np.sin(2 * np.pi * 120 * t + 1.0)
    return 1e-5 * np.stack(
        [amp * np.sin(2 * np.pi * 100 * t) + 100.0, rng.standard_normal(t.size), line + np.sin(2 * np.pi * 10 * t)]
    )


@pytest.mark.parametrize("sfreq", [2048.0, 999.41, 512.0])
def test_recovers_the_envelope_and_notches_the_line(sfreq):
    x = _carrier(sfreq, 40.0)
    se = StreamingEnvelopes(sfreq, 3, ["highgamma", "alpha"])
    out, valid = _envelopes(se, x)
    assert out.shape == (6, int(np.ceil(x.shape[1] * 40.0 / sfreq - 1e-9))) and valid.all()
    t = np.arange(out.shape[1]) / 40.0
    inner = (t > 2) & (t < 38)
    truth = 1 + 0.5 * np.sin(2 * np.pi * 0.5 * t[inner])
    np.testing.assert_allclose(out[0, inner] / 1e-5, truth, atol=0.01)  # the carrier's amplitude, DC ignored
    assert out[2, inner].max() < 0.01e-5  # the 120-Hz harmonic inside high gamma is notched
    np.testing.assert_allclose(np.median(out[5, inner]) / 1e-5, 1.0, atol=0.01)  # the 10-Hz rhythm in alpha
    assert out[3, inner].max() < 0.01e-5  # no alpha in the carrier


def test_chunk_invariance():
    sfreq = 2048.0
    x = _carrier(sfreq, 30.0)
    se = StreamingEnvelopes(sfreq, 3, ["highgamma", "delta"])
    ref, ref_valid = _envelopes(se, x)
    sizes = np.random.default_rng(1).integers(1, 3000, 200)
    sizes = sizes[np.cumsum(sizes) <= x.shape[1]].tolist()
    sizes.append(x.shape[1] - sum(sizes))
    got, valid = _envelopes(se, x, sizes)
    np.testing.assert_array_equal(valid, ref_valid)
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


@pytest.mark.parametrize("band", ["highgamma", "beta"])
def test_agrees_with_mne_filter_and_hilbert(band):
    """MNE's chain in memory: notch_filter, filter(l_freq, h_freq), apply_hilbert(envelope=True), resample(40)."""
    sfreq, n = 2048.0, int(2048 * 60)
    rng = np.random.default_rng(2)
    lo, hi = BAND_EDGES[band]
    mod = 1 + np.abs(np.cumsum(rng.standard_normal(n)) / 300)
    inband = sosfiltfilt(butter(4, [lo, hi], "bandpass", fs=sfreq, output="sos"), rng.standard_normal((3, n)))
    x = 1e-5 * (rng.standard_normal((3, n)) + 3 * inband * mod + np.sin(2 * np.pi * 60 * np.arange(n) / sfreq))
    ours, _ = _envelopes(StreamingEnvelopes(sfreq, 3, [band]), x)
    raw = mne.io.RawArray(x.copy(), mne.create_info(3, sfreq, "seeg"), verbose="error")
    raw.notch_filter(np.arange(60, 1000, 60), picks="all", verbose="error")
    raw.filter(lo, hi, picks="all", verbose="error")
    raw.apply_hilbert(envelope=True, picks="all", verbose="error")
    ref = raw.resample(40, verbose="error").get_data()
    assert ours.shape == ref.shape
    lp = butter(4, 15, fs=40, output="sos")  # our envelope is low-passed at 18 Hz, MNE's resample cuts at 20
    inner = slice(100, ours.shape[1] - 100)
    for a, b in zip(ours, ref):
        r = np.corrcoef(sosfiltfilt(lp, a)[inner], sosfiltfilt(lp, b)[inner])[0, 1]
        assert r > 0.99, r
        assert 0.97 < np.median(a[inner] / b[inner]) < 1.03  # the same amplitude (V)


def test_montage_before_the_envelope():
    """The envelope of a bipolar difference, not the difference of envelopes: two contacts with the same carrier
    in opposite phase give twice the carrier, in phase nothing."""
    sfreq = 1024.0
    t = np.arange(int(sfreq * 20)) / sfreq
    c = 1e-5 * np.sin(2 * np.pi * 100 * t)
    x = np.stack([c, -c, c])
    names = ["LA1", "LA2", "LA3"]
    mix = lambda y: apply_montage(y, names, "bipolar")[0]  # noqa: E731
    se = StreamingEnvelopes(sfreq, 3, ["highgamma"], mix=mix)
    out, _ = _envelopes(se, x)
    assert se.n_mixed == 2 and out.shape[0] == 2
    inner = slice(40, out.shape[1] - 40)
    np.testing.assert_allclose(out[0, inner] / 1e-5, 2.0, atol=0.02)  # LA1 - LA2 = 2c
    np.testing.assert_allclose(out[1, inner] / 1e-5, 2.0, atol=0.02)  # LA2 - LA3 = -2c


def test_nonfinite_input_is_held_and_marked():
    sfreq = 2048.0
    x = _carrier(sfreq, 30.0)
    x[1, int(15 * sfreq) : int(15 * sfreq) + 10] = np.nan
    se = StreamingEnvelopes(sfreq, 3, ["highgamma"])
    out, valid = _envelopes(se, x)
    assert np.isfinite(out).all()
    bad = np.flatnonzero(~valid) / 40.0
    assert bad.size and bad.min() > 15 - se.support_s - 1.0 and bad.max() < 15 + se.support_s + 1.0
    assert valid[: 10 * 40].all() and valid[20 * 40 :].all()


def test_bad_input():
    with pytest.raises(ValueError, match="unknown band"):
        StreamingEnvelopes(2048.0, 2, ["hg"])
    with pytest.raises(ValueError, match="lfp"):
        StreamingEnvelopes(2048.0, 2, ["lfp"])
    with pytest.raises(ValueError, match="each once"):
        StreamingEnvelopes(2048.0, 2, ["beta", "beta"])
    with pytest.raises(ValueError, match="needs sfreq > 425"):
        StreamingEnvelopes(256.0, 2, ["highgamma"])
    assert min_sfreq(["lfp"]) == 0.0 and min_sfreq(["lfp", "highgamma"]) == 425.0
    StreamingEnvelopes(256.0, 2, ["gamma"])  # 70 + 17.5 Hz < 128 Hz


def test_row_names():
    assert band_channel_name("LA1-LA2", "lfp") == "LA1-LA2"
    assert band_channel_name("LA1-LA2", "highgamma") == "LA1-LA2@highgamma"
    assert strip_band("LA1-LA2@highgamma") == "LA1-LA2" and strip_band("LA1@x") == "LA1@x"
