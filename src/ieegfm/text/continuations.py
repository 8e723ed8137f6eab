"""Continuation items from task shards for the LLM-prefix head: a brain window, the words heard in it, and the words
heard before it.

Each chunk of a shard made from a recordings table with a ``words`` column carries its words (``words``: onset in s
on the iEEG clock, duration, word). Windows are the evaluation grid (non-overlapping ``window_n`` samples from each
chunk's start). A window's *continuation* is the words whose onset falls in the window shifted back by ``lag_s``
(responses lag the sound); its *prompt* is the ``prompt_words`` words heard just before the continuation in the same
block (BrainLLM's text prompt: the preceding context); its *sentence* is the text of the ``trial_type='sentence'``
event that overlaps the shifted window longest (the target of the text-only stage of the sentence-embedding
prefix, :class:`ieegfm.heads.llm_prefix.LLMPrefixHead`). Windows without a word are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ieegfm.errors import InputError
from ieegfm.io.manifest import Manifest
from ieegfm.text.embed import normalise_text
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
    sentence : str
        The heard sentence the window overlaps most ("" when the shards hold no sentence events there).
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
    sentence: str = ""


def _sentence_events(chunks: list[dict]) -> list[tuple[float, float, str]]:
    """(onset, offset, text) of the block's sentence events, each once, by onset."""
    events = {}
    for c in chunks:
        for e in c["meta"].get("events") or []:
            if e.get("trial_type") == "sentence" and e.get("value"):
                on = float(e["onset"])
                events[e.get("id", on)] = (on, on + float(e["duration"]), normalise_text(e["value"]))
    return sorted(events.values())


def _overlapping(sentences: list[tuple[float, float, str]], t0: float, t1: float) -> str:
    """The text of the sentence overlapping ``[t0, t1)`` longest ("" when none does)."""
    best, most = "", 0.0
    for on, off, text in sentences:
        overlap = min(t1, off) - max(t0, on)
        if overlap > most:
            best, most = text, overlap
    return best


def load_continuations(
    shards, manifest: Manifest, subjects: dict[str, int], n_chans: int, window_n: int, prompt_words: int = 12,
    lag_s: float = 0.3, disjoint: bool = False,
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
    disjoint : bool
        Remove training and validation windows whose sentence occurs in a later split (test sentences never seen in
        training, as ``text.disjoint`` for the text head; windows without a sentence are kept).

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
            sentences = _sentence_events(chunks)
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
                            sentence=_overlapping(sentences, t0, t0 + window_s),
                        )
                    )
    if not seen_words:
        raise InputError(
            f"shards={shards}: no words in the chunks; pack the task from a recordings table with a `words` column "
            "(onset, duration, word per row)"
        )
    if disjoint:
        test = {it.sentence for it in items["test"]} - {""}
        later = {"val": test, "train": test | {it.sentence for it in items["val"]}}
        for sp in ("val", "train"):
            items[sp] = [it for it in items[sp] if it.sentence not in later[sp]]
    empty = [sp for sp in SPLITS if not items[sp]]
    if empty:
        raise InputError(
            f"shards={shards}: no window with heard words in the {', '.join(empty)} split(s)"
            + (" after removing sentences of later splits (llm.disjoint=true)" if disjoint else "")
        )
    return items
