"""``ieegfm export`` (issue 19, item 8): a model folder others load without executing code."""

import json
import pickle

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ieegfm.__main__ import main
from ieegfm.checkpoint import load_checkpoint, module_weights
from ieegfm.io.checksum import sha256_file

FT = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "data.batch_size=32"]


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


@pytest.fixture(scope="module")
def exported(patient, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "sim01-pretrained"
    assert main(["export", f"ckpt={patient['ckpt']}", f"out={out}", f"shards={patient['task']}"]) == 0
    return out


def test_the_folder_holds_the_checkpoint_weights_its_contract_and_a_card(patient, exported, tmp_path):
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    state, contract = load_checkpoint(patient["ckpt"])
    tensors = load_file(exported / "model.safetensors")
    assert tensors.keys() == state["state_dict"].keys()
    assert all(torch.equal(tensors[k], v) for k, v in state["state_dict"].items())
    config = json.loads((exported / "config.json").read_text())
    assert config["weights"]["sha256"] == sha256_file(exported / "model.safetensors")
    assert config["source_sha256"] == sha256_file(patient["ckpt"])
    assert config["encoder"] == contract.encoder and config["kind"] == "pretrain"
    sim01 = config["subjects"]["sim01"]
    assert sim01["ch_names"] == contract.subjects["sim01"]["ch_names"] and sim01["n_channels"] == 25
    assert sim01["hours"]["train"] == pytest.approx(contract.data["hours"]["train"]["hours"])
    assert config["audio"]["features"] == "logmel" and config["preprocessing"]["montage"] == "bipolar"
    # where the hospital keeps its data stays there (paths=basename): no absolute path in the shared files
    assert str(patient["root"]) not in (exported / "config.json").read_text()
    assert config["contract"]["data"]["shards"] == "amb"

    readme = (exported / "README.md").read_text()
    fm = front_matter(readme)
    assert fm["license"] == "other" and fm["library_name"] == "ieegfm"
    (result,) = fm["model-index"][0]["results"]
    metrics = {m["type"]: m["value"] for m in result["metrics"]}
    # the card's figures are evaluate's on the same test split, with the number of candidates and the controls
    assert main(["evaluate", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={tmp_path / 'm.json'}"]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    for k in ("mean_relative_rank", "shuffled_mean_relative_rank", "within_block_mean_relative_rank", "n_candidates"):
        assert metrics[k] == pytest.approx(m[k]), k
    assert f"among {m['n_candidates']} candidates (within subject" in result["task"]["name"]
    assert "## Intended use" in readme and "## Limitations" in readme and "Not a medical device" in readme


def test_every_command_reads_the_folder_as_the_checkpoint(patient, exported, tmp_path):
    for name, ckpt in (("file", patient["ckpt"]), ("folder", exported)):
        assert main(["evaluate", f"ckpt={ckpt}", f"shards={patient['task']}", f"out={tmp_path / name}.json"]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("file", "folder"))
    assert a["mean_relative_rank"] == b["mean_relative_rank"] and a["n_candidates"] == b["n_candidates"]
    # finetune init=pretrained from the folder: the same run as from the checkpoint, the weights' sha256 recorded
    heads = {}
    for name, ckpt in (("file", patient["ckpt"]), ("folder", exported)):
        run = tmp_path / f"ft-{name}"
        args = ["finetune", "head=linear", f"ckpt={ckpt}", f"shards={patient['task']}", f"out={run}", "seed=0"]
        assert main([*args, "init=pretrained", "freeze=encoder", "trainer.max_steps=8", *FT]) == 0
        state, contract = load_checkpoint(run / "model.ckpt")
        heads[name] = module_weights(state, "head")
        if name == "folder":
            assert contract.pretrained["sha256"] == sha256_file(exported / "model.safetensors")
    assert all(torch.equal(heads["file"][k], v) for k, v in heads["folder"].items())
    # a finetuned run exports too; its card reads the run's own metrics.json
    out = tmp_path / "ft-export"
    assert main(["export", f"ckpt={tmp_path / 'ft-folder' / 'model.ckpt'}", f"out={out}", "license=cc-by-4.0"]) == 0
    fm = front_matter((out / "README.md").read_text())
    test = json.loads((tmp_path / "ft-folder" / "metrics.json").read_text())["test"]
    (result,) = fm["model-index"][0]["results"]
    assert fm["license"] == "cc-by-4.0"
    assert {m["type"]: m["value"] for m in result["metrics"]}["mean_relative_rank"] == pytest.approx(
        test["mean_relative_rank"]
    )
    assert json.loads((out / "config.json").read_text())["head"]["name"] == "linear"


def test_a_damaged_or_unsafe_folder_is_refused_and_runs_nothing(patient, exported, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    with open(bad / "model.safetensors", "ab") as f:
        f.write(b"\0")
    ev = ["evaluate", f"ckpt={bad}", f"shards={patient['task']}", f"out={tmp_path / 'e.json'}"]
    assert main(ev) == 2
    assert "sha256 differs from config.json's (damaged or replaced)" in capsys.readouterr().err
    # a pickle that would run code, put in place of the weights (and its sha256 into the config): not unpickled
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (bad / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    config = json.loads((bad / "config.json").read_text())
    config["weights"]["sha256"] = sha256_file(bad / "model.safetensors")
    (bad / "config.json").write_text(json.dumps(config))
    assert main(ev) == 2
    assert "not a safetensors file" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "e.json").exists()
    (bad / "config.json").write_text(json.dumps({"library_name": "other"}))
    assert main(ev) == 2
    assert "not written by ieegfm export" in capsys.readouterr().err
    (bad / "config.json").unlink()
    assert main(ev) == 2
    assert "not a model folder of ieegfm export (no config.json)" in capsys.readouterr().err


def test_export_never_writes_over_what_is_not_an_export(patient, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["export", f"ckpt={patient['ckpt']}", f"out={out}"]) == 2
    assert "exists and is not a model folder of ieegfm export; nothing written" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["export", f"ckpt={patient['ckpt']}", f"out={tmp_path / 'x'}", f"metrics={out / 'notes.txt'}"]) == 2
    assert "not JSON" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["export", f"ckpt={patient['ckpt']}", f"out={tmp_path / 'x'}", "paths=relative"]) == 2
    # an earlier export is replaced whole; without metrics the card says it was not evaluated
    again = tmp_path / "again"
    for _ in range(2):
        assert main(["export", f"ckpt={patient['ckpt']}", f"out={again}", "paths=keep"]) == 0
    assert sorted(p.name for p in again.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again")]
    readme = (again / "README.md").read_text()
    assert "model-index" not in front_matter(readme) and "Not evaluated" in readme
    assert str(patient["root"]) in (again / "config.json").read_text()  # paths=keep
