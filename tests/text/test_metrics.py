"""Decoded-text metrics: library values on known cases, tokenisation without downloads, optional BERTScore."""

import sys

import numpy as np
import pytest

from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.text import bertscore_f1, sentence_scores, text_metrics, tokenize
from ieegfm.text.embed import default_model_dir


def test_tokenize_without_punkt():
    assert tokenize("Don't  stop, it's 9 o'clock!") == ["don't", "stop", "it's", "9", "o'clock"]


def test_perfect_and_disjoint_text():
    refs = ["The nurse will come by at nine.", "It is raining again over the city."]
    perfect = text_metrics(refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["wer"] == 0.0
    for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rougeL", "rouge1_recall"):
        assert perfect[k] == pytest.approx(1.0), k
    # NLTK's method7 (the Neuro2Semantic paper's number) exceeds 1 even on an exact match: kept for comparability,
    # documented, never the headline
    assert perfect["bleu_nltk"] > 1.0
    none = text_metrics(["purple elephants dance quietly", "zebra xylophone"], refs)
    assert none["bleu"] == 0.0 and none["rouge1"] == 0.0 and none["wer"] == 1.0
    assert none["bleu1"] == 0.0 and perfect["n_sentences"] == 2


def test_known_values_and_bleu1_never_exceeds_one():
    ref, hyp = "the cat sat on a mat", "the cat sat"
    s = sentence_scores([hyp], [ref])
    assert s["rouge1_recall"][0] == pytest.approx(0.5) and s["rouge1"][0] == pytest.approx(2 / 3)
    assert s["wer"][0] == pytest.approx(0.5)  # three deletions of six words
    assert s["bleu1"][0] == pytest.approx(np.exp(1 - 6 / 3))  # brevity penalty times unigram precision 1
    rng = np.random.default_rng(0)
    words = "a the cat dog sat ran on under mat rug".split()
    hyps = [" ".join(rng.choice(words, rng.integers(1, 4))) for _ in range(50)]
    refs = [" ".join(rng.choice(words, 8)) for _ in range(50)]
    s = sentence_scores(hyps, refs)
    assert max(s[f"bleu{n}"].max() for n in range(1, 5)) <= 1.0  # method1, not method5/7


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        text_metrics(["a", "b"], ["a"])


def test_bertscore_needs_its_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bert_score", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'ieegfm\[bertscore\]'"):
        bertscore_f1(["a"], ["a"], str(tmp_path), 2)


def test_bertscore_with_a_local_model_is_unrescaled_and_orders_pairs():
    pytest.importorskip("bert_score")
    model, ref = str(default_model_dir()), ["the nurse will come by at nine"]
    same = bertscore_f1(ref, ref, model, 4)
    near = bertscore_f1(["the nurse comes at nine"], ref, model, 4)
    far = bertscore_f1(["purple zebras dance quietly"], ref, model, 4)
    assert same["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    assert same["bertscore_f1"] > near["bertscore_f1"] > far["bertscore_f1"]
    assert near["bertscore_rescaled"] is False and near["bertscore_layer"] == 4
    with pytest.raises(InputError, match="not a local model folder"):
        bertscore_f1(ref, ref, "/nonexistent/model", 4)
