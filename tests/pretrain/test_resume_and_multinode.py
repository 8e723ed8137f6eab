"""Fault tolerance and multi-node launch, through the real command line in subprocesses."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _cli(*args):
    return [sys.executable, "-m", "ieegfm", *args]


def _weights(ckpt):
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    return state["global_step"], state["state_dict"]


@pytest.mark.slow
def test_sigterm_then_resume_matches_uninterrupted_run(shards, tmp_path, tiny):
    common = [
        f"shards={shards}",
        "trainer.max_steps=300",
        "trainer.val_check_interval=300",
        "trainer.checkpoint_every_steps=20",
        "model.dropout=0.2",
        *tiny,
    ]
    ref = subprocess.run(
        _cli("pretrain", f"out={tmp_path / 'ref'}", *common), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr[-2000:]

    run = tmp_path / "run"
    proc = subprocess.Popen(
        _cli("pretrain", f"out={run}", *common), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not list((run / "checkpoints").glob("step*.ckpt")) and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # as SLURM does before preemption
    _, err = proc.communicate(timeout=120)
    step, _ = _weights(run / "checkpoints" / "last.ckpt")
    assert 20 <= step < 300, (step, err[-2000:])  # stopped mid-run, state saved on SIGTERM
    assert proc.returncode == 0 and json.loads((run / "summary.json").read_text())["interrupted"] is True

    resumed = subprocess.run(
        _cli("pretrain", f"out={run}", "resume=last", *common), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    ref_summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert summary["resumed_from"].endswith("last.ckpt") and summary["global_step"] == 300
    # same step count, optimizer, schedule, logit scale, dropout RNG and data position -> the same model
    ref_step, ref_w = _weights(tmp_path / "ref" / "checkpoints" / "last.ckpt")
    res_step, res_w = _weights(run / "checkpoints" / "last.ckpt")
    assert ref_step == res_step == 300
    for k in ref_w:
        assert torch.allclose(ref_w[k].float(), res_w[k].float(), atol=1e-5), k
    assert summary["best_val_mean_relative_rank"] == pytest.approx(ref_summary["best_val_mean_relative_rank"], abs=1e-6)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_over_loopback_with_torchrun(shards, tmp_path, tiny):
    """Two `torchrun --nnodes 2` processes (one per node) rendezvous on 127.0.0.1, train, checkpoint, evaluate."""
    out = tmp_path / "run"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "-m",
                "ieegfm",
                "pretrain",
                f"shards={shards}",
                f"out={out}",
                "trainer.num_nodes=2",
                "trainer.devices=1",
                "trainer.strategy=ddp",
                "trainer.max_steps=8",
                "trainer.val_check_interval=8",
                "trainer.log_every_n_steps=1",
                *tiny,
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 8
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    sizes = [e.value for e in acc.Scalars("train/contrastive_batch")]
    assert sizes[0] == max(sizes) == 32.0  # 2 nodes x 16: global negatives (an epoch's last batches are smaller)
    ev = subprocess.run(
        _cli(
            "evaluate",
            f"ckpt={summary['best_checkpoint']}",
            f"shards={shards}",
            "split=test",
            f"out={tmp_path / 'm.json'}",
        ),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ev.returncode == 0, ev.stderr[-2000:]
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n_candidates"] > 10 and 0 <= m["mean_relative_rank"] <= 1
