"""The day decoder: at chance without drift, clearly above it with drift; cross-validated by block, not window."""

import numpy as np
import pytest

from ieegfm.__main__ import main
from ieegfm.analysis.drift import day_decoding
from ieegfm.errors import InputError


def embeddings(drift: float, seed: int = 0, days: int = 4, blocks_per_day: int = 3, n: int = 40, dim: int = 16):
    """Windows of blocks over days: a block offset (slow state shared by a block's windows), window noise, and a
    direction that moves ``drift`` per day."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim) / np.sqrt(dim)
    x, day, block = [], [], []
    for d in range(days):
        for b in range(blocks_per_day):
            offset = rng.normal(0, 0.5, dim)
            x.append(offset + drift * d * direction + rng.normal(0, 1, (n, dim)))
            day += [d] * n
            block += [f"d{d}b{b}"] * n
    return np.concatenate(x), np.array(day), np.array(block)


def test_no_drift_is_at_chance():
    r = day_decoding(*embeddings(0.0), n_perm=100)
    assert r["p_value"] > 0.05 and r["r"] < r["null_r_95"]


def test_drift_is_decoded():
    r = day_decoding(*embeddings(2.0), n_perm=100)
    assert r["r"] > 0.8 and r["p_value"] < 0.02
    assert r["n_blocks"] == 12 and r["n_days"] == 4


def test_a_split_by_window_would_decode_blocks_not_days():
    """Without drift, folds that cut through blocks decode the day from each block's own offset: what CV by block
    prevents (the same data as test_no_drift_is_at_chance, each window its own group)."""
    x, day, block = embeddings(0.0)
    by_window = day_decoding(x, day, np.arange(len(day)).astype(str), n_perm=0)
    by_block = day_decoding(x, day, block, n_perm=0)
    assert by_window["r"] > 0.5 > by_block["r"]


def test_one_day_is_an_error():
    x, day, block = embeddings(1.0, days=1)
    with pytest.raises(InputError, match="at least 2 days and 3 blocks"):
        day_decoding(x, day, block)


def test_drift_command_on_one_day_of_data_is_one_line(patient, tmp_path, capsys):
    args = ["drift", f"ckpt={patient['ckpt']}", f"shards={patient['root'] / 'amb'}", f"out={tmp_path}", "n_perm=5"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "expected a subject with windows of at least 2 days and 3 blocks" in err and len(err.splitlines()) == 1
