"""Peak memory of ``ieegfm pack`` as recordings grow: 8 h of input vs 1 h (goal: ratio <= 1.2).

Usage: ``python tools/bench_pack_memory.py [--n-chans 32] [--sfreq 512] [--hours 1 8] [--block-h 1]``.
Writes synthetic one-hour EDF + WAV blocks (1/f-like noise, 60 Hz line noise) to a temporary folder, packs
1 h and 8 h of them with ``ieegfm pack`` in a fresh process each, and prints the peak RSS of each process
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) and their ratio. Never gates CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mne
import numpy as np
import soundfile as sf

T0 = dt.datetime(2026, 3, 2, 8, tzinfo=dt.timezone.utc)


def write_blocks(folder: Path, n_blocks: int, n_chans: int, sfreq: float, block_s: float, audio_sfreq: int) -> None:
    """``n_blocks`` consecutive blocks and a ``recordings.tsv`` (rows for the first 1, 2, ... blocks)."""
    rng = np.random.default_rng(0)
    names = [f"{s}{i}" for s in ("LA", "LH", "RA", "RH") for i in range(1, n_chans // 4 + 1)]
    rows = ["subject\tsession\tieeg\taudio\tstart_time"]
    for b in range(n_blocks):
        n = int(block_s * sfreq)
        t = np.arange(n) / sfreq
        data = np.cumsum(rng.standard_normal((len(names), n)), axis=1) * 1e-7
        data -= data.mean(axis=1, keepdims=True)
        data += 20e-6 * rng.standard_normal((len(names), n)) + 10e-6 * np.sin(2 * np.pi * 60 * t)
        raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "seeg"), verbose="error")
        start = T0 + dt.timedelta(seconds=b * block_s)
        raw.set_meas_date(start)
        ieeg = folder / f"b{b:02d}_ieeg.edf"
        mne.export.export_raw(ieeg, raw, fmt="edf", overwrite=True, verbose="error")
        sf.write(
            folder / f"b{b:02d}.wav",
            (0.05 * rng.standard_normal(int(block_s * audio_sfreq))).astype(np.float32),
            audio_sfreq,
            subtype="PCM_16",
        )
        rows.append(f"s1\t1\t{ieeg.name}\tb{b:02d}.wav\t{start.isoformat()}")
        del raw, data
    (folder / "all.tsv").write_text("\n".join(rows) + "\n")


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of a command run in a fresh child process."""
    script = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        f"r = subprocess.run({cmd!r}, capture_output=True, text=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t); "
        "sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-chans", type=int, default=32)
    p.add_argument("--sfreq", type=float, default=512.0)
    p.add_argument("--hours", type=int, nargs=2, default=[1, 8])
    p.add_argument("--block-h", type=float, default=1.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n_blocks = int(round(max(args.hours) / args.block_h))
        t = time.perf_counter()
        write_blocks(folder, n_blocks, args.n_chans, args.sfreq, args.block_h * 3600, 8000)
        print(
            f"wrote {n_blocks} blocks of {args.block_h} h ({args.n_chans} ch, {args.sfreq} Hz) in "
            f"{time.perf_counter() - t:.0f} s"
        )
        lines = (folder / "all.tsv").read_text().splitlines()
        results = {}
        for hours in args.hours:
            k = int(round(hours / args.block_h))
            table = folder / f"h{hours}.tsv"
            table.write_text("\n".join(lines[: k + 1]) + "\n")
            val_test = ["split.val=0", "split.test=0"] if k < 3 else []
            cmd = [
                sys.executable,
                "-m",
                "ieegfm",
                "pack",
                f"recordings={table}",
                f"out={folder / f'shards{hours}'}",
                "audio.sfreq=8000",
                *val_test,
            ]
            results[hours] = peak_rss_mb(cmd)
            print(f"pack {hours} h: peak RSS {results[hours][0]:.0f} MB, {results[hours][1]:.0f} s", flush=True)
        lo, hi = sorted(args.hours)
        ratio = results[hi][0] / results[lo][0]
        print(
            f"peak RSS ratio {hi} h / {lo} h: {ratio:.2f} (goal <= 1.2); "
            f"throughput {hi * 3600 / results[hi][1]:.0f} s of recording per s"
        )


if __name__ == "__main__":
    main()
