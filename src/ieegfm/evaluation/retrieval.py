"""Retrieval metrics: mean relative rank, top-k accuracy, and the shuffled-pairs control."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ieegfm.derangement import derangement

#: The headline metrics of :func:`retrieval_metrics`, in the order they are reported (CLI, validation logs).
SUMMARY_KEYS = (
    "mean_relative_rank",
    "top1_accuracy",
    "top10_accuracy",
    "n_candidates",
    "shuffled_mean_relative_rank",
    "within_block_mean_relative_rank",
)


#: The shuffled-pairs control averages over this many random derangements at most (fewer for large splits:
#: about CONTROL_BUDGET similarities in all), so that it sits at 0.5 within a few thousandths, not within the noise
#: of one derangement of correlated windows.
MAX_CONTROL_PERMUTATIONS = 20
CONTROL_BUDGET = 2e7


def _flat_normalised(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(len(x), -1).float()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def retrieval_ranks(brain: torch.Tensor, audio: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """Rank of each true audio window among all candidates, by cosine similarity to its brain embedding.

    Parameters
    ----------
    brain : Tensor, shape (n_windows, n_features) or (n_windows, n_features, n_times)
        Brain embeddings (time-resolved ones are flattened, as the CLIP loss scores them).
    audio : Tensor, same shape
        Audio targets of the same windows, in the same order (row ``i`` is the true pair of brain row ``i``).
    block : int
        Rows scored at a time (bounds memory to ``block * n_windows`` similarities).

    Returns
    -------
    ranks : Tensor, shape (n_windows,)
        0 = the true window scores highest. Ties count half (so constant embeddings give chance, not 0).

    Raises
    ------
    ValueError
        Shapes differ or fewer than 2 windows.
    """
    if brain.shape != audio.shape:
        raise ValueError(f"brain {tuple(brain.shape)} and audio {tuple(audio.shape)} must have the same shape")
    if len(brain) < 2:
        raise ValueError(f"retrieval needs at least 2 windows, got {len(brain)}")
    b, a = _flat_normalised(brain), _flat_normalised(audio)
    ranks = torch.empty(len(b), dtype=torch.float64)
    for i in range(0, len(b), block):
        sim = b[i : i + block] @ a.T
        true = sim[torch.arange(len(sim)), torch.arange(i, i + len(sim))].unsqueeze(1)
        greater = (sim > true).sum(1).double()
        ties = (sim == true).sum(1).double() - 1
        ranks[i : i + block] = greater + 0.5 * ties
    return ranks


def within_block_relative_ranks(brain: torch.Tensor, audio: torch.Tensor, blocks) -> np.ndarray:
    """Relative rank of each true window among the windows of its own recording block only.

    Retrieval among the windows of several blocks can be won by telling blocks apart (slow drifts, gains) rather
    than by decoding the sound; within a block that shortcut is gone, so this rank sits at chance (0.5) unless
    the brain embedding follows the audio.

    Parameters
    ----------
    brain, audio : Tensor
        See :func:`retrieval_ranks`.
    blocks : sequence of str, length n_windows
        Recording block of each window.

    Returns
    -------
    relative_ranks : ndarray, shape (n_windows,)
        Rank / (windows in the block - 1); NaN for a window alone in its block.
    """
    blocks = np.asarray(blocks)
    if len(blocks) != len(brain):
        raise ValueError(f"blocks has {len(blocks)} entries for {len(brain)} windows")
    out = np.full(len(brain), np.nan)
    for b in np.unique(blocks):
        idx = np.flatnonzero(blocks == b)
        if len(idx) >= 2:
            t = torch.from_numpy(idx)
            out[idx] = (retrieval_ranks(brain[t], audio[t]) / (len(idx) - 1)).numpy()
    return out


def candidate_set_metrics(brain: torch.Tensor, audio: torch.Tensor, seed: int = 0, blocks=None) -> dict:
    """Retrieval metrics with a shuffled-pairs control, every window a candidate for every other.

    :func:`retrieval_metrics` calls it once per subject.

    Parameters
    ----------
    brain, audio : Tensor
        See :func:`retrieval_ranks`.
    seed : int
        Seed of the permutation used by the control.
    blocks : sequence of str, optional
        Recording block of each window: adds ``within_block_mean_relative_rank`` (candidates from the true
        window's block only, see :func:`within_block_relative_ranks`), ``within_block_n_candidates`` (mean
        candidates per window) and per-window ``within_block_relative_ranks``.

    Returns
    -------
    metrics : dict
        ``mean_relative_rank`` (rank / (n_candidates - 1) averaged; 0 perfect, 0.5 chance),
        ``median_relative_rank``, ``top1_accuracy``, ``top10_accuracy``, ``n_candidates``, and
        ``shuffled_mean_relative_rank``: the same metric after pairing each brain window with a random other
        audio window (a derangement; averaged over up to ``MAX_CONTROL_PERMUTATIONS`` derangements,
        ``n_control_permutations``), which must sit at 0.5. ``relative_ranks`` holds the per-window values.
        Without ``blocks``, ``within_block_mean_relative_rank`` is None.

    References
    ----------
    arXiv 2512.15830 (mean relative retrieval rank); Défossez et al. 2023, Nature Machine Intelligence (top-10).
    """
    n = len(brain)
    ranks = retrieval_ranks(brain, audio)
    rel = ranks / (n - 1)
    rng = np.random.default_rng(seed)
    n_perm = max(1, min(MAX_CONTROL_PERMUTATIONS, int(CONTROL_BUDGET // n**2)))
    shuffled = torch.zeros(n, dtype=torch.float64)
    for _ in range(n_perm):
        perm = derangement(n, rng)  # no true pair kept
        shuffled += retrieval_ranks(brain, audio[torch.from_numpy(perm)]) / (n - 1) / n_perm
    within: dict = {"within_block_mean_relative_rank": None}
    if blocks is not None:
        wb = within_block_relative_ranks(brain, audio, blocks)
        ok = ~np.isnan(wb)
        _, counts = np.unique(np.asarray(blocks), return_counts=True)
        within = {
            "within_block_mean_relative_rank": float(np.mean(wb[ok])) if ok.any() else None,
            "within_block_n_candidates": float(np.sum(counts[counts >= 2] ** 2) / max(np.sum(counts[counts >= 2]), 1)),
            "n_blocks": len(counts),
            "within_block_relative_ranks": [None if np.isnan(v) else float(v) for v in wb],
        }
    return {
        "mean_relative_rank": float(rel.mean()),
        "median_relative_rank": float(rel.median()),
        "top1_accuracy": float((ranks < 1).double().mean()),
        "top10_accuracy": float((ranks < 10).double().mean()),
        "n_candidates": int(n),
        "shuffled_mean_relative_rank": float(shuffled.mean()),
        "n_control_permutations": n_perm,
        "chance_top1_accuracy": 1.0 / n,
        "chance_top10_accuracy": min(10, n) / n,
        "relative_ranks": rel.tolist(),
        **within,
    }


#: Per-subject keys of ``retrieval_metrics(...)["subjects"]`` (each subject's windows the only candidates).
SUBJECT_KEYS = (
    "mean_relative_rank",
    "within_block_mean_relative_rank",
    "top1_accuracy",
    "top10_accuracy",
    "n_candidates",
    "shuffled_mean_relative_rank",
)
#: Summary keys averaged over subjects when there are several.
_MEAN_KEYS = (
    "mean_relative_rank",
    "median_relative_rank",
    "top1_accuracy",
    "top10_accuracy",
    "shuffled_mean_relative_rank",
    "chance_top1_accuracy",
    "chance_top10_accuracy",
    "within_block_mean_relative_rank",
    "within_block_n_candidates",
)


def retrieval_metrics(
    brain: torch.Tensor,
    audio: torch.Tensor,
    seed: int = 0,
    blocks=None,
    subjects=None,
    pool_subjects: bool = False,
) -> dict:
    """Test-split retrieval metrics with a shuffled-pairs control, candidates from the true window's subject.

    Pooling several patients' windows as candidates lets a model win retrieval by telling the patients apart (a
    different implant, gain or noise is enough); so each subject is scored among its own windows only, and the
    summary is the mean over subjects with a 95 % confidence interval over them. One subject (or ``subjects``
    not given) is scored exactly as :func:`candidate_set_metrics`.

    Parameters
    ----------
    brain, audio : Tensor
        See :func:`retrieval_ranks`.
    seed : int
        Seed of the derangements of the control.
    blocks : sequence of str, optional
        Recording block of each window (adds the within-block rank, candidates from the same subject and block).
    subjects : sequence, optional, length n_windows
        Subject label (or index) of each window.
    pool_subjects : bool
        Score every window among all subjects' windows (the shortcut above stays open): the summary is then that
        of :func:`candidate_set_metrics` on all windows, labelled ``candidates='pooled across subjects'``; the
        per-subject entries are still scored within subject.

    Returns
    -------
    metrics : dict
        The keys of :func:`candidate_set_metrics` (with several subjects: each the unweighted mean over
        subjects, ``n_candidates`` the mean candidates per subject rounded, ``relative_ranks`` and
        ``within_block_relative_ranks`` each window's rank within its subject, in the input order), and with
        ``subjects`` given: ``candidates`` (``'within subject'`` or ``'pooled across subjects'``), ``n_subjects``,
        ``n_windows``, ``mean_relative_rank_ci`` (95 % t interval over subjects; None for one subject) and
        ``subjects``: ``{label: {key: value for key in SUBJECT_KEYS}}``. A subject with a single window has no
        rank (None in its entry and per window) and is left out of the mean.

    Raises
    ------
    ValueError
        Shapes differ, ``subjects`` or ``blocks`` of another length, or no subject with two windows.

    References
    ----------
    arXiv 2512.15830 (mean relative retrieval rank); candidates within subject as in Défossez et al. 2023, Nature
    Machine Intelligence (each subject decoded among its own segments).
    """
    if subjects is None:
        return candidate_set_metrics(brain, audio, seed=seed, blocks=blocks)
    subjects = np.asarray(subjects)
    if len(subjects) != len(brain):
        raise ValueError(f"subjects has {len(subjects)} entries for {len(brain)} windows")
    if blocks is not None and len(blocks) != len(brain):
        raise ValueError(f"blocks has {len(blocks)} entries for {len(brain)} windows")
    labels = list(dict.fromkeys(subjects.tolist()))  # in order of appearance
    if len(labels) == 1:
        m = candidate_set_metrics(brain, audio, seed=seed, blocks=blocks)
        return _with_subjects(m, {labels[0]: m}, "within subject", len(brain))
    per: dict = {}
    rel = np.full(len(brain), np.nan)
    within = np.full(len(brain), np.nan)
    for label in labels:
        idx = np.flatnonzero(subjects == label)
        if len(idx) < 2:
            per[label] = {"n_candidates": int(len(idx))}
            continue
        t = torch.from_numpy(idx)
        m = candidate_set_metrics(
            brain[t], audio[t], seed=seed, blocks=None if blocks is None else np.asarray(blocks)[idx]
        )
        per[label] = m
        rel[idx] = m["relative_ranks"]
        if blocks is not None:
            within[idx] = [np.nan if v is None else v for v in m["within_block_relative_ranks"]]
    scored = [m for m in per.values() if "relative_ranks" in m]
    if not scored:
        raise ValueError(f"retrieval needs a subject with at least 2 windows; got {len(labels)} subjects of 1")
    if pool_subjects:
        summary = candidate_set_metrics(brain, audio, seed=seed, blocks=blocks)
        return _with_subjects(summary, per, "pooled across subjects", len(brain))
    summary = {k: _mean([m.get(k) for m in scored]) for k in _MEAN_KEYS}
    summary.update(
        n_candidates=int(round(np.mean([m["n_candidates"] for m in scored]))),
        n_control_permutations=min(m["n_control_permutations"] for m in scored),
        relative_ranks=[None if np.isnan(v) else float(v) for v in rel],
    )
    if blocks is not None:
        summary["n_blocks"] = sum(m["n_blocks"] for m in scored)
        summary["within_block_relative_ranks"] = [None if np.isnan(v) else float(v) for v in within]
    return _with_subjects(summary, per, "within subject", len(brain))


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _with_subjects(summary: dict, per: dict, candidates: str, n_windows: int) -> dict:
    ranks = [m["mean_relative_rank"] for m in per.values() if "mean_relative_rank" in m]
    ci = None
    if len(ranks) >= 2:
        half = stats.t.ppf(0.975, len(ranks) - 1) * np.std(ranks, ddof=1) / np.sqrt(len(ranks))
        ci = [float(np.mean(ranks) - half), float(np.mean(ranks) + half)]
    return {
        **summary,
        "candidates": candidates,
        "n_subjects": len(per),
        "n_windows": int(n_windows),
        "mean_relative_rank_ci": ci,
        "subjects": {str(label): {k: m.get(k) for k in SUBJECT_KEYS} for label, m in per.items()},
    }
