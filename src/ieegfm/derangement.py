"""Derangements: random permutations that move every item, the pairing of the chance controls.

A control pairs each brain window (sentence, item) with another one's target; a derangement guarantees that no true
pair is kept. Used by the shuffled-pairs control of window retrieval
(:func:`ieegfm.evaluation.retrieval.retrieval_metrics`), the permuted controls of sentence retrieval
(:func:`ieegfm.evaluation.sentences.score_sentences`, the vec2text control) and the permuted-brain
control of the LLM-prefix head (:mod:`ieegfm.finetune.llm_run`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["derangement"]


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` that moves every item: a random cycle through all items.

    Draws one ``rng.permutation(n)`` (the order of the cycle) and nothing else, so successive calls on one
    generator give a reproducible sequence of derangements.

    Parameters
    ----------
    n : int
        Items (>= 2 for a permutation that moves every item; 0 or 1 give the identity).
    rng : numpy.random.Generator
        Source of the randomness.

    Returns
    -------
    perm : ndarray of int64, shape (n,)
        ``perm[i]`` is the item paired with item ``i``; ``perm[i] != i`` for every ``i`` when ``n >= 2``.

    Raises
    ------
    ValueError
        ``n`` negative.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm
