"""ieegfm finetune head=llm_prefix and ieegfm generate, on a small simulated patient with a tiny random LM."""

import csv
import json

import pytest
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
    assert main([*base, f"out={tmp_path / 'b'}", f"llm.model={tiny_llm}", "head_options.pool=lstm"]) == 2
    assert "head_options.pool='lstm' does not apply to head=llm_prefix" in capsys.readouterr().err
