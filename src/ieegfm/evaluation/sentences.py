"""Sentence retrieval scored against a candidate bank (:mod:`ieegfm.text.bank`): the top sentence is the decoded
text.

The bank holds every distinct sentence of the task's transcripts (all splits) plus distractors never heard
(``distractors.txt``, shipped, or a file of one sentence per line); its size is ``n_candidates`` in every result.
:func:`score_sentences` reports retrieval and decoded-text metrics with their controls:

- ``permuted_*``: each prediction scored against another sentence of the split (the brain of another sentence;
  ranks averaged over up to 20 derangements, text metrics of the first), must sit at chance;
- ``random_*``: a random bank sentence as the decoded text (the random-sentence baseline of decoded-text metrics);
- ``p_value``: one-sided Wilcoxon signed-rank test, per sentence, true-pair rank below the permuted rank.
"""

from __future__ import annotations

import numpy as np

from ieegfm.derangement import derangement
from ieegfm.evaluation.stats import paired_wilcoxon
from ieegfm.evaluation.text import sentence_scores, text_metrics
from ieegfm.text.bank import CandidateBank, bank_ranks, unit

__all__ = ["score_sentences", "MAX_PERMUTATIONS", "TEXT_KEYS"]

MAX_PERMUTATIONS = 20
TEXT_KEYS = ("bleu", "bleu_nltk", "rouge1", "rougeL", "wer")


def score_sentences(
    pred: np.ndarray, targets: np.ndarray, texts: list[str], bank: CandidateBank, seed: int = 0, keys=None
) -> dict:
    """Retrieval and decoded-text metrics of predicted sentence embeddings, with controls.

    Parameters
    ----------
    pred : ndarray, shape (n, dim)
        Predicted embeddings, one per heard sentence.
    targets : ndarray, shape (n, dim)
        The true sentences' embeddings (for ``cosine``).
    texts : list of str
        The sentences heard (each in the bank).
    bank : CandidateBank
    seed : int
        Seed of the derangements and of the random-sentence baseline.
    keys : list of str, optional
        Item keys for ``per_sentence``.

    Returns
    -------
    dict
        ``mean_relative_rank`` (rank / (n_candidates - 1); 0 perfect, 0.5 chance), ``median_relative_rank``,
        ``top1_acc``, ``top5_acc``, ``n_candidates``, ``n_sentences``, ``permuted_mean_relative_rank``,
        ``permuted_top1_acc``, ``p_value`` (true vs permuted, Wilcoxon), ``cosine`` and ``permuted_cosine``
        (cosine of the prediction to the true / another sentence's embedding); decoded-text metrics ``bleu``,
        ``bleu_nltk``, ``rouge1``, ``rougeL``, ``wer`` with ``permuted_*`` and ``random_*``; ``per_sentence``.

    Raises
    ------
    ValueError
        Fewer than 2 sentences.
    """
    n = len(texts)
    if n < 2:
        raise ValueError(f"scoring needs at least 2 sentences, got {n}")
    rng = np.random.default_rng(seed)
    true_idx = bank.index(texts)
    denom = max(bank.n_candidates - 1, 1)
    ranks, top = bank_ranks(pred, true_idx, bank.embeddings)
    perms = [derangement(n, rng) for _ in range(MAX_PERMUTATIONS)]
    perm_ranks = np.mean([bank_ranks(pred[p], true_idx, bank.embeddings)[0] for p in perms], axis=0)
    perm_top1 = np.mean([bank_ranks(pred[p], true_idx, bank.embeddings)[0] == 0 for p in perms])
    rel, perm_rel = ranks / denom, perm_ranks / denom
    decoded = [bank.texts[i] for i in top[:, 0]]
    decoded_perm = [decoded[j] for j in perms[0]]
    decoded_random = [bank.texts[i] for i in rng.integers(0, bank.n_candidates, n)]
    cos = np.sum(unit(pred) * unit(targets), axis=1)
    cos_perm = np.sum(unit(pred[perms[0]]) * unit(targets), axis=1)
    out = {
        "mean_relative_rank": float(rel.mean()),
        "median_relative_rank": float(np.median(rel)),
        "top1_acc": float(np.mean(ranks == 0)),
        "top5_acc": float(np.mean(ranks < 5)),
        "n_candidates": bank.n_candidates,
        "n_task_sentences_in_bank": bank.n_task,
        "n_sentences": n,
        "permuted_mean_relative_rank": float(perm_rel.mean()),
        "permuted_top1_acc": float(perm_top1),
        "n_permutations": len(perms),
        "p_value": paired_wilcoxon(rel, perm_rel, alternative="less")["p_value"],
        "chance_mean_relative_rank": 0.5,
        "cosine": float(cos.mean()),
        "permuted_cosine": float(cos_perm.mean()),
    }
    for prefix, hyp in (("", decoded), ("permuted_", decoded_perm), ("random_", decoded_random)):
        m = text_metrics(hyp, texts)
        out.update({f"{prefix}{k}": m[k] for k in TEXT_KEYS})
    per = sentence_scores(decoded, texts)
    out["per_sentence"] = [
        {
            "key": None if keys is None else keys[i],
            "text": texts[i],
            "decoded": decoded[i],
            "relative_rank": float(rel[i]),
            "permuted_relative_rank": float(perm_rel[i]),
            "top5": [bank.texts[j] for j in top[i]],
            "bleu_nltk": float(per["bleu_nltk"][i]),
            "wer": float(per["wer"][i]),
        }
        for i in range(n)
    ]
    return out
