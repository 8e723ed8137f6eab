"""The position-aware input (issue 19, item 2): model.input=spatial."""

import json
import math

import pytest
import torch

from ieegfm.__main__ import main
from ieegfm.checkpoint import load_checkpoint
from ieegfm.config import load_config
from ieegfm.models import build_encoder
from ieegfm.simulate import simulate

SIZES = {"n_times": 120, "sfreq": 40.0, "n_features": 8, "hidden": 16, "projected_chans": 8, "depth": 2}


def _spatial(n_chans=6, n_subjects=2, name="conv_attention"):
    torch.manual_seed(0)
    return build_encoder(name, n_chans=n_chans, n_subjects=n_subjects, input="spatial", **SIZES).eval()


@pytest.mark.parametrize("name", ["conv_attention", "linear"])
def test_weights_depend_on_positions_only(name):
    enc = _spatial(name=name)
    pos = torch.randn(2, 6, 3) * 40
    pos[1] = pos[0]  # two subjects with the same implant: the same weights (nothing is per subject)
    pos[0, 5] = pos[1, 5] = math.nan  # a contact without a position (or padding): weight 0
    enc.set_positions(pos)
    w = enc.spatial.weights()
    assert torch.allclose(w.sum(1), torch.ones(2, 8)) and torch.equal(w[:, 5], torch.zeros(2, 8))
    x = torch.randn(3, 6, 120)
    x2 = x.clone()
    x2[:, 5] = 1e3  # what a channel without a position carries is never read
    out = enc(x, torch.tensor([0, 1, 0]))
    assert torch.allclose(out[0], enc(x[:1], torch.tensor([1]))[0], atol=1e-6)
    assert torch.allclose(out, enc(x2, torch.tensor([0, 1, 0])), atol=1e-6)
    # channels in another order, with their positions: the same embedding (no weight is tied to a channel slot)
    perm = torch.tensor([3, 0, 4, 1, 2, 5])
    enc.set_positions(pos[:, perm])
    assert torch.allclose(out, enc(x[:, perm], torch.tensor([0, 1, 0])), atol=1e-5)
    assert not [k for k in enc.state_dict() if "positions" in k]  # positions come from the shards, not the weights
    with pytest.raises(ValueError, match=r"positions must have shape \(2, 6, 3\)"):
        enc.set_positions(torch.zeros(2, 5, 3))


@pytest.fixture(scope="module")
def two_patients(tmp_path_factory):
    """Two simulated patients (4 and 3 shafts, electrodes.tsv written by the simulator), one pack each."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("spatial")
    over = ["subjects=2", "hours=0.25", "days=1", "block_minutes=5", "task_minutes=0", "seed=0"]
    simulate(load_config("simulate", overrides=[f"out={root / 'sim'}", *over]))
    for s in ("sim01", "sim02"):
        assert (
            main(["pack", f"recordings={root / 'sim' / 'recordings.tsv'}", f"subjects=[{s}]", f"out={root / s}"]) == 0
        )
    return root


def test_a_spatial_model_reads_a_patient_it_never_saw(two_patients, tmp_path, capsys):
    root = two_patients
    fast = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "data.batch_size=32"]
    tiny = ["model.hidden=32", "model.depth=2", "model.projected_chans=16", "model.input=spatial"]
    run = tmp_path / "pre"
    args = ["pretrain", f"shards={root / 'sim01'}", f"out={run}", "trainer.max_steps=150", "optim.lr=2e-3"]
    assert main([*args, "trainer.val_check_interval=75", *tiny, *fast]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    _, contract = load_checkpoint(ckpt)
    assert contract.encoder["input"] == "spatial"
    assert contract.subjects["sim01"]["coordinates"]["space"] == "Other"
    for s in ("sim01", "sim02"):  # its own patient, and zero-shot a patient with another implant
        assert main(["evaluate", f"ckpt={ckpt}", f"shards={root / s}", f"out={tmp_path / s}.json"]) == 0
    own = json.loads((tmp_path / "sim01.json").read_text())
    assert own["mean_relative_rank"] < 0.4 and abs(own["shuffled_mean_relative_rank"] - 0.5) < 0.1
    new = json.loads((tmp_path / "sim02.json").read_text())
    assert list(new["subjects"]) == ["sim02"] and new["n_candidates"] > 20
    # the simulator ties no response to a place shared across patients: zero-shot, there is nothing to find
    assert abs(new["mean_relative_rank"] - 0.5) < 0.1


def test_spatial_without_coordinates_is_a_one_line_error(recordings, tmp_path, capsys):
    assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 's'}", "split.val=0.25", "split.test=0.25"]) == 0
    args = ["pretrain", f"shards={tmp_path / 's'}", f"out={tmp_path / 'p'}", "model.input=spatial"]
    capsys.readouterr()
    assert main([*args, "trainer.accelerator=cpu"]) == 2
    err = capsys.readouterr().err
    assert "model.input=spatial needs electrode positions, and subject '01' has none" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p" / "checkpoints").exists()
