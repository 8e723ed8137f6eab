"""Training throughput from real shards vs the same batches held in memory (the data stall).

Usage: ``python tools/bench_training.py SHARDS [--steps 100] [--batch 64] [--workers 1]`` (e.g. ``demo/shards``).
Runs the same ``ContrastivePretraining`` fit twice on this machine's device, once streaming from the shards
(``ShardDataModule``) and once from batches already in memory, and prints windows/s of each, their ratio and the
fraction of step time spent waiting for data (``perf/data_wait_fraction``, goal <= 0.05). Never gates CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ieegfm.data import ShardDataModule
from ieegfm.data.loader import FetchTiming
from ieegfm.data.windows import identity
from ieegfm.losses import ClipLoss
from ieegfm.models import build_encoder
from ieegfm.pretrain.module import ContrastivePretraining
from ieegfm.pretrain.throughput import ThroughputMonitor


class _Recorder(ThroughputMonitor):
    def __init__(self) -> None:
        super().__init__(log_every_n_steps=10)
        self.values: list[tuple[float, float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total, wait, gap, windows = self._total, self._wait, self._gap, self._windows
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._total == 0 and total > 0:  # a window was just logged
            self.values.append((windows / total, wait / total, gap / total))


class TimedDataLoader(FetchTiming, torch.utils.data.DataLoader):
    """In-memory baseline loader, timed like the shard loader."""


def write_synthetic(folder: Path, hours: float, n_chans: int = 128, n_features: int = 1024, pool_n: int = 1) -> Path:
    """Random shards of ``hours`` of 30-s chunks at 40 Hz (float16, as ``ieegfm pack`` writes them); audio as
    ``pool_n``-sample bin means when ``pool_n`` > 1 (``ieegfm pack audio.pool_s``)."""
    from ieegfm.shards.writer import ShardWriter

    rng = np.random.default_rng(0)
    n_chunks, n = int(hours * 120), 1200
    writer = ShardWriter(folder, "train", samples_per_shard=max(n_chunks // 8, 1))
    brain = rng.standard_normal((n_chans, n)).astype(np.float16)
    audio = rng.standard_normal((n_features, n // pool_n)).astype(np.float16)
    for i in range(n_chunks):
        meta = {"subject": "01", "day": 0, "tmin": 30.0 * i, "sfreq": 40.0, "block": "b"}
        members = {"brain.npy": np.roll(brain, i, axis=1), "audio.npy": np.roll(audio, i, axis=1), "json": meta}
        writer.write(f"c{i:06d}", members, n_windows=10, n_times=n)
    manifest = {
        "sfreq": 40.0,
        "audio_sfreq": 40.0 / pool_n,
        "window_s": 3.0,
        "n_chans_max": n_chans,
        "n_features": n_features,
        "subjects": {"01": {"index": 0, "n_chans": n_chans}},
        "shards": {"train": writer.close()},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def bench_encoder(dm: ShardDataModule, reference: bool = False):
    """The conv-attention encoder the benchmarks train: the default CPU size (64 projected channels, 6 blocks of
    128) or the reference size of ``tools/bench_gpu.py``, shaped to the shards of ``dm``."""
    size = dict(projected_chans=64, hidden=128, depth=6)
    if reference:
        from bench_gpu import REFERENCE

        shaped = ("n_chans", "n_subjects", "n_times", "sfreq", "n_features")
        size = {k: v for k, v in REFERENCE.items() if k not in shaped}
    return build_encoder(
        "conv_attention",
        n_chans=dm.n_chans,
        n_subjects=len(dm.subjects),
        n_times=dm.window_n,
        sfreq=dm.sfreq,
        n_features=dm.n_features,
        **size,
    )


def fit(dm: ShardDataModule, loader, steps: int, reference: bool) -> tuple[float, float, float]:
    torch.manual_seed(0)
    module = ContrastivePretraining(bench_encoder(dm, reference), ClipLoss(), max_steps=steps)
    rec = _Recorder()
    cuda = torch.cuda.is_available()
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if (cuda and reference) else "32-true",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[rec],
        limit_val_batches=0,
        use_distributed_sampler=False,
    )
    trainer.fit(module, train_dataloaders=loader)
    vals = rec.values[1:] or rec.values  # skip the warm-up window
    return tuple(sum(v[i] for v in vals) / len(vals) for i in range(3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards", nargs="?")
    p.add_argument("--synthetic-hours", type=float, default=None, help="write random reference-size shards")
    p.add_argument("--reference", action="store_true", help="reference-size encoder (bf16 on a GPU)")
    p.add_argument("--audio-pool-s", type=float, default=0.0, help="synthetic audio stored as bin means (s)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="fits of each kind, alternated; medians are printed")
    args = p.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards
        if args.synthetic_hours:
            t = time.perf_counter()
            shards = write_synthetic(Path(tmp), args.synthetic_hours, pool_n=max(int(args.audio_pool_s * 40), 1))
            print(
                f"wrote {args.synthetic_hours:g} h of random reference-size shards in {time.perf_counter() - t:.0f} s"
            )
        elif shards is None:
            p.error("give SHARDS or --synthetic-hours")
        dm = ShardDataModule(
            shards,
            batch_size=args.batch,
            num_workers=args.workers,
            resampled=True,
            samples_per_epoch=args.batch * (args.steps + 10),
            pin_memory=cuda,
            audio_pooling="mean",  # the module's default pooling
        )
        batches = list(itertools.islice(iter(dm.train_dataloader()), args.steps + 10))
        memory = TimedDataLoader(batches, batch_size=None, shuffle=False, collate_fn=identity, pin_memory=cuda)
        runs: dict = {"from shards": [], "in memory": []}
        for _ in range(args.repeats):  # alternated, so that drifts (clocks, caches) hit both alike
            for name in runs:
                t = time.perf_counter()
                loader = dm.train_dataloader() if name == "from shards" else memory
                runs[name].append((*fit(dm, loader, args.steps, args.reference), time.perf_counter() - t))
    device = torch.cuda.get_device_name() if cuda else "cpu"
    print(
        f"device: {device}; {'reference' if args.reference else 'default CPU'} encoder; {args.steps} steps, "
        f"batch {args.batch}, {args.workers} loader worker(s)"
    )
    print("fractions of step time: data wait (blocked in next() + copy to device); gap (+ Lightning's bookkeeping)")
    med = {name: [statistics.median(v[i] for v in r) for i in range(4)] for name, r in runs.items()}
    for name, (wps, wait, gap, t) in med.items():
        each = ", ".join(f"{v[0]:,.0f}" for v in runs[name])
        print(f"{name:12s} {wps:8,.0f} windows/s (runs: {each}), data wait {wait:.3f}, gap {gap:.3f}, fit {t:.0f} s")
    ratio = med["from shards"][0] / med["in memory"][0]
    print(f"ratio shards / in-memory (medians): {ratio:.2f}; data stall {med['from shards'][1]:.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
