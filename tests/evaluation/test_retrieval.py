import numpy as np
import pytest
import torch

from ieegfm.evaluation.retrieval import retrieval_metrics, retrieval_ranks


def test_perfect_and_reversed_ranks():
    x = torch.eye(6)
    assert torch.equal(retrieval_ranks(x, x), torch.zeros(6, dtype=torch.float64))
    m = retrieval_metrics(x, x)
    assert m["mean_relative_rank"] == 0 and m["top1_accuracy"] == 1 and m["n_candidates"] == 6
    # brain i is most similar to audio j != i, true one least similar
    audio = torch.eye(6)
    brain = 1 - torch.eye(6)
    assert retrieval_metrics(brain, audio)["mean_relative_rank"] > 0.9


def test_random_embeddings_and_shuffled_control_sit_at_chance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 16, generator=g)
    b = a + 0.5 * torch.randn(2000, 16, generator=g)
    m = retrieval_metrics(b, a, seed=1)
    assert m["mean_relative_rank"] < 0.05
    assert abs(m["shuffled_mean_relative_rank"] - 0.5) < 0.02  # the control breaks pairs, even for a good model
    r = retrieval_metrics(torch.randn(2000, 16, generator=g), a)
    assert abs(r["mean_relative_rank"] - 0.5) < 0.02


def test_ties_count_half_and_time_resolved_inputs():
    const = torch.ones(5, 3)
    assert retrieval_metrics(const, const)["mean_relative_rank"] == pytest.approx(0.5)
    seq = torch.randn(4, 3, 7)
    assert retrieval_metrics(seq, seq)["mean_relative_rank"] == 0


def test_blocked_equals_unblocked():
    a, b = torch.randn(300, 8), torch.randn(300, 8)
    assert np.array_equal(retrieval_ranks(a, b, block=7).numpy(), retrieval_ranks(a, b).numpy())


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        retrieval_ranks(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="at least 2"):
        retrieval_ranks(torch.zeros(1, 2), torch.zeros(1, 2))


def test_within_block_rank_removes_the_block_identity_shortcut():
    """Embeddings that only tell blocks apart win globally but sit at chance within a block."""
    g = torch.Generator().manual_seed(0)
    n_blocks, per = 4, 60
    block_code = torch.randn(n_blocks, 8, generator=g) * 3
    blocks = np.repeat([f"b{i}" for i in range(n_blocks)], per)
    idx = torch.arange(n_blocks).repeat_interleave(per)
    audio = block_code[idx] + torch.randn(n_blocks * per, 8, generator=g)
    brain = block_code[idx] + torch.randn(n_blocks * per, 8, generator=g)  # no window-level information
    m = retrieval_metrics(brain, audio, blocks=blocks)
    assert m["mean_relative_rank"] < 0.4  # the shortcut
    assert abs(m["within_block_mean_relative_rank"] - 0.5) < 0.05
    assert m["within_block_n_candidates"] == per and m["n_blocks"] == n_blocks
    good = retrieval_metrics(audio + 0.3 * torch.randn(audio.shape, generator=g), audio, blocks=blocks)
    assert good["within_block_mean_relative_rank"] < 0.1
    assert retrieval_metrics(brain, audio)["within_block_mean_relative_rank"] is None


def _two_patients(seed: int = 0, per: int = 80, d: int = 8):
    """Windows of two patients whose embeddings and audio carry only the patient's identity (an implant, a room)."""
    g = torch.Generator().manual_seed(seed)
    code = torch.randn(2, d, generator=g) * 3
    subjects = np.tile(["sub-a", "sub-b"], per)  # interleaved: ranks must come back in the input order
    idx = torch.from_numpy((subjects == "sub-b").astype(np.int64))
    audio = code[idx] + torch.randn(2 * per, d, generator=g)
    brain = code[idx] + torch.randn(2 * per, d, generator=g)  # nothing about the window itself
    return brain, audio, subjects


def test_a_model_cannot_win_retrieval_by_identifying_the_patient():
    brain, audio, subjects = _two_patients()
    pooled = retrieval_metrics(brain, audio)
    assert pooled["mean_relative_rank"] < 0.3  # pooled candidates: telling the patients apart wins
    m = retrieval_metrics(brain, audio, subjects=subjects)
    assert m["candidates"] == "within subject" and m["n_subjects"] == 2 and m["n_windows"] == 160
    assert abs(m["mean_relative_rank"] - 0.5) < 0.05
    lo, hi = m["mean_relative_rank_ci"]
    assert lo < 0.5 < hi
    for label in ("sub-a", "sub-b"):
        s = m["subjects"][label]
        assert s["n_candidates"] == 80 and abs(s["mean_relative_rank"] - 0.5) < 0.08
    labelled = retrieval_metrics(brain, audio, subjects=subjects, pool_subjects=True)
    assert labelled["candidates"] == "pooled across subjects"
    assert labelled["mean_relative_rank"] == pooled["mean_relative_rank"]


def test_each_subject_is_scored_among_its_own_windows_in_input_order():
    brain, audio, subjects = _two_patients(seed=1)
    a = subjects == "sub-a"
    brain[torch.from_numpy(a)] = audio[torch.from_numpy(a)] + 0.3 * torch.randn(int(a.sum()), 8)  # only a decodes
    blocks = np.where(a, "a-run1", "b-run1")
    m = retrieval_metrics(brain, audio, subjects=subjects, blocks=blocks)
    own = retrieval_metrics(brain[torch.from_numpy(a)], audio[torch.from_numpy(a)], blocks=blocks[a])
    assert m["subjects"]["sub-a"]["mean_relative_rank"] == own["mean_relative_rank"] < 0.05
    assert m["subjects"]["sub-b"]["mean_relative_rank"] > 0.4
    assert np.allclose(np.asarray(m["relative_ranks"])[a], own["relative_ranks"])
    expected = (m["subjects"]["sub-a"]["mean_relative_rank"] + m["subjects"]["sub-b"]["mean_relative_rank"]) / 2
    assert m["mean_relative_rank"] == pytest.approx(expected)
    assert m["within_block_mean_relative_rank"] == pytest.approx(expected)  # one block per subject here


def test_one_subject_scores_as_before_and_names_it():
    g = torch.Generator().manual_seed(2)
    audio = torch.randn(50, 8, generator=g)
    brain = audio + torch.randn(50, 8, generator=g)
    blocks = np.repeat(["r1", "r2"], 25)
    plain = retrieval_metrics(brain, audio, blocks=blocks)
    m = retrieval_metrics(brain, audio, blocks=blocks, subjects=["sim01"] * 50)
    assert {k: m[k] for k in plain} == plain
    assert m["mean_relative_rank_ci"] is None
    assert m["subjects"]["sim01"]["n_candidates"] == 50
    assert m["subjects"]["sim01"]["mean_relative_rank"] == plain["mean_relative_rank"]


def test_subject_errors_and_lone_windows():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="subjects has 4 entries for 5 windows"):
        retrieval_metrics(x, x, subjects=["a"] * 4)
    with pytest.raises(ValueError, match="at least 2 windows"):
        retrieval_metrics(x[:2], x[:2], subjects=["a", "b"])
    m = retrieval_metrics(x, x, subjects=["a", "a", "a", "a", "b"])  # b has one window: no rank, left out
    assert m["subjects"]["b"] == {**dict.fromkeys(m["subjects"]["b"]), "n_candidates": 1}
    assert m["mean_relative_rank"] == 0 and m["relative_ranks"][4] is None
