"""CLIP / SigLIP losses: hand-written references, logit-scale clamping, DDP global negatives."""

from __future__ import annotations

import math
import socket
import time

import pytest
import torch
import torch.nn.functional as F

from ieegfm.losses import ClipLoss, SigLipLoss, build_loss, gather_world_size
from ieegfm.models import ConvAttentionEncoder, LinearEncoder


def _reference_clip(brain, audio, logit_scale):
    b = F.normalize(brain.reshape(len(brain), -1), dim=1)
    a = F.normalize(audio.reshape(len(audio), -1), dim=1)
    sim = logit_scale.exp() * b @ a.T
    labels = torch.arange(len(b))
    return (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2


def _reference_siglip(brain, audio, logit_scale, logit_bias):
    b = F.normalize(brain.reshape(len(brain), -1), dim=1)
    a = F.normalize(audio.reshape(len(audio), -1), dim=1)
    logits = logit_scale.exp() * b @ a.T + logit_bias
    signs = 2 * torch.eye(len(b)) - 1
    return -F.logsigmoid(signs * logits).sum() / len(b)


@pytest.mark.parametrize("shape", [(8, 5), (8, 5, 7)])
def test_clip_matches_reference(shape):
    torch.manual_seed(0)
    brain = torch.randn(shape, requires_grad=True)
    audio = torch.randn(shape)
    loss_fn = ClipLoss()
    assert loss_fn.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    loss = loss_fn(brain, audio)
    logit_scale = loss_fn.logit_scale.detach().clone().requires_grad_(True)
    brain_ref = brain.detach().clone().requires_grad_(True)
    ref = _reference_clip(brain_ref, audio, logit_scale)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(brain.grad, brain_ref.grad)
    torch.testing.assert_close(loss_fn.logit_scale.grad, logit_scale.grad)
    assert loss_fn.n_candidates == 8
    logits = loss_fn.logits(brain, audio)
    assert logits.shape == (8, 8)
    b = F.normalize(brain.detach().reshape(8, -1), dim=1)
    a = F.normalize(audio.reshape(8, -1), dim=1)
    torch.testing.assert_close(logits.detach(), loss_fn.scale * b @ a.T)


def test_clip_scale_invariant_and_no_audio_grad():
    torch.manual_seed(0)
    brain = torch.randn(6, 4)
    audio = torch.randn(6, 4, requires_grad=True)
    loss_fn = ClipLoss()
    loss = loss_fn(brain, audio)
    torch.testing.assert_close(loss, loss_fn(3.0 * brain, 0.5 * audio))
    loss.backward()
    assert audio.grad is None


def test_perfect_alignment_large_scale_gives_zero_loss():
    emb = torch.eye(8, 16) * 3.0
    loss_fn = ClipLoss(init_logit_scale=math.log(100))
    assert loss_fn(emb, emb.clone()).item() < 1e-6
    assert ClipLoss(init_logit_scale=0.0)(emb, emb.clone()).item() > 1.0  # scale 1: far from 0


def test_logit_scale_clamps():
    loss_fn = ClipLoss()
    with torch.no_grad():
        loss_fn.logit_scale.fill_(10.0)
    assert loss_fn.scale == pytest.approx(100.0)
    brain, audio = torch.randn(4, 3), torch.randn(4, 3)
    loss = loss_fn(brain, audio)
    assert loss_fn.logit_scale.item() == pytest.approx(math.log(100))
    ref = _reference_clip(brain, audio, torch.tensor(math.log(100)))
    torch.testing.assert_close(loss, ref)
    with torch.no_grad():
        loss_fn.logit_scale.fill_(-3.0)
    loss_fn(brain, audio)
    assert loss_fn.logit_scale.item() == 0.0
    assert loss_fn.scale == pytest.approx(1.0)


def test_two_forwards_then_backward():
    """The in-place clamp must not break a graph built by an earlier forward."""
    loss_fn = ClipLoss()
    brain = torch.randn(4, 3, requires_grad=True)
    audio = torch.randn(4, 3)
    total = loss_fn(brain, audio) + loss_fn(brain * 2, audio)
    total.backward()
    assert loss_fn.logit_scale.grad is not None


def test_not_learnable_and_single_process_world():
    loss_fn = ClipLoss(learnable=False)
    assert not loss_fn.logit_scale.requires_grad
    assert loss_fn.world_size == gather_world_size() == 1


def test_clip_shape_errors():
    loss_fn = ClipLoss()
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"\(batch, n_features\)"):
        loss_fn(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match=r"\(batch, n_features, n_times\)"):
        loss_fn(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="batch size 0"):
        loss_fn(torch.randn(0, 3), torch.randn(0, 3))
    with pytest.raises(ValueError, match="max_logit_scale"):
        ClipLoss(max_logit_scale=-1.0)


def test_build_loss():
    assert isinstance(build_loss(), ClipLoss)
    assert build_loss("clip", init_logit_scale=1.0).logit_scale.item() == 1.0
    assert isinstance(build_loss("siglip"), SigLipLoss)
    with pytest.raises(ValueError, match="clip"):
        build_loss("infonce")
    with pytest.raises(ValueError, match="temperature"):
        build_loss("clip", temperature=0.07)


@pytest.mark.parametrize("shape", [(8, 5), (8, 5, 7)])
def test_siglip_matches_reference(shape):
    torch.manual_seed(0)
    brain = torch.randn(shape, requires_grad=True)
    audio = torch.randn(shape)
    loss_fn = SigLipLoss()
    loss = loss_fn(brain, audio)
    scale = loss_fn.logit_scale.detach().clone().requires_grad_(True)
    bias = loss_fn.logit_bias.detach().clone().requires_grad_(True)
    ref = _reference_siglip(brain, audio, scale, bias)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(loss_fn.logit_scale.grad, scale.grad)
    torch.testing.assert_close(loss_fn.logit_bias.grad, bias.grad)


# --------------------------------------------------------------------------------------------
# DDP: two gloo processes, each holding half of a fixed global batch.

GLOBAL_BATCH, N_CHANS, N_TIMES, N_FEATURES = 8, 5, 12, 6
# rows on rank 0 (rank 1 holds the rest): equal halves, and the uneven last batches of an exactly-once epoch
SPLITS = {"equal": 4, "unequal": 5}


def _global_data():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(GLOBAL_BATCH, N_CHANS, N_TIMES, generator=g)
    subject = torch.tensor([0, 1] * (GLOBAL_BATCH // 2))
    audio_mean = torch.randn(GLOBAL_BATCH, N_FEATURES, generator=g)
    audio_seq = torch.randn(GLOBAL_BATCH, N_FEATURES, N_TIMES, generator=g)
    return x, subject, audio_mean, audio_seq


def _cases():
    """(name, encoder factory, loss factory, audio key); same seed -> same init on every rank."""

    def conv():
        torch.manual_seed(0)
        # eval(): BatchNorm uses running statistics, so a half batch normalises like the whole;
        # in train mode per-rank batch statistics would differ from the single-process ones.
        return ConvAttentionEncoder(
            n_chans=N_CHANS,
            n_subjects=2,
            n_times=N_TIMES,
            sfreq=40.0,
            n_features=N_FEATURES,
            projected_chans=4,
            hidden=8,
            depth=2,
        ).eval()

    def linear_seq():
        torch.manual_seed(0)
        return LinearEncoder(
            n_chans=N_CHANS,
            n_subjects=2,
            n_times=N_TIMES,
            sfreq=40.0,
            n_features=N_FEATURES,
            pooling="none",
            projected_chans=4,
        )

    return [
        ("clip_conv_mean", conv, lambda: ClipLoss(init_logit_scale=1.5), "mean"),
        ("clip_linear_seq", linear_seq, lambda: ClipLoss(init_logit_scale=1.5), "seq"),
        (
            "siglip_conv_mean",
            conv,
            lambda: SigLipLoss(init_logit_scale=1.5, init_logit_bias=-1.0),
            "mean",
        ),
    ]


def _step(encoder, loss_fn, x, subject, audio):
    loss = loss_fn(encoder(x, subject), audio)
    loss.backward()
    params = dict(encoder.named_parameters())
    params.update({f"loss.{k}": v for k, v in loss_fn.named_parameters()})
    return loss.detach(), {k: p.grad.detach().clone() for k, p in params.items()}


def _ddp_worker(rank, world, port, out_path):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, subject, audio_mean, audio_seq = _global_data()
        results = {}
        for split, first in SPLITS.items():  # rank 0 holds the first `first` rows, rank 1 the rest
            local = slice(0, first) if rank == 0 else slice(first, GLOBAL_BATCH)
            for name, make_encoder, make_loss, audio_key in _cases():
                encoder, loss_fn = make_encoder(), make_loss()
                audio = audio_mean if audio_key == "mean" else audio_seq
                loss, grads = _step(encoder, loss_fn, x[local], subject[local], audio[local])
                # Explicit gradient averaging, what DistributedDataParallel does: all-reduce(SUM) / world.
                dist.all_reduce(loss)
                loss /= world
                for g in grads.values():
                    dist.all_reduce(g)
                    g /= world
                results[split, name] = {
                    "loss": loss,
                    "grads": grads,
                    "n_candidates": loss_fn.n_candidates,
                    "world_size": loss_fn.world_size,
                }
        torch.save(results, f"{out_path}.rank{rank}")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_global_negatives_match_single_process(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    start = time.perf_counter()
    world = 2
    out_path = str(tmp_path / "ddp")
    mp.spawn(_ddp_worker, args=(world, _free_port(), out_path), nprocs=world, join=True)
    elapsed = time.perf_counter() - start

    x, subject, audio_mean, audio_seq = _global_data()
    for rank in range(world):
        results = torch.load(f"{out_path}.rank{rank}")
        for split in SPLITS:
            for name, make_encoder, make_loss, audio_key in _cases():
                audio = audio_mean if audio_key == "mean" else audio_seq
                ref_loss, ref_grads = _step(make_encoder(), make_loss(), x, subject, audio)
                got, msg = results[split, name], f"{split} {name}"
                assert got["n_candidates"] == GLOBAL_BATCH
                assert got["world_size"] == world
                torch.testing.assert_close(got["loss"], ref_loss, atol=1e-6, rtol=0, msg=msg)
                assert set(got["grads"]) == set(ref_grads)
                assert "loss.logit_scale" in ref_grads
                for key, ref in ref_grads.items():
                    torch.testing.assert_close(got["grads"][key], ref, atol=1e-5, rtol=0, msg=f"{msg}: {key}")
    print(f"DDP test: {elapsed:.1f} s for 2 gloo processes")
