"""GPU throughput: pretraining windows/s per GPU (fp32 vs bf16, eager vs torch.compile) and wav2vec2-large
extraction speed (hours of audio per minute, one 30-s chunk per forward vs batched chunks).

Usage: ``python tools/bench_gpu.py [--batch 256] [--steps 50] [--audio-min 10]``. Needs a CUDA GPU; prints a
Markdown table with the device name. Random weights (no checkpoint is downloaded): throughput does not depend
on the weights. Never gates CI.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from ieegfm.losses import ClipLoss
from ieegfm.models import build_encoder

REFERENCE = {
    "n_chans": 128,
    "n_subjects": 4,
    "n_times": 120,
    "sfreq": 40.0,
    "n_features": 1024,
    "projected_chans": 270,
    "hidden": 320,
    "depth": 10,
    "kernel_size": 3,
    "dropout": 0.0,
}


def bench_training(batch: int, steps: int, bf16: bool, compile_: bool, pooling: str) -> float:
    """Training windows/s of the reference-size conv-attention encoder + CLIP loss on in-memory tensors."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    enc = build_encoder("conv_attention", pooling=pooling, **REFERENCE).to(dev)
    loss_fn = ClipLoss().to(dev)
    if compile_:
        enc.compile()
    opt = torch.optim.AdamW(list(enc.parameters()) + list(loss_fn.parameters()), lr=1e-4)
    x = torch.randn(batch, REFERENCE["n_chans"], REFERENCE["n_times"], device=dev)
    subject = torch.randint(0, REFERENCE["n_subjects"], (batch,), device=dev)
    audio = torch.randn(batch, REFERENCE["n_features"], REFERENCE["n_times"], device=dev)
    target = audio.mean(-1) if pooling == "mean" else audio

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(enc(x, subject), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def bench_wav2vec2(audio_min: float, batch_chunks: int, folder: str) -> float:
    """Hours of audio per minute through wav2vec2-large (xlsr-53 size), layer 19, bf16, 30-s chunks."""
    from ieegfm.features.wav2vec2 import Wav2Vec2Features

    w = Wav2Vec2Features(folder, layer=19, chunk_s=30.0, device="cuda")
    rng = np.random.default_rng(0)
    n_chunks = int(audio_min * 2)
    chunks = [0.1 * rng.standard_normal(16000 * 30).astype(np.float32) for _ in range(max(batch_chunks, 2))]
    w.compute_batch(chunks[:batch_chunks])  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    done = 0
    while done < n_chunks:
        w.compute_batch(chunks[:batch_chunks])
        done += batch_chunks
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t
    return (done * 30 / 3600) / (elapsed / 60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--audio-min", type=float, default=10.0, help="minutes of audio per extraction benchmark")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name()
    n_params = sum(p.numel() for p in build_encoder("conv_attention", **REFERENCE).parameters())
    print(
        f"device: {name}; torch {torch.__version__}; encoder {n_params / 1e6:.2f} M parameters "
        f"({REFERENCE}); batch {args.batch}"
    )
    print("| pooling | precision | compile | windows/s per GPU |\n|---|---|---|---|")
    base = None
    for pooling in ("mean", "none"):
        for bf16, compile_ in ((False, False), (True, False), (True, True)):
            try:
                wps = bench_training(args.batch, args.steps, bf16, compile_, pooling)
            except Exception as err:  # compile may be unavailable
                print(f"| {pooling} | {'bf16' if bf16 else 'fp32/tf32'} | {compile_} | failed: {type(err).__name__} |")
                continue
            base = wps if (pooling, bf16, compile_) == ("mean", False, False) else base
            ratio = f" ({wps / base:.2f}x fp32 eager)" if base else ""
            print(f"| {pooling} | {'bf16' if bf16 else 'fp32/tf32'} | {compile_} | {wps:,.0f}{ratio} |", flush=True)

    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        Wav2Vec2Model(cfg).save_pretrained(folder)
        print("\n| wav2vec2-large (xlsr-53 size), layer 19, bf16 | hours of audio per minute |\n|---|---|")
        single = bench_wav2vec2(args.audio_min, 1, folder)
        print(f"| 1 chunk of 30 s per forward | {single:.1f} |", flush=True)
        batched = bench_wav2vec2(args.audio_min, 8, folder)
        print(f"| 8 chunks of 30 s per forward | {batched:.1f} ({batched / single:.2f}x) |")


if __name__ == "__main__":
    main()
