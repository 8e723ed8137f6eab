"""The scaling law of the seed paper, metric = a + b * log10(hours), with a paired bootstrap over seeds and windows.

The seed paper (arXiv 2512.15830) reports decoding gains that grow log-linearly with pretraining hours. Here the
law is fitted by least squares to the per-budget means, and its uncertainty comes from the two sources of noise
that the points carry: which seeds were run (resampled within each budget) and which test windows were scored
(resampled once per replicate and shared by every budget, since every point is scored on the same windows). The
raw points are kept beside the fit, as respected scaling-law fitters do (e.g. OLMo's, which bootstraps and
publishes its points).
"""

from __future__ import annotations

import numpy as np


def log_linear(hours, values) -> tuple[float, float]:
    """Least-squares ``(intercept a, slope b)`` of ``values = a + b * log10(hours)``.

    Parameters
    ----------
    hours : array_like, shape (n,)
        Positive hours (at least two distinct values).
    values : array_like, shape (n,)

    Raises
    ------
    ValueError
        Fewer than two distinct hours, or hours not positive.
    """
    x = np.log10(np.asarray(hours, dtype=float))
    y = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(x)) or len(np.unique(x)) < 2:
        raise ValueError(f"a log-linear fit needs at least two distinct positive hours, got {list(hours)}")
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def bootstrap_log_linear(
    hours: list[float],
    values: list[np.ndarray],
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict:
    """Fit ``a + b * log10(hours)`` and bootstrap its slope over seeds and (paired) test windows.

    Parameters
    ----------
    hours : list of float, length L
        The budgets (hours per patient), at least two distinct ones.
    values : list of ndarray, each (n_seeds_l, n_windows)
        Per budget, the per-window metric of each seed's point (e.g. each test window's relative rank); the same
        ``n_windows`` windows, in the same order, at every budget. ``n_windows = 1`` for a metric known only per
        point (then only seeds are resampled).
    n_boot : int
        Bootstrap replicates.
    seed : int
    ci : float
        Coverage of the percentile interval.

    Returns
    -------
    dict
        ``intercept``, ``slope`` (per decade of hours), ``slope_ci`` and ``intercept_ci`` ([lo, hi]),
        ``slope_p_value`` (two-sided bootstrap p of slope 0: twice the smaller tail), ``n_boot``, ``points``
        (``hours``, ``mean``: the per-budget means that were fitted), ``band`` (``hours``, ``lo``, ``hi``: the
        pointwise interval of the fitted line, for plots).

    Raises
    ------
    ValueError
        Budgets with different windows, fewer than two distinct hours.
    """
    arrays = [np.atleast_2d(np.asarray(v, dtype=float)) for v in values]
    n_windows = {a.shape[1] for a in arrays}
    if len(n_windows) != 1:
        raise ValueError(f"every budget must be scored on the same windows, got {sorted(n_windows)} windows")
    (w,) = n_windows
    means = np.array([a.mean() for a in arrays])
    a_hat, b_hat = log_linear(hours, means)
    rng = np.random.default_rng([seed, 8191])
    win = rng.integers(0, w, size=(n_boot, w))  # the same test windows for every budget (paired)
    boot_means = np.empty((n_boot, len(arrays)))
    for j, arr in enumerate(arrays):
        per_seed = arr[:, win].mean(axis=2)  # (n_seeds, n_boot): each seed's mean over the resampled windows
        s = arr.shape[0]
        pick = rng.integers(0, s, size=(n_boot, s))
        boot_means[:, j] = per_seed[pick, np.arange(n_boot)[:, None]].mean(axis=1)
    x = np.log10(np.asarray(hours, dtype=float))
    xc = x - x.mean()
    slopes = (boot_means - boot_means.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    intercepts = boot_means.mean(axis=1) - slopes * x.mean()
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    grid = np.geomspace(min(hours), max(hours), 50)
    lines = intercepts[:, None] + slopes[:, None] * np.log10(grid)[None, :]
    tail = min((slopes <= 0).mean(), (slopes >= 0).mean())
    return {
        "intercept": a_hat,
        "slope": b_hat,
        "slope_ci": [float(v) for v in np.percentile(slopes, q)],
        "intercept_ci": [float(v) for v in np.percentile(intercepts, q)],
        "slope_p_value": float(min(1.0, 2 * max(tail, 1 / n_boot))),
        "ci": ci,
        "n_boot": int(n_boot),
        "points": {"hours": [float(h) for h in hours], "mean": [float(m) for m in means]},
        "band": {
            "hours": grid.tolist(),
            "lo": np.percentile(lines, q[0], axis=0).tolist(),
            "hi": np.percentile(lines, q[1], axis=0).tolist(),
        },
    }
