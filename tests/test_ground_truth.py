"""simulate -> pack keeps the simulated ground truth: responsive contacts, and the sign of the brain lag."""

import json

import numpy as np
import pytest
import webdataset as wds

from ieegfm.config import load_config
from ieegfm.shards.pack import pack
from ieegfm.simulate import simulate


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gt")
    tsv = simulate(
        load_config(
            "simulate",
            overrides=[f"out={tmp / 'data'}", "hours=0.15", "days=1", "block_minutes=3", "seed=1", "task_minutes=0"],
        )
    )
    pack(
        load_config(
            "pack",
            overrides=[f"recordings={tsv}", f"out={tmp / 's'}", "split.val=0", "split.test=0", "audio.n_mels=16"],
        )
    )
    truth = json.loads((tmp / "data" / "truth.json").read_text())
    samples = list(wds.WebDataset(sorted(str(p) for p in (tmp / "s").glob("*.tar")), shardshuffle=False).decode())
    return truth, samples


def _lagged(audio, lags):
    """Design matrix of audio features at the given lags (samples; positive = audio before brain)."""
    n = audio.shape[1]
    cols = []
    for lag in lags:
        shifted = np.zeros_like(audio)
        if lag >= 0:
            shifted[:, lag:] = audio[:, : n - lag]
        else:
            shifted[:, :lag] = audio[:, -lag:]
        cols.append(shifted)
    return np.concatenate(cols).T


def _heldout_r2(samples, lags):
    """Per channel, held-out R^2 of a ridge model from lagged audio features, fitted chunk-wise."""
    xs, ys = [], []
    for s in samples:
        xs.append(_lagged(s["audio.npy"].astype(np.float64), lags))
        ys.append(s["brain.npy"].astype(np.float64).T)
    n_fit = int(len(xs) * 2 / 3)
    x_fit, y_fit = np.concatenate(xs[:n_fit]), np.concatenate(ys[:n_fit])
    x_val, y_val = np.concatenate(xs[n_fit:]), np.concatenate(ys[n_fit:])
    coef = np.linalg.solve(x_fit.T @ x_fit + 1e3 * np.eye(x_fit.shape[1]), x_fit.T @ y_fit)
    resid = y_val - x_val @ coef
    return 1 - resid.var(0) / y_val.var(0)


def test_responsive_contacts_are_decodable_after_packing(packed):
    truth, samples = packed
    names = samples[0]["json"]["ch_names"]
    responsive = set(truth["brain"]["responsive"])
    r2 = _heldout_r2(samples, lags=range(0, 20, 2))  # audio leads brain by 0-0.5 s
    hit = np.array([any(c in responsive for c in n.split("-")) for n in names])
    assert hit.any() and (~hit).any()
    assert np.median(r2[hit]) > 0.3, (dict(zip(names, r2.round(3))), responsive)
    assert np.median(r2[~hit]) < 0.02
    assert r2[hit].min() > r2[~hit].max()


def test_brain_follows_the_audio_not_the_reverse(packed):
    """Alignment sign: the brain lags the audio, so past audio predicts it better than future audio."""
    truth, samples = packed
    names = samples[0]["json"]["ch_names"]
    responsive = set(truth["brain"]["responsive"])
    hit = np.array([any(c in responsive for c in n.split("-")) for n in names])
    past = _heldout_r2(samples, lags=range(2, 14, 2))
    future = _heldout_r2(samples, lags=range(-14, -2, 2))
    assert np.median(past[hit]) > np.median(future[hit]) + 0.2
