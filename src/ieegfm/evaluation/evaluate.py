"""``ieegfm evaluate``: retrieval on a split of the shards, with the shuffled-pairs control and a rank plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ieegfm.data import ShardDataModule
from ieegfm.errors import InputError
from ieegfm.evaluation.retrieval import retrieval_metrics
from ieegfm.models import build_encoder
from ieegfm.pretrain.module import target_of

logger = logging.getLogger(__name__)


def load_encoder(ckpt: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the brain encoder of a pretraining checkpoint.

    Returns
    -------
    encoder : BrainEncoder
        In eval mode, on CPU.
    config : dict
        Its :func:`ieegfm.models.build_encoder` arguments.

    Raises
    ------
    InputError
        Missing file, or not an ``ieegfm pretrain`` checkpoint.
    """
    path = Path(ckpt)
    if not path.is_file():
        raise InputError(f"ckpt={path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        cfg = dict(state["hyper_parameters"]["encoder_config"])
    except Exception as err:
        raise InputError(f"ckpt={path}: not an ieegfm pretraining checkpoint ({type(err).__name__}: {err})") from None
    encoder = build_encoder(**cfg)
    weights = {k[len("encoder.") :]: v for k, v in state["state_dict"].items() if k.startswith("encoder.")}
    encoder.load_state_dict(weights)
    return encoder.eval(), cfg


@torch.no_grad()
def embed_split(encoder, dm: ShardDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Brain embeddings, audio targets and window keys of every fixed window of a split."""
    brains, audios, keys = [], [], []
    for batch in dm.eval_dataloader(split):
        brains.append(encoder(batch["brain"].float(), batch["subject"]).float())
        audios.append(target_of(batch["audio"], encoder.pooling).float())
        keys += batch["key"]
    if not brains:
        raise InputError(f"shards={dm.root}: split {split!r} has no windows")
    return torch.cat(brains), torch.cat(audios), keys


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
    """Retrieval metrics of a checkpoint on a split (see :func:`ieegfm.evaluation.retrieval_metrics`).

    Writes ``cfg.out`` (JSON: ``mean_relative_rank``, ``top1_accuracy``, ``top10_accuracy``, ``n_candidates``,
    ``shuffled_mean_relative_rank`` and more) and a PNG of the rank distribution beside it.
    """
    encoder, enc_cfg = load_encoder(cfg.ckpt)
    dm = ShardDataModule(cfg.shards, batch_size=cfg.batch_size, window_s=enc_cfg["n_times"] / enc_cfg["sfreq"])
    dm.check_pooling(enc_cfg["pooling"])
    if dm.n_chans != enc_cfg["n_chans"] or dm.n_features != enc_cfg["n_features"]:
        raise InputError(
            f"shards={cfg.shards} ({dm.n_chans} channels, {dm.n_features} features) do not match "
            f"ckpt={cfg.ckpt} ({enc_cfg['n_chans']} channels, {enc_cfg['n_features']} features)"
        )
    brain, audio, _ = embed_split(encoder, dm, cfg.split)
    m = retrieval_metrics(brain, audio, seed=cfg.seed)
    ranks = np.asarray(m.pop("relative_ranks"))
    m.update(
        {
            "split": cfg.split,
            "ckpt": str(cfg.ckpt),
            "shards": str(cfg.shards),
            "encoder": enc_cfg["name"],
            "pooling": enc_cfg["pooling"],
        }
    )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(m, indent=1))
    plot_ranks(
        ranks,
        out.with_suffix(".png"),
        f"{enc_cfg['name']} / pooling={enc_cfg['pooling']} / {cfg.split} (n={m['n_candidates']})",
        m["shuffled_mean_relative_rank"],
    )
    return m


def summary_table(rows: list[dict]) -> str:
    """Markdown table of metrics dicts (one row per model)."""
    head = (
        "| encoder | pooling | mean relative rank | top-1 | top-10 | candidates | shuffled control |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for m in rows:
        lines.append(
            f"| {m['encoder']} | {m['pooling']} | {m['mean_relative_rank']:.3f} | "
            f"{m['top1_accuracy']:.3f} | {m['top10_accuracy']:.3f} | {m['n_candidates']} | "
            f"{m['shuffled_mean_relative_rank']:.3f} |"
        )
    return "\n".join(lines)
