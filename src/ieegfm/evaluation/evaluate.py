"""``ieegfm evaluate``: retrieval on a split of the shards, with the shuffled-pairs control and a rank plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ieegfm.checkpoint import model_for_shards
from ieegfm.data import ShardDataModule, read_manifest, target_of
from ieegfm.errors import InputError
from ieegfm.evaluation.retrieval import retrieval_metrics

logger = logging.getLogger(__name__)


def load_model(ckpt: str | Path, dm: ShardDataModule, channels: str = "exact") -> tuple[torch.nn.Module, dict]:
    """The embedding model of a pretraining or finetuning checkpoint, laid out for ``dm``'s shards.

    Subjects and channels are matched by name (see :func:`ieegfm.checkpoint.encoder_for_shards`).

    Returns
    -------
    model : nn.Module
        In eval mode; ``model(x, subject)`` and ``model.pooling`` as a brain encoder.
    contract : dict
        The checkpoint's :class:`~ieegfm.checkpoint.CheckpointContract` as a dict.

    Raises
    ------
    InputError
        Missing or unsafe file, not an ieegfm checkpoint, subjects/channels/sfreq/features that do not match.
    """
    model, contract = model_for_shards(ckpt, dm.manifest, dm.root, channels, window_n=dm.window_n)
    dm.check_pooling(model.pooling)
    return model, contract.to_dict()


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


def evaluate(cfg) -> dict:
    """Retrieval metrics of a pretraining or finetuning checkpoint on a split (see
    :func:`ieegfm.evaluation.retrieval_metrics`).

    Writes ``cfg.out`` (JSON: ``mean_relative_rank``, ``within_block_mean_relative_rank``, ``top1_accuracy``,
    ``top10_accuracy``, ``n_candidates``, ``shuffled_mean_relative_rank`` and more) and a PNG of the rank
    distribution beside it.

    Raises
    ------
    InputError
        See :func:`load_model`; the split has no windows.
    """
    model, contract = model_for_shards(cfg.ckpt, read_manifest(cfg.shards), cfg.shards, cfg.channels)
    enc = contract.encoder
    dm = ShardDataModule(cfg.shards, batch_size=cfg.batch_size, window_s=enc["n_times"] / enc["sfreq"])
    dm.check_pooling(model.pooling)
    contract = contract.to_dict()
    emb = embed_split(model, dm, cfg.split)
    m = retrieval_metrics(emb["brain"], emb["audio"], seed=cfg.seed, blocks=emb["block"])
    ranks = np.asarray(m.pop("relative_ranks"))
    m.pop("within_block_relative_ranks", None)
    head = (contract.get("head") or {}).get("name")
    m.update(
        {
            "split": cfg.split,
            "ckpt": str(cfg.ckpt),
            "shards": str(cfg.shards),
            "kind": contract["kind"],
            "encoder": contract["encoder"]["name"],
            "head": head,
            "pooling": model.pooling,
        }
    )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(m, indent=1))
    label = contract["encoder"]["name"] + (f" + {head} head" if head else "")
    plot_ranks(
        ranks,
        out.with_suffix(".png"),
        f"{label} / pooling={model.pooling} / {cfg.split} (n={m['n_candidates']})",
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
