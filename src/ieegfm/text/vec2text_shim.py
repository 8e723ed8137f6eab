"""vec2text 0.0.13 (Morris et al., EMNLP 2023) offline under transformers 5: the fixes it needs, in one place.

``pip install 'ieegfm[vec2text]'``; this module imports vec2text only when one of its functions is called.

vec2text as shipped does not run here, for three reasons, each mended below and tested on tiny random models:

1. ``InversionModel.from_pretrained`` / ``CorrectorEncoderModel.from_pretrained`` fail under transformers 5: the
   models' ``__init__`` loads further pretrained models, which the meta-device initialisation of ``from_pretrained``
   cannot do. :func:`load_corrector` builds each model from its config and loads the weights with
   ``load_state_dict`` (safetensors, or ``torch.load(weights_only=True)``).
2. ``vec2text.api.load_corrector`` builds trainers whose ``__init__`` calls ``evaluate.load("accuracy" | "sacrebleu" |
   "rouge")``, which fetches from the hub. Those metrics serve only vec2text's own evaluation loop, so they are
   stubbed while the trainers are built (using one raises).
3. Correction steps divide by ``output_length ** generation_config.length_penalty``, which is None under
   transformers 5: it is set to 1.0.

Two smaller ones: importing vec2text sets TorchDynamo's log level to INFO (reset to WARNING), and an
``InversionModel`` left in training mode adds ``embedder_gaussian_noise_level`` noise, which is None in checkpoints
saved without it (both models are put in eval mode; Phase 2 trains the corrector only).

The checkpoints name their base models by hub id (``model_name_or_path='t5-base'``, ``embedder_model_name=
'gtr_base'``); here they are local folders (``t5``, ``embedder``), and a local embedder folder is loaded as a T5
*encoder*, as vec2text does for ``gtr_base``. The targets of the text-embedding head must then use
``text.convention=t5_mean`` with that embedder folder (the T5 encoder's mean-pooled, unnormalised 768-d output).
:class:`CorrectorEncoderModel` hard-codes 768-d embeddings (gtr-t5-base): other sizes are refused.

Phase 2 of Neuro2Semantic, :func:`finetune_corrector`, trains the corrector on the brain's predicted embeddings with
vec2text's own ``Corrector.compute_loss`` (``frozen_embeddings`` = the predictions, ``labels`` = the sentences).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from ieegfm.errors import ConfigError, InputError

__all__ = ["CORRECTOR_DIM", "require_vec2text", "load_corrector", "invert", "finetune_corrector"]

CORRECTOR_DIM = 768  # vec2text.models.CorrectorEncoderModel: embedder_dim = 768 unless an API embedder


def require_vec2text():
    """The ``vec2text`` module; ``ConfigError`` (saying how to install the extra) when it is missing."""
    try:
        import vec2text
    except ImportError:
        raise ConfigError("vec2text inversion needs the optional extra: pip install 'ieegfm[vec2text]'") from None
    import logging

    torch._logging.set_logs(dynamo=logging.WARNING)  # vec2text.experiments sets TorchDynamo's log to INFO on import
    return vec2text


class _HubMetric:
    """Stands in for an ``evaluate`` metric that would need the hub (only vec2text's own eval loop uses it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def compute(self, *args, **kwargs):
        raise RuntimeError(f"evaluate.load({self.name!r}) is hub-only; ieegfm scores with ieegfm.evaluation.text")


@contextlib.contextmanager
def _offline(embedder: Path | None):
    """Stub ``evaluate.load`` and resolve a local embedder folder while vec2text objects are built."""
    import transformers
    import vec2text.models.inversion as inversion
    import vec2text.models.model_utils as model_utils
    import vec2text.trainers.base as base

    original_load, original_embedder = base.evaluate.load, model_utils.load_embedder_and_tokenizer

    def load_embedder(name, torch_dtype="float32", **kwargs):
        if Path(str(name)).is_dir():  # a local gtr-t5 folder: its T5 encoder, as vec2text loads 'gtr_base'
            model = transformers.T5EncoderModel.from_pretrained(str(name))
            return model, transformers.AutoTokenizer.from_pretrained(str(name))
        return original_embedder(name, torch_dtype, **kwargs)

    base.evaluate.load = lambda name, *a, **k: _HubMetric(name)
    model_utils.load_embedder_and_tokenizer = inversion.load_embedder_and_tokenizer = load_embedder
    try:
        yield
    finally:
        base.evaluate.load = original_load
        model_utils.load_embedder_and_tokenizer = inversion.load_embedder_and_tokenizer = original_embedder


def _state_dict(folder: Path) -> dict:
    st = sorted(folder.glob("*.safetensors"))
    if st:
        from safetensors.torch import load_file

        state = {}
        for f in st:
            state.update(load_file(str(f)))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise InputError(f"{folder}: no model.safetensors or pytorch_model.bin")
    state = {}
    for f in bins:
        state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state


def _build(cls, folder: Path, t5: Path | None, embedder: Path | None):
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: not a vec2text checkpoint folder (no config.json)")
    config = cls.config_class.from_pretrained(str(folder))
    if t5 is not None:
        config.model_name_or_path = str(t5)
    if embedder is not None:
        config.embedder_model_name = str(embedder)
    model = cls(config)  # fix 1: plain construction, then the weights
    state = _state_dict(folder)
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = model.state_dict(keep_vars=True)
    loaded = {params[k].data_ptr() for k in state if k in params}
    # the embedder comes from its own folder; tied weights (T5's shared embeddings, lm_head) are saved once
    missing = [k for k in missing if not k.startswith("embedder.") and params[k].data_ptr() not in loaded]
    unexpected = [k for k in unexpected if not k.startswith("embedder.")]
    if missing or unexpected:
        raise InputError(
            f"{folder}: weights do not fit {cls.__name__} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def load_corrector(folder: str | Path, t5: str | Path | None = None, embedder: str | Path | None = None):
    """A vec2text corrector from local folders, offline.

    Parameters
    ----------
    folder : str | Path
        Holds ``inversion/`` (e.g. ``jxm/gtr__nq__32``) and ``corrector/`` (e.g. ``jxm/gtr__nq__32__correct``), each
        a ``config.json`` plus weights, copied from a connected machine.
    t5 : str | Path, optional
        Local folder of the encoder-decoder the checkpoints were trained from (``t5-base``); default: the name in
        their config (must then be a local path).
    embedder : str | Path, optional
        Local folder of the embedder (``sentence-transformers/gtr-t5-base``), loaded as a T5 encoder.

    Returns
    -------
    vec2text.trainers.Corrector

    Raises
    ------
    ConfigError
        vec2text is not installed.
    InputError
        A folder missing or whose weights do not fit.
    """
    vec2text = require_vec2text()
    folder = Path(str(folder))
    t5 = None if t5 is None else Path(str(t5))
    embedder = None if embedder is None else Path(str(embedder))
    for name, path in (("t5", t5), ("embedder", embedder)):
        if path is not None and not path.is_dir():
            raise InputError(f"vec2text {name}={path}: not a local model folder")
    with _offline(embedder):
        inversion = _build(vec2text.models.InversionModel, folder / "inversion", t5, embedder)
        corrector_model = _build(vec2text.models.CorrectorEncoderModel, folder / "corrector", t5, embedder)
        corrector = vec2text.api.load_corrector(inversion, corrector_model)  # fix 2: evaluate.load stubbed
    for m in (corrector.model.encoder_decoder, corrector.inversion_trainer.model.encoder_decoder):
        m.generation_config.length_penalty = 1.0  # fix 3
    corrector.inversion_trainer.model.eval()  # frozen (in training mode its embedder adds noise_level=None noise)
    corrector.model.eval()
    return corrector


def _check(embeddings) -> torch.Tensor:
    emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    if emb.ndim != 2 or emb.shape[1] != CORRECTOR_DIM:
        raise ValueError(
            f"embeddings must have shape (n, {CORRECTOR_DIM}) (vec2text's corrector hard-codes 768-d gtr-t5-base "
            f"embeddings; use text.convention=t5_mean with a gtr-t5-base folder), got {tuple(emb.shape)}"
        )
    return emb


def invert(corrector, embeddings, num_steps: int = 20, sequence_beam_width: int = 0) -> list[str]:
    """Text of embeddings (``vec2text.invert_embeddings``): the inversion model's hypothesis, then ``num_steps``
    correction steps (0: the hypothesis only).

    Parameters
    ----------
    corrector : vec2text.trainers.Corrector
        From :func:`load_corrector`.
    embeddings : array, shape (n, 768)
        The T5-mean (unnormalised) space of the corrector's embedder.
    num_steps : int
    sequence_beam_width : int

    Raises
    ------
    ValueError
        Embeddings not (n, 768).
    """
    vec2text = require_vec2text()
    emb = _check(embeddings).to(next(corrector.model.parameters()).device)
    return vec2text.api.invert_embeddings(emb, corrector, num_steps=num_steps or None,
                                          sequence_beam_width=sequence_beam_width)  # fmt: skip


def finetune_corrector(corrector, embeddings, texts: list[str], steps: int = 100, lr: float = 1e-4,
                       batch_size: int = 8, seed: int = 0) -> list[float]:  # fmt: skip
    """Phase 2 (Neuro2Semantic): train the corrector to map the brain's predicted embeddings to the heard sentences.

    Each step: a batch of (prediction, sentence); the inversion model's hypothesis for the prediction is generated
    and embedded, and the corrector is trained with vec2text's ``Corrector.compute_loss`` (``frozen_embeddings`` =
    the predictions, ``labels`` = the sentence tokens). The inversion model and the embedder stay frozen.

    Parameters
    ----------
    corrector : vec2text.trainers.Corrector
    embeddings : array, shape (n, 768)
        Predicted embeddings of training sentences (the text head's outputs).
    texts : list of str
        The sentences heard.
    steps, lr, batch_size, seed
        AdamW on the corrector model's parameters.

    Returns
    -------
    losses : list of float
        The loss of every step.

    Raises
    ------
    ValueError
        Embeddings not (n, 768) or not one per text.
    """
    emb = _check(embeddings)
    if len(emb) != len(texts):
        raise ValueError(f"{len(emb)} embeddings for {len(texts)} texts")
    model = corrector.model
    corrector.inversion_trainer.model.eval()
    device = next(model.parameters()).device
    tok = corrector.tokenizer
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(texts), size=min(batch_size, len(texts)), replace=False)
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=64)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        inputs = {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
                  "labels": labels.to(device), "frozen_embeddings": emb[idx].to(device)}  # fmt: skip
        loss = corrector.compute_loss(model, inputs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
