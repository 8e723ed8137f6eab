"""Balanced epochs across subjects (``data.subject_alpha``): who is seen how much in a training epoch.

A cohort pretrained on plain epochs sees each patient in proportion to their hours: a patient recorded for a week
outweighs one recorded for a day seven times over. With temperature sampling over subjects (the multilingual
recipe, Conneau & Lample 2019, XLM; Arivazhagan et al. 2019), subject ``s`` gets a share ``p_s ∝ N_s ** alpha`` of
the epoch (``N_s``: its windows this epoch; 1 = proportional, today's epoch; 0 = uniform). Each subject's windows
are still seen **at most once** per epoch: the epoch holds ``M = min_s N_s / p_s`` windows, ``m_s = floor(p_s M)``
of subject ``s`` (all the windows of the subject that binds, a random subset of each other's, drawn anew each
epoch), so a small subject is not repeated and a large one is subsampled.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import numpy as np

from ieegfm.data.tar import tar_members
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.manifest import Manifest, ShardEntry

logger = logging.getLogger(__name__)


def check_alpha(alpha: float) -> float:
    """``data.subject_alpha`` as a float.

    Raises
    ------
    ConfigError
        Not a finite number >= 0.
    """
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"data.subject_alpha={alpha!r}: expected a number >= 0 (1 proportional, 0 uniform)") from None
    if not np.isfinite(a) or a < 0:
        raise ConfigError(f"data.subject_alpha={alpha!r}: expected a number >= 0 (1 proportional, 0 uniform)")
    return a


def subject_quotas(windows: dict[str, int], alpha: float) -> dict[str, int]:
    """Windows of each subject in a balanced epoch.

    Parameters
    ----------
    windows : dict
        Subject -> its windows available this epoch (``N_s``).
    alpha : float
        Exponent of the shares, ``p_s ∝ N_s ** alpha``.

    Returns
    -------
    quotas : dict
        Subject -> ``m_s <= N_s`` (see the module docstring); ``m_s = N_s`` for every subject when ``alpha == 1``.
    """
    present = {s: int(n) for s, n in windows.items() if n > 0}
    if alpha == 1.0 or len(present) < 2:
        return {s: int(n) for s, n in windows.items()}
    n = np.array(list(present.values()), float)
    p = n**alpha / np.sum(n**alpha)
    total = float(np.min(n / p))
    m = np.minimum(np.floor(p * total + 1e-9), n).astype(int)
    quotas = {s: 0 for s in windows}
    quotas.update({s: max(int(k), 1) for s, k in zip(present, m)})
    return quotas


def balance_counts(
    counts: list[np.ndarray], subjects: list[Sequence[str]], alpha: float, rng: np.random.Generator
) -> tuple[list[np.ndarray], dict]:
    """Cut each chunk's window count so that each subject contributes its :func:`subject_quotas` share.

    Parameters
    ----------
    counts : list of ndarray
        Per shard, the windows of each chunk this epoch.
    subjects : list of sequence of str
        Per shard, the subject of each chunk.
    alpha : float
    rng : numpy.random.Generator
        The epoch's generator: which chunks a subsampled subject keeps (a random order of its chunks, whole
        chunks first, the last one cut).

    Returns
    -------
    counts : list of ndarray
        The balanced counts (a copy).
    per_subject : dict
        Subject -> ``{"windows": N_s, "per_epoch": m_s}``.
    """
    windows: dict[str, int] = {}
    where: dict[str, list[tuple[int, int]]] = {}
    for i, (c, subs) in enumerate(zip(counts, subjects, strict=True)):
        for k, s in enumerate(subs):
            windows[s] = windows.get(s, 0) + int(c[k])
            where.setdefault(s, []).append((i, k))
    quotas = subject_quotas(windows, alpha)
    out = [np.array(c, copy=True) for c in counts]
    for s, chunks in where.items():
        if quotas[s] >= windows[s]:
            continue
        left = quotas[s]
        for j in rng.permutation(len(chunks)):
            i, k = chunks[j]
            take = min(int(out[i][k]), left)
            out[i][k], left = take, left - take
    return out, {s: {"windows": windows[s], "per_epoch": quotas[s]} for s in windows}


def chunk_subjects(manifest: Manifest, root, entries: list[ShardEntry]) -> list[list[str]]:
    """The subject of every chunk of ``entries`` (training shards of ``manifest`` under ``root``).

    Read from the manifest where it tells: one subject, or a cohort of packs of one subject each; otherwise from the
    shards' JSON members (the arrays are skipped by seeks).
    """
    if len(manifest.subjects) == 1:
        only = next(iter(manifest.subjects))
        return [[only] * len(e.chunk_lengths or ()) for e in entries]
    packs = {
        p["path"]: p["subjects"][0]
        for p in (manifest.raw.get("cohort") or {}).get("packs", [])
        if len(p.get("subjects", ())) == 1
    }
    out = []
    for e in entries:
        pack = next((s for path, s in packs.items() if e.name.startswith(path + os.sep)), None)
        if pack is not None:
            out.append([pack] * len(e.chunk_lengths or ()))
            continue
        metas = [
            json.loads(bytes(data))
            for _, data in tar_members(str(root / e.name), want=lambda n: n.endswith(".json"))
            if data is not None
        ]
        if len(metas) != len(e.chunk_lengths or ()):
            raise InputError(
                f"{root / e.name}: {len(metas)} chunks, its manifest entry lists {len(e.chunk_lengths or ())}"
            )
        out.append([m["subject"] for m in metas])
    return out
