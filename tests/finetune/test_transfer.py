"""Leave-one-patient-out transfer on the simulator (issue 19): the study of ``tools/cohort_study.py``, small.

Pretrained on two patients, compared on a third it never saw (its own implant): every trained row learns the
third patient's responses through its new input layer; on a patient whose recordings hold no audio-driven response
(nothing to share, nothing to find) every row sits at chance, so nothing else in the pipeline (block identity,
split leakage, a patient-identifying shortcut) can pass for decoding.
"""

import pytest
import torch


@pytest.mark.slow
def test_transfer_learns_a_new_patient_and_finds_nothing_where_there_is_nothing(tmp_path, cohort_tool):
    torch.set_num_threads(1)
    tool = cohort_tool
    s = tool.study(tmp_path, hours=0.25, task_minutes=16, steps=150, seeds=1, finetune_steps=100, tiny=True)
    assert s["sim03"]["new_subjects"] == ["sim03"] and s["sim09"]["new_subjects"] == ["sim09"]
    for name, row in s["sim03"]["rows"].items():
        assert row["mean_relative_rank"] < 0.42 and max(s["sim03"]["p_vs_chance"][name]) < 0.01, (name, row)
        assert abs(row["shuffled_mean_relative_rank"] - 0.5) < 0.1
    for name, row in s["sim09"]["rows"].items():
        assert abs(row["mean_relative_rank"] - 0.5) < 0.12 and min(s["sim09"]["p_vs_chance"][name]) > 1e-3, (name, row)
    print(tool.markdown(s))
