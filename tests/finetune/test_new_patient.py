"""A patient the pretrained model never saw (issue 19, item 5): finetune / compare give it a new input layer."""

import json

import lightning as L
import pytest
import torch

from ieegfm.__main__ import main
from ieegfm.checkpoint import encoder_for_shards, load_checkpoint, module_weights
from ieegfm.config import load_config
from ieegfm.io.manifest import read_manifest
from ieegfm.simulate import simulate

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
FT = [*FAST, "data.batch_size=32", "trainer.val_check_interval=10"]


@pytest.fixture(scope="module")
def new_patient(tmp_path_factory):
    """Task shards of sim02: the second patient of a cohort (seed + 1, one shaft fewer) packed on its own channels."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("new_patient")
    over = ["subject=sim02", "seed=1", "n_shafts=3", "hours=0.1", "days=1", "block_minutes=3"]
    simulate(load_config("simulate", overrides=[f"out={root / 'sim'}", *over, "task_minutes=8", "task_blocks=4"]))
    task = ["pack", f"recordings={root / 'sim' / 'recordings_task.tsv'}", f"out={root / 'task'}"]
    assert main([*task, "split.val=0.25", "split.test=0.25"]) == 0
    return root / "task"


def test_finetune_frozen_trains_only_the_new_input_layer_and_head(patient, new_patient, tmp_path, capsys):
    pre, pre_contract = load_checkpoint(patient["ckpt"])
    assert "sim02" not in pre_contract.subjects
    # the pretrained checkpoint alone cannot read the new patient: a one-line error naming the subject
    assert main(["evaluate", f"ckpt={patient['ckpt']}", f"shards={new_patient}", f"out={tmp_path / 'e.json'}"]) == 2
    assert "subject 'sim02' of the shards is not in the checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()

    run = tmp_path / "frozen"
    args = ["finetune", "head=linear", f"ckpt={patient['ckpt']}", f"shards={new_patient}", f"out={run}", "seed=0"]
    assert main([*args, "init=pretrained", "freeze=encoder", "optim.lr=3e-3", "trainer.max_steps=120", *FT]) == 0
    state, contract = load_checkpoint(run / "model.ckpt")
    assert contract.training["new_subjects"] == ["sim02"] and list(contract.subjects) == ["sim02"]
    ours, theirs = module_weights(state, "encoder"), module_weights(pre, "encoder")
    # everything after the input layer is the pretrained encoder's, exactly (weights and BatchNorm statistics)
    for k, v in theirs.items():
        if k != "subject_layers.weight":
            torch.testing.assert_close(ours[k], v, msg=k)
    # the new input layer: sim02's channels (3 shafts), trained away from its initialisation
    n_chans = len(json.loads((new_patient / "manifest.json").read_text())["subjects"]["sim02"]["ch_names"])
    layer = ours["subject_layers.weight"]
    assert layer.shape[:2] == (1, n_chans) and n_chans < theirs["subject_layers.weight"].shape[1]
    L.seed_everything(0, verbose=False)  # the run's fresh initialisation (seed=0): training has moved it
    fresh = encoder_for_shards(pre_contract, theirs, read_manifest(new_patient), "test", new_subjects=True)
    assert fresh.subject_layers.weight.shape == layer.shape
    assert (layer - fresh.subject_layers.weight).abs().max() > 1e-3
    m = json.loads((run / "metrics.json").read_text())["test"]
    assert m["n_candidates"] > 20 and abs(m["shuffled_mean_relative_rank"] - 0.5) < 0.15
    assert m["mean_relative_rank"] < 0.45, m  # the simulated responses are learnable through the new layer alone
    # evaluate reads the finetuned checkpoint on the new patient
    assert main(["evaluate", f"ckpt={run / 'model.ckpt'}", f"shards={new_patient}", f"out={tmp_path / 'f.json'}"]) == 0
    card = json.loads((run / "card.json").read_text())
    assert card["subject"] == "sim02" and card["pretraining"]["used"] and card["new_subjects"] == ["sim02"]
    assert "new patient(s), never seen in pretraining: sim02" in (run / "card.md").read_text()

    full = tmp_path / "full"
    args[4] = f"out={full}"
    assert main([*args, "init=pretrained", "freeze=none", "trainer.max_steps=20", *FT]) == 0
    state, contract = load_checkpoint(full / "model.ckpt")
    assert contract.training["new_subjects"] == ["sim02"]
    moved = module_weights(state, "encoder")
    assert any(not torch.equal(moved[k], v) for k, v in theirs.items() if k != "subject_layers.weight")


def test_compare_on_a_new_patient_skips_zero_shot(patient, new_patient, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", f"ckpt={patient['ckpt']}", f"shards={new_patient}", f"out={out}", "seeds=1"]
    conditions = "conditions=[zero_shot,task_only,finetuned_frozen]"
    assert main([*args, conditions, "lr_grid=[3e-3]", "trainer.max_steps=30", *FT]) == 0
    c = json.loads((out / "comparison.json").read_text())
    assert [r["condition"] for r in c["rows"]] == ["task_only", "finetuned_frozen"]
    assert c["new_subjects"] == ["sim02"] and "sim02" in c["skipped"]["zero_shot"]
    md = (out / "comparison.md").read_text()
    assert "zero_shot not run" in md and "New patient(s), never seen in pretraining: sim02" in md
