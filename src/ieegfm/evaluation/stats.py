"""Paired statistics between conditions evaluated on the same test windows."""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_wilcoxon(a: np.ndarray, b: np.ndarray, alternative: str = "less") -> dict:
    """Wilcoxon signed-rank test of per-window scores of two conditions on the same windows.

    Parameters
    ----------
    a, b : array, shape (n_windows,)
        Per-window relative ranks (lower is better) of condition ``a`` and of the baseline ``b``, window ``i`` the
        same in both.
    alternative : {'less', 'two-sided', 'greater'}
        ``'less'``: ``a`` ranks the true window better (lower) than ``b``.

    Returns
    -------
    result : dict
        ``statistic``, ``p_value``, ``n`` (windows with a non-zero difference), ``median_difference`` (a - b),
        ``test`` (the name of the test).

    Raises
    ------
    ValueError
        Shapes differ, or fewer than 2 windows.

    References
    ----------
    Wilcoxon, F. (1945). Individual comparisons by ranking methods. Biometrics Bulletin 1(6). Computed with
    :func:`scipy.stats.wilcoxon` (``zero_method='wilcox'``: zero differences dropped).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a {a.shape} and b {b.shape} must be 1-d arrays over the same windows")
    if len(a) < 2:
        raise ValueError(f"a paired test needs at least 2 windows, got {len(a)}")
    d = a - b
    nonzero = int(np.count_nonzero(d))
    if nonzero == 0:
        return {"test": "wilcoxon", "statistic": 0.0, "p_value": 1.0, "n": 0, "median_difference": 0.0}
    res = stats.wilcoxon(a, b, zero_method="wilcox", alternative=alternative)
    return {
        "test": f"wilcoxon signed-rank ({alternative})",
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "n": nonzero,
        "median_difference": float(np.median(d)),
    }
