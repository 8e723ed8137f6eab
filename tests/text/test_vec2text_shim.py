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
