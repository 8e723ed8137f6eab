"""ieegfm finetune head=llm_prefix and ieegfm generate, on a small simulated patient with a tiny random LM."""

import csv
import json

import pytest
import torch
from recording_fixtures import save_tiny_llm

from ieegfm.__main__ import main
from ieegfm.checkpoint import load_checkpoint

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
KEYS = ("pairwise_accuracy", "pairwise_p_value", "bleu1", "bleu2", "bleu3", "bleu4", "rouge1_recall", "rougeL_recall",
        "wer")  # fmt: skip


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny")


def test_llm_head_run_metrics_controls_and_generate(patient, tiny_llm, tmp_path, capsys):
    run = tmp_path / "llm"
    args = ["finetune", "head=llm_prefix", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={run}",
            f"llm.model={tiny_llm}", "trainer.max_steps=20", "trainer.val_check_interval=10", "data.batch_size=16",
            "llm.n_generate=6", "head_options.n_tokens=4", "llm.mse_warmup_steps=5", *FAST]  # fmt: skip
    assert main(args) == 0
    m = json.loads((run / "metrics.json").read_text())
    for k in KEYS:
        assert isinstance(m[k], float), k
        if k.startswith(("bleu", "rouge", "wer")):
            assert isinstance(m[f"permuted_{k}"], float) and isinstance(m[f"no_brain_{k}"], float), k
    assert 0 <= m["pairwise_accuracy"] <= 1 and m["n_items"] == m["items"]["test"] and m["n_generated"] == 6
    assert m["permuted_loss"] > 0 and m["no_brain_loss"] > 0 and m["s_per_step"] > 0 and m["peak_rss_mb"] > 100
    assert m["bf16"] is False  # auto: float32 on a CPU
    with open(run / "generated.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 6 and all(len(r["generated"].split()) <= len(r["reference"].split()) for r in rows)
    state, contract = load_checkpoint(run / "model.ckpt")
    assert contract.head["name"] == "llm_prefix" and contract.head["n_tokens"] == 4
    assert contract.training["llm"]["path"] == str(tiny_llm) and not any(k.startswith("lm.") for k in state)
    card = json.loads((run / "card.json").read_text())
    assert card["head"] == "llm_prefix" and "pairwise_accuracy" in card["metrics"]
    capsys.readouterr()
    assert main(["generate", f"ckpt={run / 'model.ckpt'}", f"shards={patient['task']}", "n=3"]) == 0
    out = capsys.readouterr().out
    assert out.count("heard:") == 3 and out.count("generated:") == 3 and out.count("no brain:") == 3


def test_llm_head_bad_input(patient, tiny_llm, tmp_path, capsys):
    assert main(["generate", f"ckpt={patient['ckpt']}", f"shards={patient['task']}"]) == 2
    assert "not a finetuned llm_prefix checkpoint" in capsys.readouterr().err
    base = ["finetune", "head=llm_prefix", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", *FAST]
    assert main([*base, f"out={tmp_path / 'a'}", "llm.model=/nonexistent"]) == 2
    assert "llm.model=/nonexistent: not a local causal-LM folder" in capsys.readouterr().err
    tiny = [*base, f"llm.model={tiny_llm}"]
    assert main([*tiny, f"out={tmp_path / 'b'}", "llm.text_steps=5"]) == 2
    assert "llm.text_steps: needs head_options.prefix_from=sentence_embedding (got segments)" in capsys.readouterr().err
    via = [*tiny, "head_options.prefix_from=sentence_embedding"]
    assert main([*via, f"out={tmp_path / 'c'}", f"llm.align_ckpt={patient['ckpt']}"]) == 2
    err = capsys.readouterr().err
    assert f"llm.align_ckpt={patient['ckpt']}: not a finetuned text_embedding checkpoint" in err
    assert main([*via, f"out={tmp_path / 'd'}", "llm.text_steps=5", "llm.mse_warmup_steps=5"]) == 2
    assert "two warm-ups" in capsys.readouterr().err


def test_sentence_embedding_prefix_warm_start_and_text_only_stage(patient, tiny_llm, tmp_path):
    """prefix_from=sentence_embedding: the encoder and the head's align part come from a text-embedding run
    (llm.align_ckpt); with every step a text-only step (llm.text_steps = trainer.max_steps) only the mapper learns,
    so the saved align weights are the text head's own, and the contract names the warm start."""
    text_run = tmp_path / "text"
    assert main(["finetune", "head=text_embedding", f"ckpt={patient['ckpt']}", f"shards={patient['task']}",
                 f"out={text_run}", "trainer.max_steps=6", "trainer.val_check_interval=3", *FAST]) == 0  # fmt: skip
    run = tmp_path / "llm"
    args = ["finetune", "head=llm_prefix", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={run}",
            f"llm.model={tiny_llm}", "trainer.max_steps=8", "trainer.val_check_interval=4", "data.batch_size=8",
            "llm.n_generate=2", "head_options.n_tokens=2", "head_options.prefix_from=sentence_embedding",
            f"llm.align_ckpt={text_run / 'model.ckpt'}", "llm.text_steps=8", "llm.monitor=loss_vs_permuted",
            *FAST]  # fmt: skip
    assert main(args) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["best_step"] in (4, 8) and isinstance(m["best_val_loss_vs_permuted"], float)
    text_state, _ = load_checkpoint(text_run / "model.ckpt")
    state, contract = load_checkpoint(run / "model.ckpt")
    weights = state["state_dict"]
    for k, v in text_state["state_dict"].items():
        mine = weights["head.align." + k[5:] if k.startswith("head.") else k]
        assert torch.equal(mine, v), k  # encoder frozen, align untouched by text-only steps
    assert any(k.startswith("head.mapper.") for k in weights) and not any(k.startswith("head.adapter") for k in weights)
    llm = contract.training["llm"]
    assert llm["prefix_from"] == "sentence_embedding" and llm["text_steps"] == 8 and llm["text_model"]["dim"] == 384
    assert llm["align_ckpt"]["path"] == str(text_run / "model.ckpt") and len(llm["align_ckpt"]["sha256"]) == 64
    assert contract.head["embed_dim"] == 384 and contract.head["prefix_from"] == "sentence_embedding"
