"""Soak run: a 24-h simulated recording packed with ``n_jobs=2``, then a DDP (2-process gloo) pretraining.

Usage: ``python tools/soak.py --out /tmp/soak [--hours 24] [--steps 600] [--json soak.json] [--train-only]``.

1. ``ieegfm simulate`` of ``--hours`` hours (2 days, 20-min blocks);
2. ``ieegfm pack n_jobs=2`` of the first hour of blocks (the baseline), then of all of them, each in a fresh
   process tree whose resident memory (main process + pack workers, summed) is sampled every 0.2 s with psutil;
3. ``ieegfm pretrain`` on the full shards with ``trainer.devices=2 trainer.strategy=ddp`` on CPU (gloo), the two
   ranks' RSS sampled every second.

Prints, and writes to ``--json``: peak RSS of the 24-h pack vs the 1-h pack (goal: ratio <= 1.2), and the training
ranks' RSS after warm-up (the first half of the run): the medians of its third and fourth quarter and the growth
between them in % (goal: flat, < 5 %). Never gates CI; ``tests/test_soak.py`` (marker ``soak``, deselected by default) runs it with the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from ieegfm.io.manifest import read_manifest


def tree_rss_mb(proc: psutil.Process) -> dict[int, float]:
    """RSS (MB) of a process and all its descendants, by pid."""
    out = {}
    for p in [proc, *proc.children(recursive=True)]:
        try:
            out[p.pid] = p.memory_info().rss / 2**20
        except psutil.Error:
            pass
    return out


def run_sampled(cmd: list[str], every_s: float, log: Path) -> dict:
    """Run ``cmd``; sample its process tree's RSS every ``every_s``. Returns wall time and the samples."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    root = psutil.Process(proc.pid)
    samples: list[tuple[float, dict[int, float]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append((time.perf_counter() - t0, tree_rss_mb(root)))
            except psutil.Error:
                pass
            stop.wait(every_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    rc = proc.wait()
    stop.set()
    thread.join()
    if rc != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed (exit {rc}); see {log}")
    return {"wall_s": time.perf_counter() - t0, "samples": samples}


def pack_figures(table: Path, out: Path, log: Path) -> dict:
    cmd = [sys.executable, "-m", "ieegfm", "pack", f"recordings={table}", f"out={out}", "n_jobs=2"]
    cmd += ["audio.features=logmel"]
    r = run_sampled(cmd, 0.2, log)
    totals = [sum(s.values()) for _, s in r["samples"]]
    largest = [max(s.values(), default=0.0) for _, s in r["samples"]]
    manifest = read_manifest(out)
    hours = sum(st.hours for st in manifest.splits.values())
    return {
        "packed_hours": round(hours, 3),
        "wall_s": round(r["wall_s"], 1),
        "peak_rss_tree_mb": round(max(totals), 1),
        "peak_rss_one_process_mb": round(max(largest), 1),
        "n_processes_max": max(len(s) for _, s in r["samples"]),
    }


def train_figures(shards: Path, out: Path, steps: int, log: Path) -> dict:
    cmd = [sys.executable, "-m", "ieegfm", "pretrain", f"shards={shards}", f"out={out}", f"trainer.max_steps={steps}"]
    cmd += ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    cmd += [f"trainer.val_check_interval={max(steps // 4, 1)}", "trainer.enable_progress_bar=false"]
    r = run_sampled(cmd, 1.0, log)
    # the two ranks: the Lightning launcher's main process (rank 0) and its child running rank 1
    series: dict[int, list[tuple[float, float]]] = {}
    for t, s in r["samples"]:
        for pid, mb in s.items():
            series.setdefault(pid, []).append((t, mb))
    ranks = sorted(series, key=lambda pid: -max(mb for _, mb in series[pid]))[:2]
    per_rank = []
    for pid in ranks:
        t, mb = map(np.asarray, zip(*series[pid]))
        # warm-up: the first half of the run (start-up, allocator growth, the first validations); then the medians
        # of its third and fourth quarter (medians: a validation pass is a short peak, not a trend)
        q3 = mb[(t >= t[0] + 0.5 * (t[-1] - t[0])) & (t < t[0] + 0.75 * (t[-1] - t[0]))]
        q4 = mb[t >= t[0] + 0.75 * (t[-1] - t[0])]
        first, last = float(np.median(q3)), float(np.median(q4))
        per_rank.append(
            {
                "peak_rss_mb": round(float(mb.max()), 1),
                "median_third_quarter_mb": round(first, 1),
                "median_fourth_quarter_mb": round(last, 1),
                "growth_pct": round(100 * (last - first) / first, 2),
                "n_samples": int(len(t)),
                "series_s_mb": [[round(float(a), 1), round(float(b), 1)] for a, b in zip(t, mb)],
            }
        )
    summary = json.loads((out / "summary.json").read_text())
    return {"steps": summary["global_step"], "wall_s": round(r["wall_s"], 1), "ranks": per_rank}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--train-only", action="store_true", help="only the training part, on the shards of a run before")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if not (data / "recordings.tsv").is_file():
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ieegfm",
                "simulate",
                f"out={data}",
                f"hours={args.hours}",
                "days=2",
                "seed=0",
                "block_minutes=20",
            ],
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"simulated {args.hours:g} h in {time.perf_counter() - t:.0f} s")
    rows = (data / "recordings.tsv").read_text().splitlines()
    (data / "one_hour.tsv").write_text("\n".join(rows[:4]) + "\n")  # header + three 20-min blocks
    figures: dict = {"hours": args.hours}
    if args.train_only:
        shutil.rmtree(out / "run", ignore_errors=True)
        figures["train"] = train_figures(out / "shards_pack_full", out / "run", args.steps, out / "train.log")
        print(json.dumps(figures))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
        return
    for name, table in (("pack_1h", data / "one_hour.tsv"), ("pack_full", data / "recordings.tsv")):
        figures[name] = pack_figures(table, out / f"shards_{name}", out / f"{name}.log")
        print(name, figures[name], flush=True)
    figures["pack_peak_ratio"] = round(
        figures["pack_full"]["peak_rss_tree_mb"] / figures["pack_1h"]["peak_rss_tree_mb"], 3
    )
    figures["train"] = train_figures(out / "shards_pack_full", out / "run", args.steps, out / "train.log")
    print("train", {k: v for k, v in figures["train"].items() if k != "ranks"}, flush=True)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
