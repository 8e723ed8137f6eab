import numpy as np
import pytest

from ieegfm.derangement import derangement


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_derangement_moves_every_item(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        perm = derangement(n, rng)
        assert perm.dtype == np.int64 and sorted(perm) == list(range(n)) and np.all(perm != np.arange(n))


def test_derangement_draws_one_permutation_per_call():
    """The stream every control was scored with: one ``rng.permutation(n)`` per derangement, the cycle it orders."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(3):
        perm, order = derangement(6, a), b.permutation(6)
        assert all(perm[order[i]] == order[(i + 1) % 6] for i in range(6))
    assert a.random() == b.random()  # nothing else drawn


def test_derangement_small_and_bad_n():
    rng = np.random.default_rng(0)
    assert derangement(0, rng).shape == (0,) and derangement(1, rng).tolist() == [0]
    with pytest.raises(ValueError, match="n must be >= 0"):
        derangement(-1, rng)
