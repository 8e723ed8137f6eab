"""StreamingPreprocessor: chunk invariance, timing, agreement with MNE, NaN mask, memory."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from ieegfm.preprocess import StreamingPreprocessor, preprocess_array


def _pink(rng, n_chans, n_times, sfreq):
    spec = np.fft.rfft(rng.standard_normal((n_chans, n_times)), axis=1)
    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(n_times, 1.0 / sfreq), 0.1))
    return np.fft.irfft(spec, n=n_times, axis=1) * 1e-5


def _run_chunked(pp, data, sizes):
    outs, valids, start = [], [], 0
    for size in sizes:
        out, valid = pp.process(data[:, start : start + size])
        assert out.dtype == np.float32 and out.shape == (data.shape[0], valid.shape[0])
        outs.append(out)
        valids.append(valid)
        start += size
    assert start >= data.shape[1]
    out, valid = pp.flush()
    return np.concatenate([*outs, out], axis=1), np.concatenate([*valids, valid])


@pytest.mark.parametrize("sfreq", [999.41, 2048.0])
def test_chunking_invariance(sfreq):
    rng = np.random.default_rng(0)
    n_times = int(100 * sfreq)
    data = _pink(rng, 3, n_times, sfreq) + 2e-3  # DC offset
    data[1, int(40 * sfreq) : int(40.2 * sfreq)] = np.nan
    ref, ref_valid = preprocess_array(data, sfreq)
    assert ref.shape == (3, int(np.ceil(n_times * 40.0 / sfreq)))
    scale = np.abs(ref).max()
    one_s = int(sfreq)
    random_sizes = list(rng.integers(1, int(9 * sfreq), size=n_times))
    for sizes in (
        [one_s] * (n_times // one_s + 1),
        [int(7.3 * sfreq)] * (n_times // int(7.3 * sfreq) + 1),
        random_sizes,
    ):
        pp = StreamingPreprocessor(sfreq, 3)
        out, valid = _run_chunked(pp, data, sizes)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * scale)
        np.testing.assert_array_equal(valid, ref_valid)
    assert not np.isnan(ref).any()


@pytest.mark.parametrize("n_times", [1, 2, 3, 25, 26, 1000, 4097])
def test_output_length(n_times):
    for sfreq, sfreq_out in ((1000.0, 40.0), (999.41, 40.0), (512.0, 100.0)):
        data = np.ones((2, n_times))
        out, valid = preprocess_array(data, sfreq, sfreq_out=sfreq_out)
        expected = int(np.ceil(n_times * sfreq_out / sfreq))
        assert out.shape == (2, expected) and valid.shape == (expected,)


@pytest.mark.parametrize("sfreq", [1024.0, 999.41])
def test_sine_zero_phase(sfreq):
    t = np.arange(int(150 * sfreq)) / sfreq
    out, _ = preprocess_array(np.sin(2 * np.pi * 3.0 * t)[None] * 1e-4, sfreq)
    tk = np.arange(out.shape[1]) / 40.0
    expected = np.sin(2 * np.pi * 3.0 * tk) * 1e-4
    sl = slice(40 * 40, -40 * 40)  # beyond the +-33 s high-pass support of the edges
    assert np.corrcoef(out[0, sl], expected[sl])[0, 1] > 0.9999
    lags = np.arange(-3, 4)
    xc = [np.dot(np.roll(out[0], lag)[sl], expected[sl]) for lag in lags]
    assert lags[int(np.argmax(xc))] == 0
    # phase and amplitude from a least-squares fit
    basis = np.stack([np.sin(2 * np.pi * 3.0 * tk), np.cos(2 * np.pi * 3.0 * tk)], 1)[sl]
    (a, b), *_ = np.linalg.lstsq(basis, out[0, sl].astype(float), rcond=None)
    assert abs(np.degrees(np.arctan2(b, a))) < 0.1
    assert abs(np.hypot(a, b) / 1e-4 - 1.0) < 1e-3


def test_agrees_with_mne():
    rng = np.random.default_rng(1)
    sfreq = 1000.0
    data = _pink(rng, 8, int(60 * sfreq), sfreq)
    out, _ = preprocess_array(data, sfreq)
    raw = mne.io.RawArray(data, mne.create_info(8, sfreq, "seeg"), verbose="error")
    raw.notch_filter(np.arange(60, 500, 60), verbose="error")
    raw.filter(0.05, 50.0, verbose="error")
    # MNE's default method='fft' (npad='auto') shifts 1000 -> 40 Hz by half an output sample
    # (+12.5 ms: +45 deg at 10 Hz, measured with MNE 1.13); 'polyphase' is on the k / 40 grid.
    raw.resample(40.0, method="polyphase", verbose="error")
    ref = raw.get_data()
    assert ref.shape == out.shape
    band = [mne.filter.filter_data(a.astype(float), 40.0, 0.5, 18.0, verbose="error") for a in (out, ref)]
    sl = slice(5 * 40, -5 * 40)
    for a, b in zip(band[0][:, sl], band[1][:, sl]):
        assert np.corrcoef(a, b)[0, 1] >= 0.99


def test_line_noise_notched_and_not_aliased():
    sfreq = 1000.0
    t = np.arange(int(60 * sfreq)) / sfreq
    rng = np.random.default_rng(2)
    line = 1e-3 * np.sin(2 * np.pi * 60.0 * t + 0.3)
    data = np.stack([line, line + 1e-6 * rng.standard_normal(t.size)])
    # 250 Hz output: 60 Hz is representable and must be notched (>= 20 dB)
    out, _ = preprocess_array(data, sfreq, sfreq_out=250.0, h_freq=100.0)
    tk = np.arange(out.shape[1]) / 250.0
    basis = np.stack([np.sin(2 * np.pi * 60.0 * tk), np.cos(2 * np.pi * 60.0 * tk)], 1)
    sl = slice(250 * 5, -250 * 5)
    coef, *_ = np.linalg.lstsq(basis[sl], out[0, sl].astype(float), rcond=None)
    assert 20 * np.log10(np.hypot(*coef) / 1e-3) <= -20
    # 40 Hz output: 60 Hz must not alias (>= 40 dB down in power)
    out, _ = preprocess_array(data, sfreq, line_freq=None)
    rms = np.sqrt(np.mean(out[0].astype(float) ** 2))
    assert 20 * np.log10(rms / (1e-3 / np.sqrt(2))) <= -40


def test_dc_offset_gives_zero_everywhere():
    for sfreq in (1000.0, 999.41):
        out, valid = preprocess_array(np.full((2, int(30 * sfreq)), 5e-3), sfreq)
        assert valid.all()
        assert np.abs(out).max() < 1e-9  # includes both edges


def test_nan_run_mask():
    sfreq = 1000.0
    rng = np.random.default_rng(3)
    data = _pink(rng, 4, int(100 * sfreq), sfreq)
    t0, t1 = 50.0, 50.5
    data[2, int(t0 * sfreq) : int(t1 * sfreq)] = np.nan
    pp = StreamingPreprocessor(sfreq, 4)
    out, valid = _run_chunked(pp, data, [int(3.7 * sfreq)] * 28)
    assert np.isfinite(out).all()
    tk = np.arange(out.shape[1]) / 40.0
    support = pp.support_s
    assert 0 < support < 2.0
    inside = (tk >= t0) & (tk <= t1 - 1 / sfreq)
    far = (tk < t0 - support - 0.05) | (tk > t1 + support + 0.05)
    assert not valid[inside].any()
    assert valid[far].all()
    near = (tk > t0 - support + 0.05) & (tk < t1 + support - 0.05)
    assert not valid[near].any()
    # far from the gap the other channels are unaffected by the substitution
    clean = data.copy()
    clean[2] = 0.0
    ref, _ = preprocess_array(clean, sfreq)
    np.testing.assert_allclose(out[[0, 1, 3]], ref[[0, 1, 3]], atol=1e-6 * np.abs(ref).max())


def test_state_is_bounded():
    sfreq = 1000.0
    rng = np.random.default_rng(4)
    chunk = _pink(rng, 8, int(10 * sfreq), sfreq)
    pp = StreamingPreprocessor(sfreq, 8)
    sizes = []
    for _ in range(60):  # 10 min in 10 s chunks
        pp.process(chunk)
        sizes.append(pp.state_nbytes)
    early, late = max(sizes[6:12]), max(sizes[54:60])
    assert late <= early
    assert early < 8 * 8 * 3 * (2 * 2641 + 1000)  # O(filter length), not O(stream)


def test_flush_resets_and_empty_chunks():
    pp = StreamingPreprocessor(1000.0, 2)
    out, valid = pp.flush()
    assert out.shape == (2, 0) and valid.shape == (0,)
    out, valid = pp.process(np.zeros((2, 0)))
    assert out.shape == (2, 0)
    data = np.random.default_rng(5).standard_normal((2, 5000)) * 1e-5
    a = np.concatenate([pp.process(data)[0], pp.flush()[0]], axis=1)
    b = np.concatenate([pp.process(data)[0], pp.flush()[0]], axis=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sfreq": 0.0}, "sfreq"),
        ({"sfreq": -1.0}, "sfreq"),
        ({"n_chans": 0}, "n_chans"),
        ({"sfreq_out": 2000.0}, "sfreq_out"),
        ({"l_freq": 30.0, "h_freq": 20.0}, "l_freq|h_freq"),
        ({"l_freq": 10.0, "h_freq": 10.0}, "l_freq|h_freq"),
        ({"h_freq": -5.0}, "h_freq"),
        ({"line_freq": -60.0}, "line_freq"),
        ({"sfreq": float("nan")}, "sfreq"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"sfreq": 1000.0, "n_chans": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        StreamingPreprocessor(**args)


def test_bad_chunk():
    pp = StreamingPreprocessor(1000.0, 2)
    with pytest.raises(ValueError, match="n_chans=2"):
        pp.process(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="n_chans=2"):
        pp.process(np.zeros(10))
