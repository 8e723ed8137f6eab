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


def test_encoder_learning_rate_scale_protects_pretrained_weights_only():
    from ieegfm.finetune.base import PRETRAINED_ENCODER_LR_SCALE, resolve_encoder_lr_scale

    assert resolve_encoder_lr_scale("pretrained", "none") == PRETRAINED_ENCODER_LR_SCALE == 0.1
    assert resolve_encoder_lr_scale("scratch", "none") == 1.0  # random weights: the full rate
    assert resolve_encoder_lr_scale("scratch", "none", 0.3) == 0.3  # an explicit scale is kept
    assert resolve_encoder_lr_scale("pretrained", "encoder", 0.5) is None  # frozen: no learning rate
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="encoder_lr_scale must be > 0"):
            resolve_encoder_lr_scale("scratch", "none", bad)
    with pytest.raises(ValueError, match="init must be one of"):
        resolve_encoder_lr_scale("random", "none")


def test_scratch_encoder_trains_at_the_full_rate(caplog):
    import logging

    from ieegfm.config import load_config
    from ieegfm.finetune.runner import encoder_lr_scale

    caplog.set_level(logging.INFO)
    cfg = load_config("finetune", overrides=["ckpt=c", "shards=s", "init=scratch", "freeze=none", "optim.lr=3e-3"])
    assert encoder_lr_scale(cfg) == 1.0
    assert "init=scratch: the randomly initialised encoder trains at the full learning rate (lr 0.003" in caplog.text
    m = _module("clip", "none")
    m.hparams.encoder_lr_scale = 1.0
    lrs = {g["lr"] for g in m.configure_optimizers()["optimizer"].param_groups}
    assert lrs == {1e-2}  # head and encoder at one rate
    caplog.clear()
    cfg.optim.encoder_lr_scale = 0.1  # asked for explicitly: kept, with a warning
    assert encoder_lr_scale(cfg) == 0.1 and "handicapped task-only baseline" in caplog.text
    pre = load_config("finetune", overrides=["ckpt=c", "shards=s", "init=pretrained", "freeze=none"])
    assert encoder_lr_scale(pre) == 0.1
