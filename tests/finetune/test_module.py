"""The Finetuning module without a Trainer: objectives, frozen encoder, learning rates."""

import pytest
import torch

from ieegfm.finetune.module import Finetuning
from ieegfm.heads import build_head
from ieegfm.losses import build_loss
from ieegfm.models import build_encoder


def _module(objective, freeze):
    torch.manual_seed(0)
    enc = build_encoder("conv_attention", n_chans=4, n_subjects=1, n_times=40, sfreq=40.0, n_features=3, hidden=8,
                        projected_chans=4, depth=1)  # fmt: skip
    head = build_head("linear", n_hidden=8, n_features=3)
    return Finetuning(
        enc,
        head,
        build_loss("clip"),
        objective=objective,
        freeze=freeze,
        lr=1e-2,
        encoder_lr_scale=0.1,
        warmup_steps=0,
        max_steps=10_000,
    )


def test_regression_objective_is_mse_and_learns():
    m = _module("regression", "none")
    x, s = torch.randn(32, 4, 40), torch.zeros(32, dtype=torch.long)
    target = x[:, :3].mean(-1) * 2  # a linear function of the input
    assert m.objective(m(x, s), target).item() == pytest.approx(torch.nn.functional.mse_loss(m(x, s), target).item())
    opt = m.configure_optimizers()["optimizer"]
    first = m.objective(m(x, s), target).item()
    for _ in range(200):
        opt.zero_grad()
        m.objective(m(x, s), target).backward()
        opt.step()
    last = m.objective(m(x, s), target).item()
    assert last < 0.5 * first and last < 0.5 * target.square().mean().item()  # better than predicting zero
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == pytest.approx([1e-3, 1e-2])  # the encoder at encoder_lr_scale x the head's rate


def test_frozen_encoder_gets_no_gradient_and_no_optimizer_group():
    m = _module("clip", "encoder")
    out = m(torch.randn(8, 4, 40), torch.zeros(8, dtype=torch.long))
    m.objective(out, torch.randn(8, 3)).backward()
    assert all(p.grad is None and not p.requires_grad for p in m.encoder.parameters())
    assert any(p.grad is not None for p in m.head.parameters())
    opt = m.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in m.encoder.parameters()}
    with pytest.raises(ValueError, match="objective must be one of"):
        _module("ridge", "none")
