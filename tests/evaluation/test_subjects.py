"""Two patients with different implants in one pack: each window is ranked among its own patient's windows."""

import json

import pytest
import torch
from recording_fixtures import FAST, TINY_MODEL

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.simulate import simulate


@pytest.mark.slow
def test_evaluate_ranks_within_each_subject_of_a_two_patient_pack(tmp_path):
    torch.set_num_threads(1)
    over = ["hours=0.25", "days=1", "block_minutes=5", "task_minutes=0", "subjects=2"]  # 4 and 3 shafts
    tsv = simulate(load_config("simulate", overrides=[f"out={tmp_path / 'sim'}", *over]))
    assert main(["pack", f"recordings={tsv}", f"out={tmp_path / 'shards'}", "split.test=0.34"]) == 0
    pre = [f"shards={tmp_path / 'shards'}", f"out={tmp_path / 'pre'}", "trainer.max_steps=20", "data.batch_size=16"]
    assert main(["pretrain", *pre, *TINY_MODEL, *FAST]) == 0
    ckpt = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    out = tmp_path / "pre" / "test.json"
    assert main(["evaluate", f"ckpt={ckpt}", f"shards={tmp_path / 'shards'}", f"out={out}"]) == 0
    m = json.loads(out.read_text())
    assert m["candidates"] == "within subject" and m["n_subjects"] == 2
    subjects = m["subjects"]
    assert set(subjects) == {"sim01", "sim02"}
    assert sum(s["n_candidates"] for s in subjects.values()) == m["n_windows"]
    assert all(0 < s["n_candidates"] < m["n_windows"] for s in subjects.values())
    mean = sum(s["mean_relative_rank"] for s in subjects.values()) / 2
    assert m["mean_relative_rank"] == pytest.approx(mean)
    pooled = tmp_path / "pooled.json"
    assert (
        main(["evaluate", f"ckpt={ckpt}", f"shards={tmp_path / 'shards'}", f"out={pooled}", "pool_subjects=true"]) == 0
    )
    p = json.loads(pooled.read_text())
    assert p["candidates"] == "pooled across subjects" and p["n_candidates"] == m["n_windows"]
    assert p["subjects"] == m["subjects"]
    assert main(["report", str(tmp_path / "pre"), f"out={tmp_path / 'r.html'}"]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "<td>sim02</td>" in html and "mean over subjects (within subject)" in html
