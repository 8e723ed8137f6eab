"""Sentence embeddings (real MiniLM, tiny random T5 for vec2text's convention), candidate bank, retrieval scoring."""

import numpy as np
import pytest
import torch

from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.sentences import score_sentences
from ieegfm.simulate import load_sentences as pool
from ieegfm.text.bank import build_bank, load_distractors
from ieegfm.text.embed import SentenceEmbedder, default_model_dir


@pytest.fixture(scope="module")
def minilm():
    torch.set_num_threads(1)
    return SentenceEmbedder()


def test_minilm_is_real_and_offline(minilm):
    e = minilm.encode(["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Stock prices fell sharply."])
    assert e.shape == (3, 384) and minilm.dim == 384 and minilm.name == "all-MiniLM-L6-v2"
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)  # normalised, as sentence-transformers gives
    assert e[0] @ e[1] > 0.5 > e[0] @ e[2]  # meaning, not spelling
    assert default_model_dir().is_dir()


def test_t5_mean_is_vec2texts_unnormalised_mean_pool(tmp_path):
    """The GTR convention on a tiny random T5 encoder saved offline (the MiniLM tokenizer stands in for T5's)."""
    import shutil

    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(default_model_dir())
    cfg = T5Config(vocab_size=tok.vocab_size, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=2)
    T5EncoderModel(cfg).save_pretrained(tmp_path)
    for f in default_model_dir().glob("*"):
        if f.name.startswith(("tokenizer", "vocab", "special")):
            shutil.copy(f, tmp_path / f.name)
    emb = SentenceEmbedder(tmp_path, convention="t5_mean")
    texts = ["a short one", "a somewhat longer sentence than the first"]
    out = emb.encode(texts)
    assert out.shape == (2, 16) and emb.dim == 16
    model = T5EncoderModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ids = tok(texts[1], return_tensors="pt")
        manual = model(**ids).last_hidden_state[0].mean(0).numpy()
    assert np.allclose(out[1], manual, atol=1e-5)
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)  # unnormalised


def test_bad_model_folder_or_convention(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        SentenceEmbedder(tmp_path / "missing")
    with pytest.raises(ConfigError, match="text convention='gtr'"):
        SentenceEmbedder(convention="gtr")


def test_distractors_are_not_task_sentences():
    d = load_distractors()
    assert len(d) == 100 and len(set(d)) == 100 and not set(d) & set(pool())


def test_bank_scoring_true_permuted_and_random(minilm):
    texts = pool()[:30]
    bank = build_bank(texts, load_distractors(), minilm.encode)
    assert bank.n_candidates == 130 and bank.n_task == 30
    targets = np.stack([bank.lookup()[t] for t in texts])
    perfect = score_sentences(targets, targets, texts, bank, seed=0)
    assert perfect["mean_relative_rank"] == 0.0 and perfect["top1_acc"] == 1.0 and perfect["n_candidates"] == 130
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["wer"] == 0.0 and perfect["cosine"] == pytest.approx(1)
    assert 0.3 < perfect["permuted_mean_relative_rank"] < 0.7 and perfect["p_value"] < 1e-5
    assert perfect["random_bleu"] < 20 and perfect["permuted_wer"] > 0.6
    assert perfect["per_sentence"][0]["decoded"] == texts[0]
    noise = np.random.default_rng(1).standard_normal(targets.shape)
    chance = score_sentences(noise, targets, texts, bank, seed=0)
    assert 0.3 < chance["mean_relative_rank"] < 0.7 and chance["p_value"] > 0.01
