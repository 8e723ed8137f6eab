"""`kill -9` of `ieegfm pack` at seeded points spread over a whole run (placed by the pack's own progress: blocks
done, shards written; every other rerun killed again at a random moment): the rerun finishes with byte-identical
shards each time, and no kill leaves a file that looks complete but is not."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from recording_fixtures import T0, write_block, write_table

N_TRIALS = 10


@pytest.fixture
def table(tmp_path) -> Path:
    """Six consecutive 2-min blocks of one subject."""
    rows = []
    for i in range(6):
        start = T0 + dt.timedelta(seconds=120 * i)
        ieeg, wav = write_block(tmp_path / "data", f"sub-01_run-{i}", start, duration=120.0, seed=i)
        rows.append(("01", "day1", ieeg, wav, start))
    return write_table(tmp_path / "data", rows)


def _pack(table: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """Start `ieegfm pack`; wait until it has started packing (its first progress output, after the imports)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ieegfm", "pack", f"recordings={table}", f"out={out}", "chunk_s=10"]
    log = out.with_name(out.name + ".log")
    with log.open("wb") as f:
        proc = subprocess.Popen([*cmd, "samples_per_shard=3"], stdout=subprocess.DEVNULL, stderr=f, env=env)
    while not log.stat().st_size and proc.poll() is None:
        time.sleep(0.005)
    return proc, log


def _finish(table: Path, out: Path) -> float:
    """Run a pack to its end; seconds from its first output."""
    proc, log = _pack(table, out)
    t0 = time.perf_counter()
    proc.wait(timeout=300)
    assert proc.returncode == 0, log.read_text()[-2000:]
    return time.perf_counter() - t0


def _kill_after(table: Path, out: Path, seconds: float) -> None:
    proc, _ = _pack(table, out)
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _progress(out: Path) -> int:
    """How far a pack into a fresh folder got: 1 once its work folder exists, + finished blocks (checksum
    markers), + complete shards, + 1 for the manifest."""
    work = out / ".work"
    done = len(list(work.glob("*.done.json"))) if work.is_dir() else 0
    return (
        int(work.is_dir() or (out / "manifest.json").exists())
        + done
        + len(list(out.glob("*.tar")))
        + int((out / "manifest.json").exists())
    )


def _kill_at(table: Path, out: Path, step: int, jitter_s: float) -> None:
    """Kill a pack into a fresh folder once it reaches ``step`` of :func:`_progress`, then ``jitter_s`` later:
    moments placed by the pack's own progress, so the kills land in the same phases however fast the machine."""
    proc, _ = _pack(table, out)
    while proc.poll() is None and _progress(out) < step:
        time.sleep(0.001)
    time.sleep(jitter_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _published(out: Path) -> dict[str, bytes]:
    """What readers see: complete shards, sizes.json and manifest.json (without the output path it records)."""
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}
    if (out / "sizes.json").is_file():
        files["sizes.json"] = (out / "sizes.json").read_bytes()
    if (out / "manifest.json").is_file():
        m = json.loads((out / "manifest.json").read_text())
        m["config"].pop("out")
        files["manifest.json"] = json.dumps(m, sort_keys=True).encode()
    return files


def _check_nothing_looks_complete_but_is_not(out: Path, reference: dict[str, bytes]) -> str:
    """Every complete-looking file equals the reference run's (shards, sizes, manifest) or matches its own
    checksum marker (work files); returns what the kill left, for the log."""
    left = _published(out)
    for name, data in left.items():
        assert data == reference[name], f"{out / name} looks complete but differs from an uninterrupted run"
    if "manifest.json" in left:  # the manifest is the last file written: everything it lists is there
        assert set(left) == set(reference), sorted(set(reference) - set(left))
    work = out / ".work"
    markers = sorted(work.glob("*.done.json")) if work.is_dir() else []
    for marker in markers:  # a block's work files count as finished only through their marker's checksums
        done = json.loads(marker.read_text())
        stem = marker.name[: -len(".done.json")]
        for ext, digest in done["sha256"].items():
            assert hashlib.sha256((work / f"{stem}.{ext}").read_bytes()).hexdigest() == digest, marker
    tmp = sorted(p.name for p in out.glob("*.tmp"))
    return f"{len(markers)} blocks done, {sum(n.endswith('.tar') for n in left)} shards, tmp {tmp}, " + (
        "manifest" if "manifest.json" in left else "no manifest"
    )


@pytest.mark.slow
def test_kill_9_at_seeded_moments_then_rerun_is_byte_identical(table, tmp_path):
    rng = np.random.default_rng(20261202)
    reference_s = _finish(table, tmp_path / "ref")
    reference = _published(tmp_path / "ref")
    total = 1 + 6 + sum(name.endswith(".tar") for name in reference) + 1  # started, blocks, shards, manifest
    assert "manifest.json" in reference and len(reference) > 5
    states = []
    for i in range(N_TRIALS):
        out = tmp_path / f"t{i}"
        step = int(total * (i + rng.random()) / N_TRIALS)  # stratified over the run's progress
        jitter = 0.004 * rng.random()  # (a shard is written in a few ms)
        _kill_at(table, out, step, jitter)
        states.append(
            f"kill at step {step}/{total} + {jitter:.3f} s: " + _check_nothing_looks_complete_but_is_not(out, reference)
        )
        if i % 2:  # and kill the rerun too, at another moment (also over a finished pack: its manifest goes first)
            _kill_after(table, out, reference_s * rng.random())
            _check_nothing_looks_complete_but_is_not(out, reference)
        _finish(table, out)
        assert _published(out) == reference, f"trial {i}: the rerun's shards differ"
        if i >= N_TRIALS - 3:  # a rerun over the finished pack, killed: its manifest is withdrawn before any write
            _kill_after(table, out, reference_s * (0.3 + 0.7 * rng.random()))
            _check_nothing_looks_complete_but_is_not(out, reference)
            _finish(table, out)
            assert _published(out) == reference, f"trial {i}: the rerun's shards differ"
        assert not (out / ".work").exists() and not list(out.glob("*.tmp"))
        shutil.rmtree(out)
    print(f"\npack: {reference_s:.2f} s after its first output\n" + "\n".join(states))
    assert (
        sum("no manifest" in s and not s.endswith("0 blocks done, 0 shards, tmp [], no manifest") for s in states) >= 3
    )


def test_repacking_over_a_finished_pack_withdraws_its_manifest_before_any_write(recordings, tmp_path, monkeypatch):
    """A rerun into a folder that holds a finished pack: once it deletes or rewrites a shard, the old manifest
    (listing those shards) must be gone, or a crash would leave a complete-looking folder missing shards."""
    from ieegfm.config import load_config
    from ieegfm.shards import pack as pack_module

    cfg = load_config("pack", overrides=[f"recordings={recordings}", f"out={tmp_path / 's'}"])
    pack_module.pack(cfg)
    seen = []

    def crash(*args, **kwargs):
        seen.append((tmp_path / "s" / "manifest.json").exists())
        raise RuntimeError("crash while the shards are rewritten")

    monkeypatch.setattr(pack_module, "ShardWriter", crash)
    with pytest.raises(RuntimeError, match="crash"):
        pack_module.pack(cfg)
    assert seen == [False] and not (tmp_path / "s" / "manifest.json").exists()
