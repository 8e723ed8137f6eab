"""``ieegfm drift``: how much the recording day is written in the embeddings, and retrieval per day and hour.

The seed paper (arXiv 2512.15830) finds that its embeddings drift across days: the day of a window is decodable
from its embedding (r ~ 0.95). Here the day index is decoded with ridge regression, cross-validated by block (a
block, tens of minutes of one day, is never split between training and test folds: windows of one block share
everything slow, and a split by window would decode the block rather than the day), per subject. The null keeps
the block structure: the day labels are permuted among blocks (within subject) and the whole cross-validation is
rerun. Retrieval ranks (candidates: the windows of the same split) are reported per day and per local hour, so a
decoder that works by day or by night only shows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import torch

from ieegfm.analysis.embeddings import read_embeddings, window_datetimes
from ieegfm.analysis.ridge import FoldedRidge
from ieegfm.checkpoint import model_for_shards
from ieegfm.data import ShardDataModule
from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.evaluate import embed_split
from ieegfm.evaluation.retrieval import retrieval_metrics
from ieegfm.io.manifest import Manifest, read_manifest

logger = logging.getLogger(__name__)


DAY_ALPHAS = np.logspace(-2, 5, 15)


def day_decoding(
    x: np.ndarray,
    day: np.ndarray,
    block: np.ndarray,
    subject: np.ndarray | None = None,
    n_perm: int = 200,
    seed: int = 0,
    max_folds: int = 50,
) -> dict:
    """Decode the day index from embeddings: ridge, cross-validated by block, Pearson r, block-permutation p.

    Parameters
    ----------
    x : ndarray, shape (n_windows, n_features)
        Embeddings (time-resolved ones averaged over time first).
    day : ndarray, shape (n_windows,)
        Day index of each window (constant within a block).
    block : ndarray, shape (n_windows,)
        Recording block of each window: the cross-validation groups and the unit the null permutes.
    subject : ndarray, shape (n_windows,), optional
        Subject of each window: one decoder per subject (embedding spaces differ between subjects).
    n_perm : int
        Permutations of the day labels among each subject's blocks.
    seed : int
    max_folds : int
        Folds at most: leave-one-block-out up to this many blocks (a held-out block is then predicted from all the
        others, so the pull of the training mean away from its label is the same for every permutation of the
        labels and the null stays calibrated; with a few arbitrary folds it is not), else ``GroupKFold``.

    Returns
    -------
    dict
        ``r`` (Pearson r of predicted vs true day over all windows), ``p_value`` ((1 + #null r >= r) / (1 +
        n_perm)), ``null_r_mean``, ``null_r_95``, ``n_perm``, ``n_windows``, ``n_blocks``, ``n_days``,
        ``per_subject`` (``r``, ``n_blocks``, ``n_days``), ``prediction`` (per-window predicted day).

    Raises
    ------
    InputError
        No subject with at least two days and three blocks (nothing to decode).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    day, block = np.asarray(day), np.asarray(block).astype(str)
    subject = np.zeros(len(x), dtype=int) if subject is None else np.asarray(subject)
    usable = []
    for s in np.unique(subject):
        own = subject == s
        if len(np.unique(day[own])) >= 2 and len(np.unique(block[own])) >= 3:
            usable.append(s)
    if not usable:
        raise InputError(
            f"day decoding: {len(np.unique(day))} day(s) in {len(np.unique(block))} block(s); expected a subject "
            "with windows of at least 2 days and 3 blocks"
        )
    keep = np.isin(subject, usable)
    x, day, block, subject = x[keep], day[keep], block[keep], subject[keep]
    idx = {s: np.flatnonzero(subject == s) for s in usable}
    folds = {s: min(max_folds, len(np.unique(block[i]))) for s, i in idx.items()}

    ridges = {s: FoldedRidge(x[i], block[i], folds[s], DAY_ALPHAS) for s, i in idx.items()}  # once per subject

    def run(labels: np.ndarray) -> np.ndarray:
        pred = np.empty(len(labels))
        for s, i in idx.items():
            pred[i] = ridges[s].predict(labels[i].astype(float)[:, None])[:, 0]
        return pred

    def r_of(pred: np.ndarray, labels: np.ndarray) -> float:
        return float(np.corrcoef(pred, labels)[0, 1]) if np.std(pred) > 0 else 0.0

    pred = run(day)
    r = r_of(pred, day)
    rng = np.random.default_rng([seed, 524287])
    null = np.empty(n_perm)
    for k in range(n_perm):
        labels = day.copy()
        for i in idx.values():  # permute the day labels among the subject's blocks
            names, first = np.unique(block[i], return_index=True)
            shuffled = dict(zip(names, rng.permutation(day[i][first])))
            labels[i] = [shuffled[b] for b in block[i]]
        null[k] = r_of(run(labels), labels)
    return {
        "r": r,
        "p_value": float((1 + np.sum(null >= r)) / (1 + n_perm)),
        "null_r_mean": float(null.mean()) if n_perm else None,
        "null_r_95": float(np.percentile(null, 95)) if n_perm else None,
        "n_perm": int(n_perm),
        "n_windows": int(len(day)),
        "n_blocks": int(len(np.unique(block))),
        "n_days": int(len(np.unique(day))),
        "per_subject": {
            str(s): {
                "r": r_of(pred[i], day[i]),
                "n_blocks": int(len(np.unique(block[i]))),
                "n_days": int(len(np.unique(day[i]))),
            }
            for s, i in idx.items()
        },
        "cv": "ridge (penalty by GCV over 1e-2..1e5, standardised features) per subject, leave-one-block-out "
        f"(GroupKFold when a subject has more than {max_folds} blocks)",
        "prediction": pred.tolist(),
    }


def local_hours(manifest: Manifest, block: np.ndarray, tmin: np.ndarray) -> np.ndarray:
    """Local clock hour (0-23, the pack's ``timezone``) at the start of each window.

    Parameters
    ----------
    manifest : dict
        The shards' manifest (``blocks.<id>.start_time``, ``timezone``).
    block : ndarray of str, shape (n_windows,)
    tmin : ndarray, shape (n_windows,)
        Window start in its block (s).

    Returns
    -------
    ndarray of int, shape (n_windows,)
    """
    tz = ZoneInfo(manifest.timezone or "UTC")
    return np.array([t.astimezone(tz).hour for t in window_datetimes(manifest, block, tmin)], dtype=int)


def _embedded(cfg) -> tuple[Manifest, list[tuple[str, dict]]]:
    """The manifest and ``(split, embed_split output)`` of each of ``cfg.splits`` that has windows: embedded with
    ``cfg.ckpt`` on ``cfg.shards``, or read from an ``ieegfm embed`` folder (``cfg.embeddings``).

    Raises
    ------
    ConfigError
        Neither ``ckpt=`` and ``shards=`` nor ``embeddings=``.
    """
    if cfg.get("embeddings"):
        folder = Path(cfg.embeddings)
        x, rows = read_embeddings(folder)
        info = json.loads((folder / "embed.json").read_text())
        shards = cfg.get("shards") or info["shards"]
        manifest = read_manifest(shards)
        index = manifest.subject_index()
        y = np.load(folder / "targets.npy", mmap_mode="r", allow_pickle=False)
        split_of = np.array([r["split"] for r in rows])
        out = []
        for split in cfg.splits:
            sel = np.flatnonzero(split_of == split)
            if not len(sel):
                continue
            pick = [rows[i] for i in sel]
            out.append((split, {
                "brain": torch.from_numpy(np.asarray(x[sel])), "audio": torch.from_numpy(np.asarray(y[sel])),
                "key": np.array([r["key"] for r in pick]), "block": np.array([r["block"] for r in pick]),
                "tmin": np.array([float(r["tmin"]) for r in pick]), "day": np.array([int(r["day"]) for r in pick]),
                "subject": np.array([index[r["subject"]] for r in pick]),
            }))  # fmt: skip
        return manifest, out
    if not (cfg.get("ckpt") and cfg.get("shards")):
        raise ConfigError("ieegfm drift needs ckpt= and shards=, or embeddings=DIR (a folder of `ieegfm embed`)")
    manifest = read_manifest(cfg.shards)
    model, contract = model_for_shards(cfg.ckpt, manifest, cfg.shards, cfg.channels)
    enc = contract.encoder
    dm = ShardDataModule(cfg.shards, batch_size=cfg.batch_size, window_s=enc["n_times"] / enc["sfreq"])
    return manifest, [(split, embed_split(model, dm, split)) for split in cfg.splits if dm.urls(split)]


def drift(cfg) -> dict:
    """Embed every window of ``cfg.splits``, decode the day, rank per day and hour; write ``drift.json`` and
    ``drift.png`` under ``cfg.out``.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.DriftConfig`.

    Returns
    -------
    dict
        ``day_r``, ``day_p_value`` (see :func:`day_decoding`), ``day_decoding`` (the rest of it),
        ``retrieval`` (per split: ``n_candidates``, ``mean_relative_rank``, ``shuffled_mean_relative_rank``,
        ``by_day`` and ``by_hour``: mean relative rank and windows), ``pca`` (explained variance ratio).

    Raises
    ------
    InputError
        As :func:`ieegfm.evaluation.evaluate.score_split`; fewer than 2 days or 3 blocks.
    """

    manifest, embedded = _embedded(cfg)
    parts, retrieval = [], {}
    for split, emb in embedded:
        m = retrieval_metrics(emb["brain"], emb["audio"], seed=cfg.seed, subjects=emb["subject"])
        ranks = np.asarray(m["relative_ranks"])
        hours = local_hours(manifest, emb["block"], emb["tmin"])
        retrieval[split] = {
            "n_candidates": m["n_candidates"],
            "mean_relative_rank": m["mean_relative_rank"],
            "shuffled_mean_relative_rank": m["shuffled_mean_relative_rank"],
            "by_day": {int(d): _group(ranks, emb["day"] == d) for d in np.unique(emb["day"])},
            "by_hour": {int(h): _group(ranks, hours == h) for h in np.unique(hours)},
        }
        x = emb["brain"].numpy()
        parts.append({"x": x.reshape(len(x), -1) if x.ndim == 2 else x.mean(axis=-1), "split": split, **emb})
    if not parts:
        raise InputError(f"shards={cfg.shards or cfg.embeddings}: none of splits={list(cfg.splits)} has windows")
    x = np.concatenate([p["x"] for p in parts])
    day = np.concatenate([p["day"] for p in parts])
    block = np.concatenate([p["block"] for p in parts])
    subject = np.concatenate([p["subject"] for p in parts])
    dec = day_decoding(x, day, block, subject, n_perm=cfg.n_perm, seed=cfg.seed)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(x)
    xy = pca.transform(x)
    result = {
        "ckpt": str(cfg.ckpt),
        "shards": str(cfg.shards),
        "embeddings": cfg.get("embeddings"),
        "splits": [p["split"] for p in parts],
        "day_r": dec["r"],
        "day_p_value": dec["p_value"],
        "day_decoding": {k: v for k, v in dec.items() if k not in ("r", "p_value", "prediction")},
        "retrieval": retrieval,
        "pca": {"explained_variance_ratio": pca.explained_variance_ratio_.tolist()},
        "note": "retrieval candidates: the windows of the same split; training windows were seen in pretraining",
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(result, indent=1))
    plot_drift(xy, day, np.asarray(dec["prediction"]), result, out / "drift.png")
    logger.info(
        "drift: day decoded from the embeddings with r = %.3f (block-permutation p = %.3g, %d blocks, %d days)",
        dec["r"],
        dec["p_value"],
        dec["n_blocks"],
        dec["n_days"],
    )
    return result


def _group(ranks: np.ndarray, mask: np.ndarray) -> dict:
    return {"mean_relative_rank": float(ranks[mask].mean()), "n_windows": int(mask.sum())}


def plot_drift(xy: np.ndarray, day: np.ndarray, pred: np.ndarray, r: dict, path: Path) -> None:
    """PNG: embeddings on their first two principal components by day; decoded vs true day; rank by hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=110)
    ax = axes[0]
    for d in np.unique(day):
        m = day == d
        ax.scatter(xy[m, 0], xy[m, 1], s=3, alpha=0.4, label=f"day {d}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("embeddings by day (PCA)", fontsize=9)
    ax.legend(fontsize=7, markerscale=3)
    ax = axes[1]
    days = np.unique(day)
    ax.violinplot([pred[day == d] for d in days], positions=days, showmeans=True)
    ax.plot(days, days, "k--", lw=1)
    ax.set_xlabel("true day")
    ax.set_ylabel("decoded day (cross-validated by block)")
    dec = r["day_decoding"]
    ax.set_title(f"r = {r['day_r']:.2f} (p = {r['day_p_value']:.2g}; null 95% {dec['null_r_95']:.2f})", fontsize=9)
    ax = axes[2]
    for split, v in r["retrieval"].items():
        hours = sorted(v["by_hour"])
        ax.plot(hours, [v["by_hour"][h]["mean_relative_rank"] for h in hours], "o-", ms=3, label=split)
    ax.axhline(0.5, color="k", ls="--", lw=1)
    ax.set_ylim(0, 0.6)
    ax.set_xlabel("local hour")
    ax.set_ylabel("mean relative rank")
    ax.set_title("retrieval by hour (candidates: the split's windows)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
