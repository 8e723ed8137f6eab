"""Loader throughput on a cohort: balanced epochs (``data.subject_alpha``) vs proportional ones, and one pack.

Usage: ``python tools/bench_cohort_loader.py PACK_A PACK_B [PACK_C ...] [--alpha 0.5] [--repeats 5]``
(one pack per patient, e.g. ``ieegfm pack ... subjects=[sim01]``).

Baseline: the same cohort view read with ``subject_alpha=1`` (every window once: the plain epoch), measured in the
same run, interleaved, from the page cache. Also the same epoch grouped by subject (``data.group_by_subject``:
unpadded batches; its brain bytes against the padded ones), and the first pack alone. Prints training windows per second
(median and best of ``repeats`` epochs), the ratio balanced / proportional (the goal: >= 0.9, balanced
sampling costs at most 10 %), each subject's windows per epoch, and the peak RSS of this process. Never gates CI.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ieegfm.data import ShardDataModule
from ieegfm.shards.cohort import write_cohort


def epoch_rate(dm: ShardDataModule) -> tuple[float, int]:
    """Seconds and windows of one training epoch (and, as ``epoch_rate.bytes``, the brain bytes it delivered)."""
    t = time.perf_counter()
    n = nbytes = 0
    for b in dm.train_dataloader():
        n += len(b["brain"])
        nbytes += b["brain"].numel() * b["brain"].element_size()
    epoch_rate.bytes = nbytes
    return time.perf_counter() - t, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("packs", nargs="+")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--window-s", type=float, default=3.0, help="window length (s): shorter, more windows per epoch")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cohort = write_cohort([Path(x) for x in args.packs], Path(tmp) / "cohort")
        modules = {
            f"cohort, subject_alpha={args.alpha:g}": ShardDataModule(
                cohort, batch_size=args.batch, window_s=args.window_s, subject_alpha=args.alpha
            ),
            "cohort, subject_alpha=1 (baseline)": ShardDataModule(
                cohort, batch_size=args.batch, window_s=args.window_s, subject_alpha=1.0
            ),
            "cohort, subject_alpha=1, grouped": ShardDataModule(
                cohort, batch_size=args.batch, window_s=args.window_s, subject_alpha=1.0, group_by_subject=True
            ),
            "first pack alone": ShardDataModule(args.packs[0], batch_size=args.batch, window_s=args.window_s),
        }
        rates: dict[str, list[float]] = {k: [] for k in modules}
        windows: dict[str, int] = {}
        nbytes: dict[str, int] = {}
        for dm in modules.values():
            epoch_rate(dm)  # warm the page cache and the plan
        for _ in range(args.repeats):
            for k, dm in modules.items():
                s, n = epoch_rate(dm)
                rates[k].append(n / s)
                windows[k], nbytes[k] = n, epoch_rate.bytes
        print(f"{len(args.packs)} packs: {', '.join(args.packs)}")
        print(f"{'':40s}{'median':>12s}{'best':>12s}  windows/s  (windows per epoch)")
        for k, v in rates.items():
            print(f"{k:40s}{statistics.median(v):12,.0f}{max(v):12,.0f}  ({windows[k]})")
        bal, base = (statistics.median(rates[k]) for k in list(modules)[:2])
        print(f"balanced / proportional: {bal / base:.2f}x (goal >= 0.90)")
        grouped = statistics.median(rates["cohort, subject_alpha=1, grouped"])
        b0, b1 = nbytes["cohort, subject_alpha=1 (baseline)"], nbytes["cohort, subject_alpha=1, grouped"]
        print(
            f"grouped by subject / proportional: {grouped / base:.2f}x; brain bytes an epoch {b1 / 1e6:.1f} MB vs "
            f"{b0 / 1e6:.1f} MB padded ({b1 / b0:.2f}x)"
        )
        plan = modules[f"cohort, subject_alpha={args.alpha:g}"].subject_plan or {}
        print(
            "per subject (balanced): " + ", ".join(f"{s} {v['per_epoch']} of {v['windows']}" for s, v in plan.items())
        )
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
