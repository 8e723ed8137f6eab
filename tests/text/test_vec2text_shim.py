"""vec2text 0.0.13 under transformers 5, offline, through ieegfm.text.vec2text_shim: tiny random T5 models."""

import subprocess
import sys

import numpy as np
import pytest

from ieegfm.errors import ConfigError, InputError

pytest.importorskip("vec2text")

from recording_fixtures import save_tiny_vec2text  # noqa: E402

from ieegfm.text import vec2text_shim as shim  # noqa: E402

TEXTS = ["the cat sat", "a dog ran home", "it is late"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_vec2text(tmp_path_factory.mktemp("vec2text"))


def _load(root):
    return shim.load_corrector(root, t5=root / "t5", embedder=root / "embedder")


def test_loads_offline_and_restores_what_it_patched(tiny):
    import vec2text.models.model_utils as model_utils
    import vec2text.trainers.base as base

    before = base.evaluate.load, model_utils.load_embedder_and_tokenizer
    corrector = _load(tiny)
    assert (base.evaluate.load, model_utils.load_embedder_and_tokenizer) == before
    for m in (corrector.model.encoder_decoder, corrector.inversion_trainer.model.encoder_decoder):
        assert m.generation_config.length_penalty == 1.0
    # the weights are the saved ones, not a fresh random init
    from safetensors.torch import load_file

    saved = load_file(str(tiny / "corrector" / "model.safetensors"))
    key = "embedding_transform_1.0.weight"
    assert np.array_equal(saved[key].numpy(), corrector.model.state_dict()[key].numpy())


def test_invert_and_phase2_finetuning_learns_the_sentences(tiny):
    corrector = _load(tiny)
    emb = np.random.default_rng(0).standard_normal((3, shim.CORRECTOR_DIM)).astype(np.float32)
    hypotheses = shim.invert(corrector, emb, num_steps=0)
    before = shim.invert(corrector, emb, num_steps=1)
    assert len(hypotheses) == len(before) == 3 and before != TEXTS
    losses = shim.finetune_corrector(corrector, emb, TEXTS, steps=120, lr=3e-3, batch_size=3)
    assert len(losses) == 120 and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    # the corrector (trained) maps each prediction to its sentence in one step; the inversion model stays frozen
    assert shim.invert(corrector, emb, num_steps=1) == TEXTS
    assert shim.invert(corrector, emb, num_steps=0) == hypotheses


def test_bad_input(tiny, tmp_path, monkeypatch):
    corrector = _load(tiny)
    with pytest.raises(ValueError, match=r"shape \(n, 768\).*got \(2, 384\)"):
        shim.invert(corrector, np.zeros((2, 384), np.float32))
    with pytest.raises(ValueError, match="2 embeddings for 3 texts"):
        shim.finetune_corrector(corrector, np.zeros((2, 768), np.float32), TEXTS)
    with pytest.raises(InputError, match="not a vec2text checkpoint folder"):
        shim.load_corrector(tmp_path, t5=tiny / "t5", embedder=tiny / "embedder")
    with pytest.raises(InputError, match="embedder=.*not a local model folder"):
        shim.load_corrector(tiny, t5=tiny / "t5", embedder=tmp_path / "missing")
    monkeypatch.setitem(sys.modules, "vec2text", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'ieegfm\[vec2text\]'"):
        shim.load_corrector(tiny)


def test_ieegfm_never_imports_vec2text_unless_asked():
    code = "import sys, ieegfm, ieegfm.__main__, ieegfm.text.vec2text_shim; assert 'vec2text' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_t5_mean_targets_are_the_correctors_embedding_space(tiny):
    """The text head's t5_mean targets equal what vec2text's own embedder computes (mean-pooled, unnormalised)."""
    import torch

    from ieegfm.text.embed import SentenceEmbedder

    corrector = _load(tiny)
    inversion = corrector.inversion_trainer.model
    enc = inversion.embedder_tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        theirs = inversion.call_embedding_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    ours = SentenceEmbedder(tiny / "embedder", "t5_mean").encode(TEXTS)
    assert ours.shape == (3, shim.CORRECTOR_DIM)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_text_head_run_inverts_with_vec2text(patient, tiny, tmp_path, capsys):
    import csv
    import json

    from ieegfm.__main__ import main

    run = tmp_path / "run"
    args = ["finetune", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", "head=text_embedding",
            "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.max_steps=4",
            f"text.model={tiny / 'embedder'}", f"text.vec2text={tiny}", f"text.vec2text_t5={tiny / 't5'}",
            "text.vec2text_steps=1", "text.vec2text_finetune_steps=3"]  # fmt: skip
    assert main([*args, "text.convention=t5_mean", f"out={run}"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["vec2text_n_sentences"] == m["n_sentences"] and m["vec2text_finetune_steps"] == 3
    for k in ("bleu", "rouge1", "rougeL", "wer"):
        assert isinstance(m[f"vec2text_{k}"], float) and isinstance(m[f"vec2text_permuted_{k}"], float)
    with open(run / "decoded.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == m["n_sentences"] and all("vec2text" in r for r in rows)
    # normalised sentence-transformers targets cannot feed the corrector: one line, before anything is loaded
    capsys.readouterr()
    assert main([*args, f"out={tmp_path / 'bad'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs text.convention=t5_mean" in err and not (tmp_path / "bad").exists()
