"""Brain encoders: shapes, per-subject projection, attention, linearity, errors, a tiny overfit."""

from __future__ import annotations

import math
import time

import pytest
import torch

from ieegfm.losses import ClipLoss
from ieegfm.models import (
    AdditiveAttentionPooling,
    BrainEncoder,
    ConvAttentionEncoder,
    LinearEncoder,
    SubjectLayers,
    build_encoder,
    receptive_field_samples,
)

N_CHANS, N_SUBJECTS, N_TIMES, SFREQ, N_FEATURES = 6, 2, 24, 40.0, 5
SMALL = dict(projected_chans=7, hidden=8, depth=3, kernel_size=3, dropout=0.0)


def _kwargs(pooling="mean", **overrides):
    kw = dict(
        n_chans=N_CHANS,
        n_subjects=N_SUBJECTS,
        n_times=N_TIMES,
        sfreq=SFREQ,
        n_features=N_FEATURES,
        pooling=pooling,
        **SMALL,
    )
    kw.update(overrides)
    return kw


def _inputs(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, N_CHANS, N_TIMES, generator=g)
    subject = torch.arange(batch) % N_SUBJECTS
    return x, subject


@pytest.mark.parametrize("name", ["conv_attention", "linear"])
@pytest.mark.parametrize("pooling", ["mean", "none"])
def test_output_and_feature_shapes(name, pooling):
    torch.manual_seed(0)
    model = build_encoder(name, **_kwargs(pooling)).eval()
    assert isinstance(model, BrainEncoder)
    x, subject = _inputs()
    out = model(x, subject)
    expected = (4, N_FEATURES) if pooling == "mean" else (4, N_FEATURES, N_TIMES)
    assert out.shape == expected
    assert model.output_shape == expected[1:]
    out2, features = model(x, subject, return_features=True)
    torch.testing.assert_close(out, out2)
    assert features.shape == (4, model.n_hidden, N_TIMES)
    assert model.n_hidden == (SMALL["hidden"] if name == "conv_attention" else N_FEATURES)


def test_build_encoder_filters_and_rejects():
    lin = build_encoder("linear", **_kwargs())  # hidden / depth / dropout dropped
    assert isinstance(lin, LinearEncoder)
    assert isinstance(build_encoder("conv_attention", **_kwargs()), ConvAttentionEncoder)
    with pytest.raises(ValueError, match="conv_attention"):
        build_encoder("transformer", **_kwargs())
    with pytest.raises(ValueError, match="hiden"):
        build_encoder("linear", **_kwargs(hiden=3))
    with pytest.raises(ValueError, match="pooling"):
        build_encoder("linear", **_kwargs(pooling="max"))
    with pytest.raises(ValueError, match="dropout"):
        build_encoder("conv_attention", **_kwargs(dropout=1.5))


def test_subject_layers_init_and_gather():
    torch.manual_seed(0)
    layer = SubjectLayers(n_chans=400, projected_chans=300, n_subjects=2)
    assert layer.weight.shape == (2, 400, 300)
    assert abs(layer.weight.std().item() - 1 / math.sqrt(400)) < 0.002
    x = torch.randn(3, 400, 5)
    subject = torch.tensor([1, 0, 1])
    out = layer(x, subject)
    for i, s in enumerate(subject.tolist()):
        torch.testing.assert_close(out[i], layer.weight[s].T @ x[i])


@pytest.mark.parametrize("name", ["conv_attention", "linear"])
def test_changing_subject1_weights_leaves_subject0(name):
    torch.manual_seed(0)
    model = build_encoder(name, **_kwargs()).eval()
    x, _ = _inputs(batch=3)
    s0 = torch.zeros(3, dtype=torch.long)
    s1 = torch.ones(3, dtype=torch.long)
    before0, before1 = model(x, s0), model(x, s1)
    with torch.no_grad():
        model.subject_layers.weight[1].normal_()
    torch.testing.assert_close(model(x, s0), before0)
    assert not torch.allclose(model(x, s1), before1)


@pytest.mark.parametrize("name", ["conv_attention", "linear"])
def test_zero_padded_channels_contribute_nothing(name):
    torch.manual_seed(0)
    model = build_encoder(name, **_kwargs()).eval()
    x, subject = _inputs()
    x[:, 4:] = 0.0  # this subject has 4 contacts; the last 2 are padding
    before = model(x, subject)
    with torch.no_grad():
        model.subject_layers.weight[:, 4:].normal_(std=10.0)
    torch.testing.assert_close(model(x, subject), before)
    torch.testing.assert_close(model(x[:, :4], subject), before)  # unpadded (a batch of small implants): the same


def test_spatial_input_reads_unpadded_batches_alike():
    torch.manual_seed(0)
    model = build_encoder("conv_attention", **_kwargs(input="spatial")).eval()
    pos = torch.randn(2, 6, 3) * 20
    pos[:, 4:] = math.nan  # both subjects have 4 contacts; the last 2 are padding
    model.set_positions(pos)
    x, subject = _inputs()
    x[:, 4:] = 0.0
    torch.testing.assert_close(model(x[:, :4], subject), model(x, subject))


def test_attention_weights_sum_to_one():
    torch.manual_seed(0)
    model = ConvAttentionEncoder(**_kwargs()).eval()
    x, subject = _inputs()
    weights = model.attention_weights(x, subject)
    assert weights.shape == (4, N_TIMES)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4))
    with pytest.raises(ValueError, match="pooling='mean'"):
        ConvAttentionEncoder(**_kwargs("none")).attention_weights(x, subject)


def test_additive_attention_matches_formula():
    torch.manual_seed(0)
    pool = AdditiveAttentionPooling(hidden=4, attention_dim=3)
    h = torch.randn(2, 4, 6)
    pooled, weights = pool(h, return_weights=True)
    w, b, v = pool.proj.weight, pool.proj.bias, pool.score.weight
    for i in range(2):
        scores = torch.stack([(v @ torch.tanh(w @ h[i, :, t] + b)).squeeze() for t in range(6)])
        alpha = torch.softmax(scores, dim=0)
        torch.testing.assert_close(weights[i], alpha)
        torch.testing.assert_close(pooled[i], h[i] @ alpha)


@pytest.mark.parametrize("pooling", ["mean", "none"])
def test_linear_encoder_is_linear(pooling):
    torch.manual_seed(0)
    kw = _kwargs(pooling)
    for conv_only in ("hidden", "depth", "dropout"):
        kw.pop(conv_only)
    model = LinearEncoder(**kw).eval()
    x1, subject = _inputs(seed=1)
    x2, _ = _inputs(seed=2)
    a, b = 2.5, -0.7
    torch.testing.assert_close(
        model(a * x1 + b * x2, subject),
        a * model(x1, subject) + b * model(x2, subject),
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.parametrize("name", ["conv_attention", "linear"])
def test_wrong_inputs_raise_clear_errors(name):
    model = build_encoder(name, **_kwargs())
    x, subject = _inputs()
    with pytest.raises(ValueError, match=r"\(batch, n_chans<=6, n_times=24\)"):
        model(torch.cat([x, x[:, :1]], 1), subject)  # more channels than the largest implant
    with pytest.raises(ValueError, match=r"n_times=24"):
        model(x[..., :10], subject)
    with pytest.raises(ValueError, match=r"\(batch, n_chans<=6, n_times=24\)"):
        model(x[0], subject)
    with pytest.raises(ValueError, match=r"subject must have shape \(batch=4,\)"):
        model(x, subject[:2])
    with pytest.raises(ValueError, match="integer"):
        model(x, subject.float())
    with pytest.raises(ValueError, match="n_subjects=2"):
        model(x, subject + 1)
    with pytest.raises(ValueError, match="floating-point"):
        model(x.long(), subject)


def test_receptive_field():
    assert receptive_field_samples(depth=10, kernel_size=3) == 125  # 1 + 2 * 2 * (1+2+4+8+16)
    model = ConvAttentionEncoder(**_kwargs(depth=10, sfreq=120.0))
    assert [b.block[0].dilation[0] for b in model.blocks] == [1, 2, 4, 8, 16] * 2
    assert model.receptive_field == 125
    assert model.receptive_field_s == pytest.approx(125 / 120.0)


def test_receptive_field_is_empirical():
    """A unit impulse at the centre reaches exactly ``receptive_field`` output samples."""
    torch.manual_seed(0)
    kw = _kwargs("none", depth=4, n_times=64)
    model = ConvAttentionEncoder(**kw).eval()
    x = torch.zeros(1, N_CHANS, 64)
    subject = torch.zeros(1, dtype=torch.long)
    base = model(x, subject)
    x[0, :, 32] = 1.0
    changed = (model(x, subject) - base).abs().amax(dim=1)[0] > 1e-7
    assert int(changed.sum()) == model.receptive_field == receptive_field_samples(4, 3)


def test_reference_parameter_count():
    model = ConvAttentionEncoder(
        n_chans=100,
        n_subjects=1,
        n_times=120,
        sfreq=40.0,
        n_features=1024,
        projected_chans=270,
        hidden=320,
        depth=10,
        kernel_size=3,
    )
    n_params = sum(p.numel() for p in model.parameters())
    assert 2_000_000 < n_params < 7_600_000, n_params


def test_tiny_overfit_with_clip_loss():
    """32 (brain, audio) pairs from a fixed random linear map are learned in <= 200 Adam steps."""
    start = time.perf_counter()
    torch.manual_seed(0)
    n, n_chans, n_times, n_features = 32, 8, 16, 16
    x = torch.randn(n, n_chans, n_times)
    mixing = torch.randn(n_features, n_chans)
    audio = torch.einsum("fc,bct->bf", mixing, x) / n_times**0.5
    subject = torch.zeros(n, dtype=torch.long)
    model = ConvAttentionEncoder(
        n_chans=n_chans,
        n_subjects=1,
        n_times=n_times,
        sfreq=40.0,
        n_features=n_features,
        projected_chans=16,
        hidden=32,
        depth=2,
    )
    loss_fn = ClipLoss()
    opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=3e-3)
    first = None
    for _ in range(200):
        loss = loss_fn(model(x, subject), audio)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final = float(loss_fn(model(x, subject), audio))
        top1 = (loss_fn.logits(model(x, subject), audio).argmax(dim=1) == torch.arange(n)).float()
    assert first > 0.5 * math.log(n)
    assert final < 0.25 * math.log(n), (first, final)
    assert top1.mean() > 0.9
    assert time.perf_counter() - start < 10


def test_models_and_losses_are_pure_torch():
    """Importing models/ and losses/ pulls in neither Lightning nor ieegfm's data pipeline."""
    import subprocess
    import sys

    code = (
        "import sys, ieegfm.models, ieegfm.losses\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', "
        "'pytorch_lightning', 'webdataset') or m.startswith(('ieegfm.data', 'ieegfm.shards', "
        "'ieegfm.pretrain', 'ieegfm.io')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
