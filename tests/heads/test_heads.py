"""Every registered finetune head: shapes, both poolings, gradients, input checks (walks the registry)."""

import pytest
import torch

from ieegfm.heads import HEADS, LANGUAGE_MODEL_HEADS, SENTENCE_HEADS, EncoderWithHead, build_head
from ieegfm.models import build_encoder


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("pooling", ["mean", "none"])
def test_head_shapes_and_gradients(name, pooling):
    if name in (*SENTENCE_HEADS, *LANGUAGE_MODEL_HEADS) and pooling == "none":  # one output per item
        with pytest.raises(ValueError, match="pooling must be 'mean'"):
            build_head(name, n_hidden=8, n_features=5, pooling=pooling)
        return
    head = build_head(name, n_hidden=8, n_features=5, pooling=pooling)
    features = torch.randn(3, 8, 40, requires_grad=True)
    out = head(features)
    assert out.shape == head.output_shape(3, 40)
    if name == "linear":
        assert out.shape == ((3, 5) if pooling == "mean" else (3, 5, 40))
    out.square().sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"features must have shape \(batch, n_hidden=8, n_times\)"):
        head(torch.randn(3, 7, 40))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_on_an_encoder(name):
    enc = build_encoder("conv_attention", n_chans=4, n_subjects=1, n_times=40, sfreq=40.0, n_features=6, hidden=8,
                        projected_chans=4, depth=1)  # fmt: skip
    head = build_head(name, n_hidden=enc.n_hidden, n_features=6, pooling=enc.pooling)
    model = EncoderWithHead(enc, head)
    assert model(torch.randn(2, 4, 40), torch.zeros(2, dtype=torch.long)).shape == head.output_shape(2, 40)
    with pytest.raises(ValueError, match="head reads 9 features"):
        EncoderWithHead(enc, build_head(name, n_hidden=9, n_features=6))


def test_unknown_head_or_argument():
    with pytest.raises(
        ValueError, match=r"head must be one of \['linear', 'llm_prefix', 'text_embedding'\], got 'mlp'"
    ):
        build_head("mlp", n_hidden=8, n_features=5)
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['depth'\] for head 'linear'"):
        build_head("linear", n_hidden=8, n_features=5, depth=2)


@pytest.mark.parametrize("pool", ["mean", "lstm"])
def test_text_head_pools_only_the_sentence(pool):
    """Samples outside a sentence's mask do not change its embedding; the mean pool is the masked mean."""
    torch.manual_seed(0)
    head = build_head("text_embedding", n_hidden=8, n_features=5, pool=pool, dropout=0.0).eval()
    features = torch.randn(2, 8, 30)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[0, :12], mask[1, :30] = True, True
    out = head(features, mask)
    changed = features.clone()
    changed[0, :, 12:] = 100.0  # outside sentence 0
    assert torch.allclose(head(changed, mask)[0], out[0], atol=1e-6)
    assert torch.allclose(head(features[:1, :, :12])[0], out[0], atol=1e-5)  # = that sentence alone
    with pytest.raises(ValueError, match="at least one sample"):
        head(features, torch.zeros(2, 30, dtype=torch.bool))


def test_llm_prefix_through_a_sentence_embedding():
    """prefix_from=sentence_embedding: brain -> unit-norm embedding -> ClipCap mapper; the text-only stage's entry
    point gives the same prefix as the brain path when handed the embedding the brain predicts."""
    head = build_head("llm_prefix", n_hidden=8, n_features=6, n_tokens=3, prefix_from="sentence_embedding",
                      embed_dim=5, dropout=0.0).eval()  # fmt: skip
    features = torch.randn(4, 8, 40)
    emb = head.sentence_embedding(features)
    assert emb.shape == (4, 5) and torch.allclose(emb.norm(dim=1), torch.ones(4))
    prefix = head(features)
    assert prefix.shape == head.output_shape(4, 40) == (4, 5, 6)
    assert torch.allclose(head.tokens_from_embedding(3.0 * emb), prefix, atol=1e-6)  # normalised again inside
    assert set(dict(head.named_children())) == {"align", "mapper"}  # no segment adapter
    with pytest.raises(ValueError, match=r"embedding must have shape \(batch, 5\)"):
        head.tokens_from_embedding(torch.randn(4, 6))
    with pytest.raises(ValueError, match="needs embed_dim >= 1"):
        build_head("llm_prefix", n_hidden=8, n_features=6, prefix_from="sentence_embedding")
    with pytest.raises(ValueError, match="prefix_from must be one of"):
        build_head("llm_prefix", n_hidden=8, n_features=6, prefix_from="words")
    with pytest.raises(ValueError, match="needs prefix_from='sentence_embedding'"):
        build_head("llm_prefix", n_hidden=8, n_features=6).tokens_from_embedding(torch.randn(2, 5))
