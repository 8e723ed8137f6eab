"""Finetune heads: one per file on :class:`FinetuneHead` (pure torch), built by name from :data:`HEADS`.

Window heads (``linear``) map one encoder window to the task's audio targets; sentence heads (``text_embedding``,
listed in :data:`SENTENCE_HEADS`) pool the windows of one heard sentence under a mask; the LLM-prefix head
(``llm_prefix``, :data:`LANGUAGE_MODEL_HEADS`) turns a window into soft tokens of a frozen causal LM.
"""

from __future__ import annotations

import inspect

from ieegfm.heads.base import EncoderWithHead, FinetuneHead
from ieegfm.heads.linear import LinearHead
from ieegfm.heads.llm_prefix import LLMPrefixHead
from ieegfm.heads.text_embedding import TextEmbeddingHead

HEADS: dict[str, type[FinetuneHead]] = {
    "linear": LinearHead,
    "text_embedding": TextEmbeddingHead,
    "llm_prefix": LLMPrefixHead,
}
#: Heads trained on sentence items (:mod:`ieegfm.text.sentences`) rather than fixed windows.
SENTENCE_HEADS = ("text_embedding",)
#: Heads whose output prefixes a frozen causal LM (:mod:`ieegfm.finetune.llm_run`).
LANGUAGE_MODEL_HEADS = ("llm_prefix",)


def build_head(name: str, **kwargs) -> FinetuneHead:
    """Build a finetune head by name.

    Parameters
    ----------
    name : str
        Registered head name (a key of :data:`HEADS`).
    **kwargs
        Constructor arguments (``n_hidden``, ``n_features``, ``pooling`` and the head's own).

    Returns
    -------
    FinetuneHead

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones), an argument the head does not take, or a bad value.
    """
    if name not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)}, got {name!r}")
    cls = HEADS[name]
    accepted = {k for k in inspect.signature(cls.__init__).parameters if k != "self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for head {name!r}; it accepts {sorted(accepted)}")
    return cls(**kwargs)


__all__ = [
    "LANGUAGE_MODEL_HEADS",
    "LLMPrefixHead",
    "HEADS",
    "SENTENCE_HEADS",
    "EncoderWithHead",
    "FinetuneHead",
    "LinearHead",
    "TextEmbeddingHead",
    "build_head",
]
