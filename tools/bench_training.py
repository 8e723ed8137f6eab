"""Training throughput from real shards vs the same batches held in memory (the data stall).

Usage: ``python tools/bench_training.py SHARDS [--steps 100] [--batch 64] [--workers 1]`` (e.g. ``demo/shards``).
Runs the same ``ContrastivePretraining`` fit twice on this machine's device, once streaming from the shards
(``ShardDataModule``) and once from batches already in memory, and prints windows/s of each, their ratio and the
fraction of step time spent waiting for data (``perf/data_wait_fraction``, goal <= 0.05). Never gates CI.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
import warnings

import lightning as L
import torch

from ieegfm.data import ShardDataModule
from ieegfm.data.pipeline import identity
from ieegfm.losses import ClipLoss
from ieegfm.models import build_encoder
from ieegfm.pretrain.module import ContrastivePretraining
from ieegfm.pretrain.throughput import ThroughputMonitor


class _Recorder(ThroughputMonitor):
    def __init__(self) -> None:
        super().__init__(log_every_n_steps=10)
        self.values: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total, wait, windows = self._total, self._wait, self._windows
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._total == 0 and total > 0:  # a window was just logged
            self.values.append((windows / total, wait / total))


def fit(dm: ShardDataModule, loader, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    encoder = build_encoder(
        "conv_attention",
        n_chans=dm.n_chans,
        n_subjects=len(dm.subjects),
        n_times=dm.window_n,
        sfreq=dm.sfreq,
        n_features=dm.n_features,
        projected_chans=64,
        hidden=128,
        depth=6,
    )
    module = ContrastivePretraining(encoder, ClipLoss(), max_steps=steps)
    rec = _Recorder()
    trainer = L.Trainer(
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
    return sum(v[0] for v in vals) / len(vals), sum(v[1] for v in vals) / len(vals)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    dm = ShardDataModule(
        args.shards,
        batch_size=args.batch,
        num_workers=args.workers,
        resampled=True,
        samples_per_epoch=args.batch * (args.steps + 10),
    )
    t = time.perf_counter()
    wps_shards, wait_shards = fit(dm, dm.train_dataloader(), args.steps)
    t_shards = time.perf_counter() - t
    batches = list(itertools.islice(iter(dm.train_dataloader()), args.steps + 10))
    t = time.perf_counter()
    memory = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, collate_fn=identity)
    wps_mem, wait_mem = fit(dm, memory, args.steps)
    t_mem = time.perf_counter() - t
    print(
        f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}; {args.steps} steps, batch {args.batch}, "
        f"{args.workers} loader worker(s)"
    )
    print(f"from shards:  {wps_shards:8.0f} windows/s, data wait {wait_shards:.3f} of step time, fit {t_shards:.0f} s")
    print(f"in memory:    {wps_mem:8.0f} windows/s, data wait {wait_mem:.3f} of step time, fit {t_mem:.0f} s")
    print(f"ratio shards / in-memory: {wps_shards / wps_mem:.2f}; data stall {wait_shards:.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
