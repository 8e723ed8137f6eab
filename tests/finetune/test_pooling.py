"""Pooled pretraining across patients on the simulator (issue 19): the study of ``tools/cohort_study.py --poor``.

Two simulated patients whose responses follow one anatomical map (``simulate shared_responses=true``) and whose
implants aim at the same targets (``target_jitter_mm=3``), and a third whose recordings hold no audio-driven
response. A data-poor patient (sim01 cut to its first 3 minutes of pretraining data) gains from pooling with
sim02, which shares its responses: a lower within-subject test rank than its own model at the same steps on its
own data, over three seeds. Pooled with the no-response patient instead, it does not gain (half the steps go to
recordings with nothing to learn), and on that patient's own windows the pooled model sits at chance.
"""

import pytest
import torch

from ieegfm.__main__ import main as ieegfm


@pytest.mark.slow
def test_pooling_helps_a_data_poor_patient_only_where_the_truth_shares_something(tmp_path, cohort_tool):
    torch.set_num_threads(1)
    tool = cohort_tool
    sim = ["days=1", "block_minutes=5", "task_minutes=0", "shared_responses=true", "target_jitter_mm=3"]
    assert ieegfm(["simulate", f"out={tmp_path / 'sim'}", "subjects=2", "hours=0.5", "seed=0", *sim]) == 0
    for s in ("sim01", "sim02"):
        table = tmp_path / "sim" / "recordings.tsv"
        assert ieegfm(["pack", f"recordings={table}", f"subjects=[{s}]", f"out={tmp_path / 'packs' / s}"]) == 0
    null = tool.null_pack(tmp_path, 0.5, shared=True, jitter=3.0)
    shared = tool.data_poor(tmp_path, 0.05, 600, tiny=True, seeds=3)
    nothing = tool.data_poor(tmp_path, 0.05, 600, tiny=True, seeds=3, partner="sim09")
    assert shared["n_candidates"] == nothing["n_candidates"] == 97
    assert shared["pooled"] < shared["own"] - 0.02 and shared["p_pooled_better"] < 0.05, shared
    assert sum(p < o for p, o in zip(shared["per_seed"]["pooled"], shared["per_seed"]["own"])) >= 2
    assert nothing["pooled"] > nothing["own"] - 0.01 and nothing["p_pooled_better"] > 0.5, nothing
    from ieegfm.evaluation.evaluate import score_split

    ckpt = tmp_path / "poor-0.05h-600-sim09" / "pooled" / "checkpoints" / "last.ckpt"
    at_chance = score_split(ckpt, null, "test")["metrics"]
    assert abs(at_chance["mean_relative_rank"] - 0.5) < 0.08, at_chance
