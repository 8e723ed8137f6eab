"""ieegfm finetune / compare / cards on a small simulated patient (CLI, as a user runs them)."""

import json
from pathlib import Path

import pytest
import torch

from ieegfm.__main__ import main
from ieegfm.checkpoint import load_checkpoint, module_weights
from ieegfm.heads import HEADS
from ieegfm.io.checksum import sha256_file

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
FT = [*FAST, "data.batch_size=32", "trainer.val_check_interval=10"]


def test_finetune_writes_checkpoint_metrics_and_card(patient, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["finetune", "head=linear", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={run}"]
    assert main([*args, "init=pretrained", "freeze=encoder", "seed=0", "trainer.max_steps=60", *FT]) == 0
    for name in ("model.ckpt", "metrics.json", "card.json", "card.md", "config.yaml"):
        assert (run / name).is_file(), name
    card = json.loads((run / "card.json").read_text())
    manifest = json.loads((patient["task"] / "manifest.json").read_text())
    assert card["subject"] == "sim01" and card["task"] == "task" and card["head"] == "linear"
    assert card["subjects"]["sim01"]["ch_names"] == manifest["subjects"]["sim01"]["ch_names"]
    assert card["subjects"]["sim01"]["n_channels"] == len(manifest["subjects"]["sim01"]["ch_names"]) > 10
    assert card["montage"] == "bipolar" and (card["init"], card["freeze"], card["seed"]) == ("pretrained", "encoder", 0)
    assert card["pretraining"]["sha256"] == sha256_file(patient["ckpt"]) and card["pretraining"]["used"]
    assert card["pretraining"]["hours"] > 0.2 and card["pretraining"]["days"] == ["0"]
    assert set(card["task_hours"]) == {"train", "val", "test"} and card["ieegfm_version"] and card["date"]
    m = card["metrics"]
    assert m["n_candidates"] > 20 and 0 < m["p_value_vs_chance"] <= 1
    assert abs(m["shuffled_mean_relative_rank"] - 0.5) < 0.15
    # frozen: the encoder weights (and BatchNorm statistics) are the pretrained ones, re-laid for the task shards
    state, contract = load_checkpoint(run / "model.ckpt")
    pre, _ = load_checkpoint(patient["ckpt"])
    ours, theirs = module_weights(state, "encoder"), module_weights(pre, "encoder")
    assert contract.kind == "finetune" and contract.head["name"] == "linear"
    for k, v in theirs.items():
        if k != "subject_layers.weight":
            torch.testing.assert_close(ours[k], v, msg=k)
    # evaluate accepts the finetuned checkpoint and reproduces the test metrics
    capsys.readouterr()
    assert (
        main(["evaluate", f"ckpt={run / 'model.ckpt'}", f"shards={patient['task']}", f"out={tmp_path / 'e.json'}"]) == 0
    )
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["kind"] == "finetune" and e["head"] == "linear"
    assert e["mean_relative_rank"] == pytest.approx(m["mean_relative_rank"])
    assert main(["cards", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "| sim01 | task | linear | pretrained | encoder | 0 |" in listing and str(run) in listing


def test_compare_pretrained_finetuned_beats_task_only(patient, tmp_path):
    """Ground truth: the simulator's task session shares the ambient response kernels, so pretraining helps."""
    out = tmp_path / "cmp"
    args = ["compare", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={out}", "seeds=2"]
    grid = ["lr_grid=[1e-3,3e-3]", "encoder_lr_scales=[0.1,1.0]"]
    assert main([*args, *grid, "trainer.max_steps=120", *FT]) == 0
    c = json.loads((out / "comparison.json").read_text())
    rows = {r["condition"]: r for r in c["rows"]}
    assert list(rows) == ["zero_shot", "task_only", "finetuned_frozen", "finetuned_full"]
    keys = {
        "mean_relative_rank",
        "within_block_mean_relative_rank",
        "top10_acc",
        "shuffled_mean_relative_rank",
        "p_value",
        "seeds",
    }
    for name, r in rows.items():
        assert keys <= set(r), name
        assert abs(r["shuffled_mean_relative_rank"] - 0.5) < 0.1, (name, r["shuffled_mean_relative_rank"])
        assert len(r["seeds"]) == (1 if name == "zero_shot" else 2)
    assert rows["task_only"]["p_value"] is None and all(
        rows[n]["p_value"] is not None for n in ("zero_shot", "finetuned_frozen", "finetuned_full")
    )
    best = min(rows["finetuned_frozen"]["mean_relative_rank"], rows["finetuned_full"]["mean_relative_rank"])
    assert best < rows["task_only"]["mean_relative_rank"] - 0.02, {n: r["mean_relative_rank"] for n, r in rows.items()}
    assert best < 0.4
    md = (out / "comparison.md").read_text()
    assert md.count("\n| ") == 5 + 2 + 2 + 4 + 1 and (out / "comparison.png").stat().st_size > 5000  # rows, grid
    assert rows["zero_shot"]["selection"] is None
    assert [len(rows[n]["selection"]["grid"]) for n in ("task_only", "finetuned_frozen", "finetuned_full")] == [2, 2, 4]
    assert {g["encoder_lr_scale"] for g in rows["task_only"]["selection"]["grid"]} == {1.0}
    assert {g["encoder_lr_scale"] for g in rows["finetuned_frozen"]["selection"]["grid"]} == {None}
    full = rows["finetuned_full"]
    card = json.loads((Path(full["seeds"][1]["run"]) / "card.json").read_text())
    assert card["seed"] == 1 and (card["lr"], card["encoder_lr_scale"]) == (full["lr"], full["encoder_lr_scale"])
    assert (
        card["comparison"]["condition"] == "finetuned_full"
        and card["comparison"]["p_value"] == rows["finetuned_full"]["p_value"]
    )
    assert card["pretraining"]["used"] is True and card["init"] == "pretrained"
    scratch = json.loads((Path(rows["task_only"]["seeds"][0]["run"]) / "card.json").read_text())
    assert scratch["pretraining"]["used"] is False and scratch["encoder_lr_scale"] == 1.0


def test_bad_input_is_a_one_line_error(patient, tmp_path, capsys):
    base = ["finetune", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={tmp_path / 'r'}", *FAST]
    assert main([*base, "head=nonexistent"]) == 2
    assert f"head='nonexistent': expected one of {list(HEADS)}" in capsys.readouterr().err
    # task data packed without the pretraining channels (another montage): names the channels
    other = tmp_path / "other"
    table = patient["root"] / "sim" / "recordings_task.tsv"
    assert main(["pack", f"recordings={table}", f"out={other}", "preprocess.montage=average"]) == 0
    capsys.readouterr()
    assert main(["finetune", f"ckpt={patient['ckpt']}", f"shards={other}", f"out={tmp_path / 'r2'}", *FAST]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "channels differ (missing from the shards: LA2-LA3" in err and "channels_from" in err
    )
    # an empty task split
    empty = tmp_path / "empty"
    assert (
        main(
            ["pack", f"recordings={table}", f"out={empty}", f"channels_from={patient['root'] / 'amb'}", "split.test=0"]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["finetune", f"ckpt={patient['ckpt']}", f"shards={empty}", f"out={tmp_path / 'r3'}", *FAST]) == 2
    assert "the task's test split(s) have no windows" in capsys.readouterr().err
    # not a checkpoint
    junk = tmp_path / "junk.ckpt"
    junk.write_text("hello")
    assert main(["finetune", f"ckpt={junk}", f"shards={patient['task']}", *FAST]) == 2
    assert "not a torch checkpoint" in capsys.readouterr().err


def test_default_run_folder_is_the_per_patient_layout():
    from ieegfm.config import load_config
    from ieegfm.finetune.runner import run_folder

    cfg = load_config("finetune", overrides=["ckpt=c", "shards=/data/shards/audiobook", "init=scratch", "seed=2"])
    from ieegfm.io.manifest import Manifest

    manifest = Manifest.from_dict(
        {"sfreq": 100.0, "window_s": 1.0, "n_chans_max": 1, "n_features": 0, "shards": {}, "splits": {},
         "subjects": {s: {"index": i, "ch_names": ["A1"]} for i, s in enumerate(["p07", "p03"])}}
    )  # fmt: skip
    assert str(run_folder(cfg, manifest)) == "runs/p03+p07/audiobook/linear/scratch-encoder-seed2"
    cfg.out = "elsewhere"
    assert str(run_folder(cfg, manifest)) == "elsewhere"
