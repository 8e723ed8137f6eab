import numpy as np
import pytest
from scipy import stats

from ieegfm.evaluation.stats import paired_wilcoxon


def test_paired_wilcoxon_matches_scipy_and_direction():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    better = np.clip(base - 0.1 + 0.05 * rng.standard_normal(200), 0, 1)
    r = paired_wilcoxon(better, base)
    ref = stats.wilcoxon(better, base, alternative="less")
    assert r["p_value"] == pytest.approx(ref.pvalue) and r["statistic"] == pytest.approx(ref.statistic)
    assert r["p_value"] < 1e-10 and r["median_difference"] < 0 and r["n"] == 200
    assert paired_wilcoxon(base, better)["p_value"] > 0.99  # one-sided: worse is not significant
    assert paired_wilcoxon(base, better, alternative="two-sided")["p_value"] < 1e-10
    same = paired_wilcoxon(base, base.copy())
    assert same["p_value"] == 1.0 and same["n"] == 0


def test_paired_wilcoxon_rejects_unpaired_input():
    with pytest.raises(ValueError, match="same windows"):
        paired_wilcoxon(np.zeros(3), np.zeros(4))
