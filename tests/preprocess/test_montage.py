"""Contact parsing, bipolar pairs and montages."""

from __future__ import annotations

import numpy as np
import pytest

from ieegfm.preprocess import apply_montage, bipolar_pairs, laplacian_neighbours, parse_contact


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


def test_laplacian_along_a_shaft_minus_the_mean_of_present_neighbours():
    names = ["LA1", "LA2", "LA3", "LA5", "LA6", "EKG1", "B'1"]
    x = np.arange(len(names) * 3, dtype=float).reshape(len(names), 3) ** 2
    y, out = apply_montage(x, names, "laplacian")
    assert out == ["LA1", "LA2", "LA3", "LA5", "LA6"]  # names kept; EKG1 and the lone B'1 have no neighbour
    np.testing.assert_allclose(y[1], x[1] - (x[0] + x[2]) / 2)
    np.testing.assert_allclose(y[0], x[0] - x[1])
    np.testing.assert_allclose(y[2], x[2] - x[1])  # LA4 missing: LA3's one neighbour is LA2
    np.testing.assert_allclose(y[3], x[3] - x[4])
    with pytest.raises(ValueError, match="laplacian.*shaft names .* or an electrodes.tsv"):
        apply_montage(x[:2], ["EKG1", "Fz"], "laplacian")


def test_laplacian_on_a_grid_by_position_not_by_numbering():
    """A 3 x 3 grid numbered row by row: G3's neighbours are G2 and G6 (not G4, the next number)."""
    names = [f"G{i}" for i in range(1, 10)]
    positions = {n: (10.0 * (i % 3), 10.0 * (i // 3), 0.0) for i, n in enumerate(names)}
    near = laplacian_neighbours(names, positions)
    assert sorted(near["G5"]) == ["G2", "G4", "G6", "G8"] and sorted(near["G3"]) == ["G2", "G6"]
    assert sorted(laplacian_neighbours(names)["G3"]) == ["G2", "G4"]  # without positions: along the numbering
    x = np.random.default_rng(0).normal(size=(9, 5))
    y, out = apply_montage(x, names, "laplacian", {k.lower(): v for k, v in positions.items()})  # any case
    np.testing.assert_allclose(y[4], x[4] - x[[1, 3, 5, 7]].mean(axis=0))
    np.testing.assert_allclose(y[2], x[2] - x[[1, 5]].mean(axis=0))
    assert out == names
