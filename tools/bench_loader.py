"""Loader throughput: training windows/s from shards in one process vs reading the same tar bytes raw.

Usage: ``python tools/bench_loader.py SHARDS [--batch 64] [--repeats 7]`` (e.g. the demo's ``demo/shards``).
Baseline: the same tar files read with :mod:`tarfile` member by member (bytes only, no decoding), expressed in
the windows those bytes hold; also a plain sequential read of the files (4 MiB blocks: the page-cache copy
bound). Each is measured ``repeats`` times, interleaved, from the page cache; best and median are printed, the
ratio uses the medians. Also prints what the training step of the default CPU model consumes, for comparison.
Never gates CI.
"""

from __future__ import annotations

import argparse
import statistics
import tarfile
import time

import torch
from bench_training import bench_encoder

from ieegfm.data import ShardDataModule
from ieegfm.losses import ClipLoss


def raw_read(urls: list[str]) -> float:
    """Seconds to read every member of the tars."""
    t = time.perf_counter()
    for url in urls:
        with tarfile.open(url) as tar:
            for member in tar:
                f = tar.extractfile(member)
                if f is not None:
                    f.read()
    return time.perf_counter() - t


def plain_read(urls: list[str]) -> float:
    """Seconds to read the files sequentially in 4 MiB blocks."""
    t = time.perf_counter()
    for url in urls:
        with open(url, "rb", buffering=0) as f:
            while f.read(1 << 22):
                pass
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    dm = ShardDataModule(args.shards, batch_size=args.batch, shuffle_buffer=1000)
    urls = dm.urls("train")
    n_windows = dm.n_windows("train")
    raw_read(urls)  # warm the page cache for all

    def ours() -> float:
        t = time.perf_counter()
        ours.n = sum(len(b["brain"]) for b in dm.train_dataloader())
        return time.perf_counter() - t

    times: dict = {"tar": [], "plain": [], "ours": []}
    for _ in range(args.repeats):
        times["tar"].append(raw_read(urls))
        times["plain"].append(plain_read(urls))
        times["ours"].append(ours())
    n = ours.n
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    enc = bench_encoder(dm)  # the default CPU model of tools/bench_training.py
    loss = ClipLoss()
    opt = torch.optim.AdamW(list(enc.parameters()) + list(loss.parameters()))
    batch = next(iter(dm.train_dataloader()))
    t = time.perf_counter()
    for _ in range(10):
        out = loss(enc(batch["brain"].float(), batch["subject"]), batch["audio"].float().mean(-1))
        opt.zero_grad()
        out.backward()
        opt.step()
    step_wps = 10 * args.batch / (time.perf_counter() - t)
    print(
        f"shards: {args.shards} ({len(urls)} train shards, {n_windows} windows, {dm.n_chans} channels, "
        f"{dm.n_features} features)"
    )
    print(f"{'':34s}{'median':>12s}{'best':>12s}  windows/s")
    print(f"{'plain sequential read':34s}{n_windows / med['plain']:12,.0f}{n_windows / best['plain']:12,.0f}")
    print(f"{'raw tar read (baseline)':34s}{n_windows / med['tar']:12,.0f}{n_windows / best['tar']:12,.0f}")
    print(f"{'ieegfm loader, 1 process':34s}{n / med['ours']:12,.0f}{n / best['ours']:12,.0f}")
    print(
        f"ieegfm / raw tar read: {n / med['ours'] / (n_windows / med['tar']):.2f}x (goal >= 0.8, issue 19); "
        f"ieegfm / plain read: {n / med['ours'] / (n_windows / med['plain']):.2f}x"
    )
    print(
        f"training step (default CPU model, batch {args.batch}): {step_wps:8,.0f} windows/s "
        f"(loader / step = {n / med['ours'] / step_wps:.1f}x)"
    )


if __name__ == "__main__":
    main()
