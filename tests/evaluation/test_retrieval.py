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
