"""``ieegfm evaluate``: retrieval on a split of the shards, with the shuffled-pairs control and a rank plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ieegfm.checkpoint import model_for_shards
from ieegfm.data import ShardDataModule, target_of
from ieegfm.errors import InputError
from ieegfm.evaluation.retrieval import retrieval_metrics
from ieegfm.evaluation.stats import paired_wilcoxon
from ieegfm.io.manifest import read_manifest

logger = logging.getLogger(__name__)


@torch.no_grad()
def embed_split(model, dm: ShardDataModule, split: str) -> dict:
    """Embeddings, targets and window labels of every fixed window of a split, in shard order.

    Returns
    -------
    out : dict
        ``brain`` (n_windows, n_features[, n_times]) model outputs, ``audio`` targets of the same shape
        (:func:`ieegfm.data.target_of`), ``key``, ``block`` (n_windows,) str arrays, ``tmin`` (n_windows,) s,
        ``day`` (n_windows,) int, ``subject`` (n_windows,) int.

    Raises
    ------
    InputError
        The split has no windows.
    """
    parts: dict[str, list] = {k: [] for k in ("brain", "audio", "key", "block", "tmin", "day", "subject")}
    for batch in dm.eval_dataloader(split):
        parts["brain"].append(model(batch["brain"].float(), batch["subject"]).float())
        parts["audio"].append(target_of(batch["audio"], model.pooling).float())
        for k in ("key", "block"):
            parts[k].append(np.asarray(batch[k]))
        for k in ("tmin", "day", "subject"):
            parts[k].append(batch[k].numpy())
    if not parts["brain"]:
        raise InputError(f"shards={dm.root}: split {split!r} has no windows")
    return {k: (torch.cat(v) if k in ("brain", "audio") else np.concatenate(v)) for k, v in parts.items()}


def plot_ranks(relative_ranks: np.ndarray, path: Path, title: str, shuffled: float) -> None:
    """Histogram of relative ranks against the uniform chance distribution (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.hist(
        relative_ranks,
        bins=20,
        range=(0, 1),
        density=True,
        color="#3465a4",
        alpha=0.85,
        label=f"model (mean {np.mean(relative_ranks):.3f})",
    )
    ax.axhline(1.0, color="k", ls="--", lw=1, label=f"chance (0.5; shuffled pairs {shuffled:.3f})")
    ax.set_xlabel("relative rank of the true audio window (0 = best)")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def score_split(
    ckpt: str | Path,
    shards: str | Path,
    split: str = "test",
    channels: str = "exact",
    seed: int = 0,
    batch_size: int = 256,
    pool_subjects: bool = False,
) -> dict:
    """Retrieval metrics of a pretraining or finetuning checkpoint on a split, with controls and per-window ranks.

    Each window is ranked among the windows of its own subject (:func:`~ieegfm.evaluation.retrieval.retrieval_metrics`);
    the summary is the mean over subjects, each subject's metrics under ``subjects``.

    Parameters
    ----------
    ckpt : str | Path
        Checkpoint with an ieegfm contract (subjects and channels matched by name to the shards').
    shards : str | Path
        Shard folder.
    split : {'train', 'val', 'test'}
    channels : {'exact', 'intersect'}
        See :func:`ieegfm.checkpoint.match_channels`.
    seed : int
        Seed of the shuffled-pairs control.
    batch_size : int
        Windows per forward pass.
    pool_subjects : bool
        Rank among every subject's windows instead (labelled ``candidates='pooled across subjects'``).

    Returns
    -------
    result : dict
        ``metrics``: :func:`~ieegfm.evaluation.retrieval.retrieval_metrics` summary (``mean_relative_rank``,
        ``within_block_mean_relative_rank``, ``shuffled_mean_relative_rank``, ``n_candidates``, ...) plus
        ``p_value_vs_chance`` (one-sided Wilcoxon signed-rank of the per-window relative ranks against 0.5) and
        the checkpoint's ``kind``, ``encoder``, ``head``, ``pooling``; ``per_window``: ``key``, ``block``,
        ``subject`` (index), ``subject_label``, ``relative_rank`` (among the subject's windows), ``within_block_relative_rank`` (windows in shard order).

    Raises
    ------
    InputError
        Missing or unsafe checkpoint, subjects/channels/sfreq/features that do not match, an empty split.
    """
    manifest = read_manifest(shards)
    model, contract = model_for_shards(ckpt, manifest, shards, channels)
    enc = contract.encoder
    dm = ShardDataModule(shards, batch_size=batch_size, window_s=enc["n_times"] / enc["sfreq"])
    dm.check_pooling(model.pooling)
    emb = embed_split(model, dm, split)
    label_of = {index: label for label, index in manifest.subject_index().items()}
    labels = [label_of[int(i)] for i in emb["subject"]]
    m = retrieval_metrics(
        emb["brain"],
        emb["audio"],
        seed=seed,
        blocks=emb["block"],
        subjects=labels,
        pool_subjects=pool_subjects,
    )
    per_window = {
        "key": emb["key"].tolist(),
        "block": emb["block"].tolist(),
        "subject": emb["subject"].tolist(),
        "subject_label": labels,
        "relative_rank": m.pop("relative_ranks"),
        "within_block_relative_rank": m.pop("within_block_relative_ranks"),
    }
    ranks = np.asarray(per_window["relative_rank"])
    m["p_value_vs_chance"] = paired_wilcoxon(ranks, np.full_like(ranks, 0.5))["p_value"]
    m.update(
        {
            "kind": contract.kind,
            "encoder": enc["name"],
            "head": (contract.head or {}).get("name"),
            "pooling": model.pooling,
        }
    )
    return {"metrics": m, "per_window": per_window}


def evaluate(cfg) -> dict:
    """Retrieval metrics of a pretraining or finetuning checkpoint on a split (see :func:`score_split`).

    Writes ``cfg.out`` (JSON: ``mean_relative_rank``, ``within_block_mean_relative_rank``, ``top1_accuracy``,
    ``top10_accuracy``, ``n_candidates``, ``shuffled_mean_relative_rank`` and more) and a PNG of the rank
    distribution beside it.

    Raises
    ------
    InputError
        See :func:`score_split`.
    """
    result = score_split(cfg.ckpt, cfg.shards, cfg.split, cfg.channels, cfg.seed, cfg.batch_size, cfg.pool_subjects)
    m = {**result["metrics"], "split": cfg.split, "ckpt": str(cfg.ckpt), "shards": str(cfg.shards)}
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(m, indent=1))
    label = m["encoder"] + (f" + {m['head']} head" if m["head"] else "")
    plot_ranks(
        np.asarray(result["per_window"]["relative_rank"]),
        out.with_suffix(".png"),
        f"{label} / pooling={m['pooling']} / {cfg.split} (n={m['n_candidates']})",
        m["shuffled_mean_relative_rank"],
    )
    return m


def summary_table(rows: list[dict]) -> str:
    """Markdown table of metrics dicts (one row per model)."""
    head = (
        "| encoder | pooling | mean relative rank | within-block rank | top-1 | top-10 | candidates | "
        "shuffled control |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for m in rows:
        lines.append(
            f"| {m['encoder']} | {m['pooling']} | {m['mean_relative_rank']:.3f} | "
            f"{_fmt(m.get('within_block_mean_relative_rank'))} | "
            f"{m['top1_accuracy']:.3f} | {m['top10_accuracy']:.3f} | {m['n_candidates']} | "
            f"{m['shuffled_mean_relative_rank']:.3f} |"
        )
    return "\n".join(lines)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
