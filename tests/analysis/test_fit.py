"""The log-linear fit recovers a known slope, and its bootstrap interval covers it at about its nominal rate."""

import numpy as np
import pytest

from ieegfm.analysis.fit import bootstrap_log_linear, log_linear


def synthetic(slope, rng, hours=(0.5, 1, 2, 4, 8), seeds=3, windows=150, intercept=0.3):
    """Per-window relative ranks: a window difficulty shared by every point, seed noise per point, window noise."""
    difficulty = rng.normal(0, 0.08, windows)
    values = []
    for h in hours:
        mean = intercept + slope * np.log10(h)
        values.append(
            np.array([mean + difficulty + rng.normal(0, 0.01) + rng.normal(0, 0.05, windows) for _ in range(seeds)])
        )
    return list(hours), values


def test_log_linear_is_exact_on_a_line():
    a, b = log_linear([1, 10, 100], [0.4, 0.35, 0.30])
    assert a == pytest.approx(0.4) and b == pytest.approx(-0.05)
    with pytest.raises(ValueError, match="two distinct"):
        log_linear([2, 2], [0.1, 0.2])


def test_recovers_a_known_slope_with_a_ci_that_covers_it():
    rng = np.random.default_rng(0)
    hours, values = synthetic(-0.04, rng)
    fit = bootstrap_log_linear(hours, values, n_boot=1000)
    lo, hi = fit["slope_ci"]
    assert lo < -0.04 < hi
    assert abs(fit["slope"] + 0.04) < 0.01
    assert hi < 0 and fit["slope_p_value"] < 0.01  # a real slope is told from none
    assert fit["points"]["hours"] == hours and len(fit["band"]["lo"]) == 50


def test_ci_coverage_near_nominal_and_no_slope_not_claimed():
    rng = np.random.default_rng(1)
    covered, claimed = 0, 0
    for _ in range(40):
        hours, values = synthetic(-0.03, rng)
        lo, hi = bootstrap_log_linear(hours, values, n_boot=400, seed=int(rng.integers(1 << 30)))["slope_ci"]
        covered += lo < -0.03 < hi
        hours, values = synthetic(0.0, rng)
        claimed += bootstrap_log_linear(hours, values, n_boot=400)["slope_p_value"] < 0.05
    assert covered >= 32  # 95 % intervals: 38 expected of 40
    assert claimed <= 6  # 2 expected of 40


def test_budgets_on_different_windows_are_refused():
    with pytest.raises(ValueError, match="same windows"):
        bootstrap_log_linear([1, 2], [np.zeros((2, 10)), np.zeros((2, 11))])
