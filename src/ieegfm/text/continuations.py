"""Continuation items from task shards for the LLM-prefix head: a brain window, the words heard in it, and the words
heard before it.

Each chunk of a shard made from a recordings table with a ``words`` column carries its words (``words``: onset in s
on the iEEG clock, duration, word). Windows are the evaluation grid (non-overlapping ``window_n`` samples from each
chunk's start). A window's *continuation* is the words whose onset falls in the window shifted back by ``lag_s``
(responses lag the sound); its *prompt* is the ``prompt_words`` words heard just before the continuation in the same
block (BrainLLM's text prompt: the preceding context). Windows without a word are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ieegfm.errors import InputError
from ieegfm.io.manifest import Manifest
from ieegfm.text.sentences import SPLITS, read_blocks

__all__ = ["ContinuationItem", "load_continuations"]


@dataclass
class ContinuationItem:
    """One window with its text.

    Attributes
    ----------
    key : str
        ``<chunk key>/<window index>``.
    block, split, prompt, continuation : str
    subject : int
    tmin : float
        Window start (s, iEEG clock of the block).
    brain : ndarray, shape (n_chans, window_n), float16
    """

    key: str
    block: str
    split: str
    subject: int
    tmin: float
    prompt: str
    continuation: str
    brain: np.ndarray


def load_continuations(
    shards, manifest: Manifest, subjects: dict[str, int], n_chans: int, window_n: int, prompt_words: int = 12,
    lag_s: float = 0.3,
) -> dict[str, list[ContinuationItem]]:  # fmt: skip
    """Continuation items per split.

    Parameters
    ----------
    shards : str | Path
        Folder written by ``ieegfm pack`` from a table with a ``words`` column.
    manifest : dict
    subjects : dict
        Subject label -> encoder subject index.
    n_chans, window_n : int
        Encoder input channels (zero-padded) and window length (samples).
    prompt_words : int
        Words of preceding context in the prompt (0: empty prompt).
    lag_s : float
        Response lag (s): the window's words are those with onset in ``[tmin - lag_s, tmin + window_s - lag_s)``.

    Returns
    -------
    dict of split -> list of ContinuationItem

    Raises
    ------
    InputError
        No words in the shards (pack from a table with a ``words`` column), or a split without items.
    """
    sfreq = manifest.sfreq
    window_s = window_n / sfreq
    items: dict[str, list[ContinuationItem]] = {sp: [] for sp in SPLITS}
    seen_words = False
    for sp in SPLITS:
        urls = [str(Path(shards) / s.name) for s in manifest.entries(sp)]
        for block, chunks in read_blocks(urls).items():
            words = sorted((w for c in chunks for w in c["meta"].get("words") or []), key=lambda w: w[0])
            seen_words = seen_words or bool(words)
            onsets = np.array([w[0] for w in words])
            for c in chunks:
                meta, brain = c["meta"], c["brain"]
                for i, lo in enumerate(range(0, brain.shape[1] - window_n + 1, window_n)):
                    t0 = meta["tmin"] + lo / sfreq - lag_s
                    a, b = np.searchsorted(onsets, [t0, t0 + window_s], side="left")
                    if b <= a:
                        continue
                    padded = np.zeros((n_chans, window_n), np.float16)
                    padded[: brain.shape[0]] = brain[:, lo : lo + window_n]
                    items[sp].append(
                        ContinuationItem(
                            key=f"{c['__key__']}/{i}",
                            block=block,
                            split=sp,
                            subject=subjects[meta["subject"]],
                            tmin=meta["tmin"] + lo / sfreq,
                            prompt=" ".join(w[2] for w in words[max(0, a - prompt_words) : a]) if prompt_words else "",
                            continuation=" ".join(w[2] for w in words[a:b]),
                            brain=padded,
                        )
                    )
    if not seen_words:
        raise InputError(
            f"shards={shards}: no words in the chunks; pack the task from a recordings table with a `words` column "
            "(onset, duration, word per row)"
        )
    empty = [sp for sp in SPLITS if not items[sp]]
    if empty:
        raise InputError(f"shards={shards}: no window with heard words in the {', '.join(empty)} split(s)")
    return items
