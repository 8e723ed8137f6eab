"""Robust and standard scalers: statistics, clamping, chunking, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ieegfm.preprocess import RobustScaler, StandardScaler


def _data(n_times=5000):
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, n_times)) * np.array([[1e-5], [3e-5], [2e-6]]) + 1e-4


def test_robust_matches_numpy():
    data = _data()
    scaler = RobustScaler().partial_fit(data)
    q25, q50, q75 = np.quantile(data.astype(np.float32).astype(float), [0.25, 0.5, 0.75], axis=1)
    np.testing.assert_allclose(scaler.center_, q50, rtol=1e-6)
    np.testing.assert_allclose(scaler.scale_, q75 - q25, rtol=1e-5)
    out = scaler.transform(data)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.median(out, axis=1), 0.0, atol=1e-3)


def test_robust_clamp_and_flat_channel():
    data = _data()
    data[2] = 1.0  # flat: IQR 0 -> scale 1
    scaler = RobustScaler().partial_fit(data)
    assert scaler.scale_[2] == 1.0
    spiky = data.copy()
    spiky[0, 10] = 1.0
    out = scaler.transform(spiky, clamp=5.0)
    assert out[0, 10] == 5.0 and np.abs(out).max() <= 5.0
    assert np.abs(scaler.transform(spiky)).max() <= 20.0


def test_robust_chunked_and_valid_mask():
    data = _data(20000)
    valid = np.ones(data.shape[1], bool)
    valid[1000:3000] = False
    one = RobustScaler(max_samples=3000).partial_fit(data, valid)
    chunked = RobustScaler(max_samples=3000)
    for start in range(0, data.shape[1], 777):
        chunked.partial_fit(data[:, start : start + 777], valid[start : start + 777])
    np.testing.assert_array_equal(one.center_, chunked.center_)
    np.testing.assert_array_equal(one.scale_, chunked.scale_)
    assert one.n_samples_seen_ == valid.sum()
    assert one._n_kept <= 3000  # bounded subsample
    full = RobustScaler().partial_fit(data, valid)
    np.testing.assert_allclose(one.center_, full.center_, atol=0.05 * full.scale_.max())


def test_robust_dict_round_trip():
    scaler = RobustScaler().partial_fit(_data())
    params = json.loads(json.dumps(scaler.to_dict()))
    loaded = RobustScaler.from_dict(params)
    np.testing.assert_array_equal(loaded.center_, scaler.center_)
    np.testing.assert_array_equal(loaded.transform(_data()), scaler.transform(_data()))
    with pytest.raises(ValueError, match="center"):
        RobustScaler.from_dict({"scale": [1.0]})


def test_robust_errors():
    with pytest.raises(ValueError, match="no samples"):
        RobustScaler().center_  # noqa: B018
    scaler = RobustScaler().partial_fit(_data())
    with pytest.raises(ValueError, match="n_chans=3"):
        scaler.partial_fit(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="max_samples"):
        RobustScaler(max_samples=0)


def test_standard_scaler_chunked_matches_numpy():
    data = _data(3001)
    chunked = StandardScaler()
    for start in range(0, data.shape[1], 400):
        chunked.partial_fit(data[:, start : start + 400])
    np.testing.assert_allclose(chunked.mean_, data.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(chunked.var_, data.var(axis=1), rtol=1e-9)
    out = chunked.transform(data)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.std(axis=1), 1.0, rtol=1e-5)
    loaded = StandardScaler.from_dict(json.loads(json.dumps(chunked.to_dict())))
    np.testing.assert_allclose(loaded.transform(data), out)
    valid = np.zeros(data.shape[1], bool)
    valid[::2] = True
    masked = StandardScaler().partial_fit(data, valid)
    np.testing.assert_allclose(masked.mean_, data[:, ::2].mean(axis=1), rtol=1e-12)
