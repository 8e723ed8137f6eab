"""Inversion by retrieval: a candidate sentence bank, ranked by cosine to a predicted embedding; the top sentence is
the decoded text. Works offline with any sentence-embedding model.

The bank holds every distinct sentence of the task's transcripts (all splits) plus distractors never heard
(``distractors.txt``, shipped, or a file of one sentence per line); its size is ``n_candidates`` in every result.
Scoring against the bank, with its controls, is :func:`ieegfm.evaluation.sentences.score_sentences`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ieegfm.errors import InputError
from ieegfm.text.embed import normalise_text

__all__ = ["CandidateBank", "build_bank", "load_distractors", "bank_ranks"]


def load_distractors(path: str | Path | None = None) -> list[str]:
    """Distractor sentences: ``path`` (one per line, ``#`` comments) or the shipped ``distractors.txt``.

    Raises
    ------
    InputError
        The file cannot be read.
    """
    p = Path(__file__).with_name("distractors.txt") if path is None else Path(str(path))
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"text.distractors={p}: cannot be read as UTF-8 text ({err})") from None
    return [normalise_text(s) for s in lines if s.strip() and not s.lstrip().startswith("#")]


@dataclass
class CandidateBank:
    """Candidate sentences and their embeddings.

    Attributes
    ----------
    texts : list of str
        Task sentences first (sorted), then distractors not among them.
    embeddings : ndarray, shape (n_candidates, dim), float32
    n_task : int
        Task sentences (the first ``n_task`` texts).
    """

    texts: list[str]
    embeddings: np.ndarray
    n_task: int

    @property
    def n_candidates(self) -> int:
        return len(self.texts)

    def index(self, texts: list[str]) -> np.ndarray:
        """Bank index of each text (which must be in the bank)."""
        where = {t: i for i, t in enumerate(self.texts)}
        return np.array([where[normalise_text(t)] for t in texts], dtype=np.int64)

    def lookup(self) -> dict[str, np.ndarray]:
        """text -> embedding."""
        return dict(zip(self.texts, self.embeddings))


def build_bank(task_texts: list[str], distractors: list[str], embed) -> CandidateBank:
    """The bank of ``task_texts`` plus ``distractors`` (duplicates dropped), embedded once with ``embed(texts)``."""
    task = sorted({normalise_text(t) for t in task_texts})
    extra = [d for d in dict.fromkeys(normalise_text(d) for d in distractors) if d not in set(task)]
    texts = task + extra
    return CandidateBank(texts, np.asarray(embed(texts), np.float32), len(task))


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit L2 norm along its last axis (zero rows stay zero), same shape."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def bank_ranks(pred: np.ndarray, true_index: np.ndarray, bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of the true sentence among the bank, by cosine to each prediction.

    Parameters
    ----------
    pred : ndarray, shape (n, dim)
    true_index : ndarray of int, shape (n,)
    bank : ndarray, shape (n_candidates, dim)

    Returns
    -------
    ranks : ndarray of int, shape (n,)
        Candidates scored strictly higher than the true one (0 = retrieved first).
    top : ndarray of int, shape (n, min(5, n_candidates))
        Bank indices of the best candidates, best first.
    """
    sim = unit(np.asarray(pred, np.float64)) @ unit(np.asarray(bank, np.float64)).T
    true = sim[np.arange(len(sim)), true_index]
    ranks = (sim > true[:, None]).sum(1)
    k = min(5, sim.shape[1])
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return ranks, top
