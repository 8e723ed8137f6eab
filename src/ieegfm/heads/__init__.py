"""Finetune heads: one per file on :class:`FinetuneHead` (pure torch), built by name from :data:`HEADS`.

Window heads (``linear``) map one encoder window to the task's audio targets; sentence heads (``text_embedding``,
listed in :data:`SENTENCE_HEADS`) pool the windows of one heard sentence under a mask. The LLM-prefix head will join
the same registry.
"""

from __future__ import annotations

import inspect

from ieegfm.heads.base import EncoderWithHead, FinetuneHead
from ieegfm.heads.linear import LinearHead
from ieegfm.heads.text_embedding import TextEmbeddingHead

HEADS: dict[str, type[FinetuneHead]] = {"linear": LinearHead, "text_embedding": TextEmbeddingHead}
#: Heads trained on sentence items (:mod:`ieegfm.text.sentences`) rather than fixed windows.
SENTENCE_HEADS = ("text_embedding",)


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
    "HEADS",
    "SENTENCE_HEADS",
    "EncoderWithHead",
    "FinetuneHead",
    "LinearHead",
    "TextEmbeddingHead",
    "build_head",
]
