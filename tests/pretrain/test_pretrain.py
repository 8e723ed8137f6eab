import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ieegfm.__main__ import main
from ieegfm.checkpoint import model_for_shards
from ieegfm.data import ShardDataModule
from ieegfm.evaluation.evaluate import embed_split
from ieegfm.evaluation.retrieval import retrieval_metrics
from ieegfm.losses.clip import ClipLoss
from ieegfm.pretrain.module import ContrastivePretraining


def test_cli_pretrain_then_evaluate_learns_and_writes_run_folder(shards, tmp_path, tiny):
    run = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                f"shards={shards}",
                f"out={run}",
                "trainer.max_steps=120",
                "trainer.val_check_interval=60",
                "model.pooling=none",
                *tiny,
            ]
        )
        == 0
    )
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert all(e.value > 0 for e in acc.Scalars("perf/windows_per_s"))
    waits = [e.value for e in acc.Scalars("perf/data_wait_fraction")]
    gaps = [e.value for e in acc.Scalars("perf/step_gap_fraction")]
    assert all(0 <= w <= g < 1 for w, g in zip(waits, gaps))  # the data wait is part of the gap between steps
    assert any(w < g for w, g in zip(waits, gaps))  # measured in the loader (FetchTiming), not the whole gap
    val_loss = [e.value for e in acc.Scalars("val/loss")]  # at each validation, for the report's loss curve
    assert len(val_loss) == 2 and val_loss[1] < val_loss[0], val_loss
    summary = json.loads((run / "summary.json").read_text())
    ckpt = summary["best_checkpoint"]
    assert summary["global_step"] == 120
    assert main(["evaluate", f"ckpt={ckpt}", f"shards={shards}", "split=test", f"out={tmp_path / 'm.json'}"]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert {
        "mean_relative_rank",
        "top1_accuracy",
        "top10_accuracy",
        "n_candidates",
        "shuffled_mean_relative_rank",
    } <= set(m)
    assert (tmp_path / "m.png").stat().st_size > 1000
    # the first shaft follows the audio envelope: the model must beat chance, the control must not
    assert m["mean_relative_rank"] < 0.3, m
    assert abs(m["shuffled_mean_relative_rank"] - 0.5) < 0.1


def test_untrained_encoder_is_at_chance(shards, tmp_path, tiny):
    """Control: the same evaluation on a randomly initialised encoder sits near 0.5."""
    assert (
        main(["pretrain", f"shards={shards}", f"out={tmp_path / 'r0'}", "trainer.max_steps=1", "optim.lr=1e-12", *tiny])
        == 0
    )
    dm = ShardDataModule(shards, batch_size=64)
    model, _ = model_for_shards(
        json.loads((tmp_path / "r0" / "summary.json").read_text())["last_checkpoint"], dm.manifest, shards
    )
    emb = embed_split(model, dm, "test")
    m = retrieval_metrics(emb["brain"], emb["audio"])
    assert 0.3 < m["mean_relative_rank"] < 0.7 and m["n_candidates"] == dm.n_windows("test")


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(shards, tmp_path, tiny):
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "ieegfm",
        "pretrain",
        f"shards={shards}",
        f"out={run}",
        "trainer.max_steps=6",
        "trainer.val_check_interval=6",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.log_every_n_steps=1",
        *tiny,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 6
    state = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=False)
    assert state["global_step"] == 6
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    sizes = [e.value for e in acc.Scalars("train/contrastive_batch")]
    assert sizes[0] == max(sizes) == 32.0  # 2 ranks x 16: negatives gathered (an epoch's last batches are smaller)
    assert acc.Scalars("val/n_candidates")[-1].value == ShardDataModule(shards).n_windows("val")


def test_siglip_is_selectable_end_to_end(shards, tmp_path, tiny):
    run = tmp_path / "sig"
    args = ["pretrain", f"shards={shards}", f"out={run}", "trainer.max_steps=6", "loss.name=siglip", *tiny]
    assert main([*args, "loss.init_logit_bias=-5"]) == 0
    from ieegfm.checkpoint import load_checkpoint

    state, contract = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert contract.training["objective"] == "siglip" and float(state["state_dict"]["loss.logit_bias"]) != 0


def _garble(tar) -> None:
    """Overwrite the first member's tar header, keeping the size (damage only reading finds)."""
    data = bytearray(tar.read_bytes())
    data[100:500] = b"\xa5" * 400
    tar.write_bytes(bytes(data))


def test_corrupt_shards_are_counted_in_the_summary_and_all_corrupt_is_one_line(tmp_path, tiny, capsys):
    from recording_fixtures import pack_consecutive_blocks

    over = ("split.val=0.25", "split.test=0.25", "chunk_s=30", "audio.n_mels=8", "samples_per_shard=2")
    copy = pack_consecutive_blocks(tmp_path, 4, 120.0, *over)
    train = sorted(copy.glob("train-*.tar"))
    assert len(train) >= 2
    _garble(train[0])
    train[1].write_bytes(train[1].read_bytes()[:5000])  # a copy that did not finish
    run = [f"shards={copy}", "trainer.max_steps=6", "data.num_workers=1", "trainer.val_check_interval=3", *tiny]
    assert main(["pretrain", *run, f"out={tmp_path / 'r'}"]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())  # counted in the loader's worker process
    assert summary["corrupt_shards"] == [train[0].name, train[1].name] and summary["corrupt_shards_skipped"] == 2
    capsys.readouterr()
    for tar in train[2:]:
        _garble(tar)
    assert main(["pretrain", *run, f"out={tmp_path / 'r2'}"]) == 2  # not a hang, not a traceback
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ieegfm")]
    assert len(err) == 1 and "no training batch could be read this epoch" in err[0], err


class _Pooled(torch.nn.Module):
    pooling = "mean"


def test_validation_loss_is_the_training_loss_in_training_sized_batches():
    torch.manual_seed(0)
    module = ContrastivePretraining(_Pooled(), ClipLoss())
    audio = torch.randn(40, 8)
    matched = module.validation_loss(audio + 0.1 * torch.randn(40, 8), audio)
    unmatched = module.validation_loss(torch.randn(40, 8), audio)
    # without a trainer: one batch of all 40 windows; random pairs at or above ln(40) (CLIP's chance level)
    assert unmatched > np.log(40) > 4 * matched, (matched, unmatched)
