"""Contact parsing, bipolar pairs and montages."""

from __future__ import annotations

import numpy as np
import pytest

from ieegfm.preprocess import apply_montage, bipolar_pairs, parse_contact


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("LA1", ("LA", 1)),
        ("LA12", ("LA", 12)),
        ("L'1", ("L'", 1)),
        ("A'12", ("A'", 12)),
        ("LAH 3", ("LAH", 3)),
        ("RHc10", ("RHc", 10)),
        ("G_1", ("G", 1)),
        ("EEG LA1-Ref", ("LA", 1)),
        ("LA", None),
        ("12", None),
        ("Ref", None),
    ],
)
def test_parse_contact(name, expected):
    assert parse_contact(name) == expected


def test_bipolar_pairs_skip_gaps_and_non_neural():
    names = ["LA1", "LA2", "LA3", "LA5", "LA6", "B'1", "B'2", "EKG1", "EKG2"]
    assert bipolar_pairs(names) == [("LA1", "LA2"), ("LA2", "LA3"), ("LA5", "LA6"), ("B'1", "B'2")]
    assert bipolar_pairs(["LA3", "LA1", "LA2"]) == [("LA1", "LA2"), ("LA2", "LA3")]


def test_apply_montage():
    names = ["LA1", "LA2", "LA3", "LA5", "LA6", "B'1", "B'2", "EKG1"]
    data = np.random.default_rng(0).standard_normal((len(names), 50)).astype(np.float32)
    out, new = apply_montage(data, names, "bipolar")
    assert new == ["LA1-LA2", "LA2-LA3", "LA5-LA6", "B'1-B'2"]
    np.testing.assert_allclose(out[2], data[3] - data[4])
    assert out.dtype == np.float32
    out, new = apply_montage(data, names, "average")
    assert new == names
    np.testing.assert_allclose(out.sum(axis=0), 0.0, atol=1e-5)
    out, new = apply_montage(data, names, "none")
    np.testing.assert_array_equal(out, data)


def test_apply_montage_errors():
    data = np.zeros((2, 10))
    with pytest.raises(ValueError, match="'montage' parameter.*'bipolar'"):
        apply_montage(data, ["LA1", "LA2"], "laplace")
    with pytest.raises(ValueError, match="no pair"):
        apply_montage(data, ["LA1", "LB1"], "bipolar")
    with pytest.raises(ValueError, match="n_chans=3"):
        apply_montage(data, ["LA1", "LA2", "LA3"], "average")
