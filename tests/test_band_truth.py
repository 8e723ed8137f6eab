"""The simulator's answer in high gamma: ``bands=[lfp]`` must fail where the truth is only in the 70-170 Hz
envelope, and ``bands=[lfp,highgamma]`` must find it (``tools/bands_study.py``, run small)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.slow
def test_lfp_fails_and_highgamma_finds_a_highgamma_response(bands_tool, tmp_path):
    torch.set_num_threads(1)
    r = bands_tool.study(tmp_path, ["highgamma"], hours=0.5, steps=300, seeds=1, tiny=True)["responses"][0]
    lfp, hg = r["lfp"], r["lfp+highgamma"]
    assert r["n_candidates"] >= 90
    assert abs(lfp["mean_relative_rank"] - 0.5) < 0.08  # at chance: the 40-Hz signal holds nothing of it
    assert hg["mean_relative_rank"] < 0.35 and r["p_highgamma_better"] < 1e-3
    for row in (lfp, hg):
        assert abs(row["shuffled_mean_relative_rank"] - 0.5) < 0.05
