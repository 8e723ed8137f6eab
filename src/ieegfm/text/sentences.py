"""Sentence items from task shards: the brain activity of one heard sentence, as encoder windows plus a mask.

A packed task chunk carries the BIDS ``events`` that overlap it (``onset``/``duration`` in seconds on the clock of
its ``tmin``, ``value`` the sentence text). For each ``trial_type='sentence'`` event, the samples from its onset to
its offset plus ``tail_s`` (responses lag the sound) are cut from the block's contiguous chunks, zero-padded to a
whole number of encoder windows, and a sample mask marks the sentence: a head pools only over the mask. A sentence
the shards do not hold in full (cut by a split guard gap, a dropped segment or the block end) is skipped and
counted.

Splits stay those of the pack (by block). With ``disjoint=True`` (default) a sentence text that occurs in the test
split is removed from train and validation, and one in validation from train, so that test sentences are never
seen in training: the simulator's narration, like an audiobook reread, repeats sentences across blocks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from ieegfm.data.tar import decode_sample, tar_samples
from ieegfm.errors import InputError
from ieegfm.io.manifest import SPLITS, Manifest
from ieegfm.text.embed import normalise_text

__all__ = ["SentenceItem", "SentenceSet", "load_sentences", "collate_sentences", "read_blocks"]

logger = logging.getLogger(__name__)


@dataclass
class SentenceItem:
    """One heard sentence.

    Attributes
    ----------
    key : str
        ``<block>/<event id>``, unique in the shards.
    block, split, subject_label, text : str
    subject : int
        Subject index (encoder's per-subject layer).
    onset, duration : float
        Event onset (s, iEEG clock of the block) and duration (s).
    windows : ndarray, shape (n_windows, n_chans, window_n), float16
        The span ``[onset, onset + duration + tail_s)`` from its first sample, zero-padded to whole windows.
    n_samples : int
        Samples of the span (the mask is the first ``n_samples`` of the concatenated windows).
    """

    key: str
    block: str
    split: str
    subject_label: str
    subject: int
    text: str
    onset: float
    duration: float
    windows: np.ndarray
    n_samples: int


@dataclass
class SentenceSet:
    """The sentence items of a shard folder, by split, and what was left out.

    Attributes
    ----------
    items : dict of str -> list of SentenceItem
    skipped_incomplete : int
        Sentences not held in full by the shards.
    removed_overlap : dict of str -> int
        Items removed from ``train``/``val`` because their text occurs in a later split (``disjoint``).
    """

    items: dict[str, list[SentenceItem]]
    skipped_incomplete: int = 0
    removed_overlap: dict[str, int] = field(default_factory=dict)

    def texts(self) -> list[str]:
        """Every distinct sentence text of the shards (all splits), sorted."""
        return sorted({it.text for sp in self.items.values() for it in sp})


def read_blocks(urls: list[str]) -> dict[str, list[dict]]:
    """Every decoded chunk of the shards ``urls``, grouped by recording block and sorted by ``tmin``."""
    chunks: dict[str, list[dict]] = defaultdict(list)
    for sample in tar_samples({"url": u} for u in urls):
        s = decode_sample(sample)
        chunks[s["meta"]["block"]].append(s)
    for block in chunks.values():
        block.sort(key=lambda c: c["meta"]["tmin"])
    return chunks


def _span(chunks: list[dict], t0: float, t1: float, sfreq: float) -> np.ndarray | None:
    """Samples ``[t0, t1)`` of contiguous chunks, or None when they do not hold all of them."""
    lo_all, hi_all = int(round(t0 * sfreq)), int(round(t1 * sfreq))
    parts, pos = [], lo_all
    for c in chunks:
        c_lo = int(round(c["meta"]["tmin"] * sfreq))
        c_hi = c_lo + c["brain"].shape[1]
        if c_hi <= pos or c_lo >= hi_all:
            continue
        if c_lo > pos:
            return None  # a gap
        take_hi = min(c_hi, hi_all)
        parts.append(c["brain"][:, pos - c_lo : take_hi - c_lo])
        pos = take_hi
        if pos >= hi_all:
            break
    if pos < hi_all:
        return None
    return np.concatenate(parts, axis=1) if len(parts) > 1 else np.asarray(parts[0])


def load_sentences(
    shards,
    manifest: Manifest,
    subjects: dict[str, int],
    n_chans: int,
    window_n: int,
    tail_s: float = 0.5,
    disjoint: bool = True,
    trial_type: str = "sentence",
) -> SentenceSet:
    """Read the sentence items of a task shard folder.

    Parameters
    ----------
    shards : str | Path
        Folder written by ``ieegfm pack`` from a recordings table with an ``events`` column.
    manifest : dict
        Its ``manifest.json``.
    subjects : dict
        Subject label -> encoder subject index.
    n_chans : int
        Channels of the encoder input (zero-padded).
    window_n : int
        Encoder window (samples at the shards' ``sfreq``).
    tail_s : float
        Seconds kept after each sentence's offset (response lag).
    disjoint : bool
        Remove texts of later splits from earlier ones (see the module docstring).
    trial_type : str
        Events used.

    Returns
    -------
    SentenceSet

    Raises
    ------
    InputError
        No events in the shards (names the folder and how to pack them), or a split without sentences.
    """
    from pathlib import Path

    sfreq = manifest.sfreq
    items: dict[str, list[SentenceItem]] = {sp: [] for sp in SPLITS}
    skipped, seen_events = 0, False
    for sp in SPLITS:
        urls = [str(Path(shards) / s.name) for s in manifest.entries(sp)]
        for block, chunks in read_blocks(urls).items():
            events: dict[int, dict] = {}
            for c in chunks:
                for e in c["meta"].get("events") or []:
                    seen_events = True
                    if e.get("trial_type") == trial_type and e.get("value"):
                        events[int(e["id"])] = e
            meta = chunks[0]["meta"]
            for eid, e in sorted(events.items()):
                span = _span(chunks, float(e["onset"]), float(e["onset"]) + float(e["duration"]) + tail_s, sfreq)
                if span is None or span.shape[1] == 0:
                    skipped += 1
                    continue
                n = span.shape[1]
                n_win = -(-n // window_n)
                padded = np.zeros((n_chans, n_win * window_n), np.float16)
                padded[: span.shape[0], :n] = span
                windows = padded.reshape(n_chans, n_win, window_n).transpose(1, 0, 2).copy()
                items[sp].append(
                    SentenceItem(
                        key=f"{block}/{eid}",
                        block=block,
                        split=sp,
                        subject_label=meta["subject"],
                        subject=subjects[meta["subject"]],
                        text=normalise_text(e["value"]),
                        onset=float(e["onset"]),
                        duration=float(e["duration"]),
                        windows=windows,
                        n_samples=n,
                    )
                )
    if not seen_events:
        raise InputError(
            f"shards={shards}: no events in the chunks; pack the task from a recordings table with an `events` "
            "column (BIDS events.tsv with trial_type=sentence, value=text)"
        )
    removed = {"train": 0, "val": 0}
    if disjoint:
        test_texts = {it.text for it in items["test"]}
        later = {"val": test_texts, "train": test_texts | {it.text for it in items["val"]}}
        for sp in ("val", "train"):
            keep = [it for it in items[sp] if it.text not in later[sp]]
            removed[sp] = len(items[sp]) - len(keep)
            items[sp] = keep
    empty = [sp for sp in SPLITS if not items[sp]]
    if empty:
        raise InputError(
            f"shards={shards}: no {trial_type} events in the {', '.join(empty)} split(s)"
            + (" after removing texts of later splits (disjoint=true)" if disjoint else "")
        )
    logger.info(
        "sentences: %s; %d not held in full, removed as seen in a later split: %s",
        ", ".join(f"{sp} {len(v)}" for sp, v in items.items()),
        skipped,
        removed,
    )
    return SentenceSet(items, skipped, removed)


def collate_sentences(items: list[SentenceItem], targets: dict[str, np.ndarray] | None = None) -> dict:
    """A batch of sentences, windows padded to the longest.

    Returns
    -------
    batch : dict
        ``windows`` (batch, max_windows, n_chans, window_n) float16, ``window_mask`` (batch, max_windows) bool,
        ``mask`` (batch, max_windows * window_n) bool (the sentence's samples), ``subject`` (batch,) long,
        ``target`` (batch, dim) float32 when ``targets`` (text -> embedding) is given, ``text`` and ``key`` lists.
    """
    n_win = max(it.windows.shape[0] for it in items)
    _, n_chans, window_n = items[0].windows.shape
    windows = np.zeros((len(items), n_win, n_chans, window_n), np.float16)
    window_mask = np.zeros((len(items), n_win), bool)
    mask = np.zeros((len(items), n_win * window_n), bool)
    for i, it in enumerate(items):
        k = it.windows.shape[0]
        windows[i, :k] = it.windows
        window_mask[i, :k] = True
        mask[i, : it.n_samples] = True
    batch = {
        "windows": torch.from_numpy(windows),
        "window_mask": torch.from_numpy(window_mask),
        "mask": torch.from_numpy(mask),
        "subject": torch.tensor([it.subject for it in items], dtype=torch.long),
        "text": [it.text for it in items],
        "key": [it.key for it in items],
    }
    if targets is not None:
        batch["target"] = torch.from_numpy(np.stack([targets[it.text] for it in items]).astype(np.float32))
    return batch
