"""``ieegfm finetune`` with a window head (``head=linear``): each encoder window -> the audio targets it heard,
trained contrastively (or by regression) and scored by retrieval among the test windows (arXiv 2512.15830).

The run folder is that of every finetuning run (:func:`ieegfm.finetune.runner.run_finetuning`): ``model.ckpt``,
``config.yaml``, ``checkpoints/``, TensorBoard logs, and ``metrics.json`` (validation and test metrics with
controls, per-window test ranks), ``card.json`` + ``card.md`` once the test split is scored
(:func:`score_test_split`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from torch import nn

from ieegfm.checkpoint import CheckpointContract, load_checkpoint
from ieegfm.data import ShardDataModule
from ieegfm.errors import InputError
from ieegfm.evaluation.evaluate import score_split
from ieegfm.finetune.cards import write_card
from ieegfm.finetune.module import Finetuning
from ieegfm.finetune.runner import Fitted, HeadRecipe
from ieegfm.io.manifest import SPLITS, Manifest
from ieegfm.losses import build_loss

logger = logging.getLogger(__name__)


def task_datamodule(cfg, manifest: Manifest, window_s: float, pooling: str) -> ShardDataModule:
    """The task shards' data module, checked to have windows in every split.

    Raises
    ------
    InputError
        A split without windows (names it: finetuning needs train, val for selection and test for reporting).
    """
    dm = ShardDataModule(
        cfg.shards,
        batch_size=cfg.data.batch_size,
        window_s=window_s,
        num_workers=cfg.data.num_workers,
        shuffle_buffer=cfg.data.shuffle_buffer,
        seed=cfg.seed,
        pin_memory=torch.cuda.is_available(),
        audio_pooling="mean" if pooling == "mean" else None,
    )
    dm.check_pooling(pooling)
    empty = [sp for sp in SPLITS if dm.n_windows(sp) == 0]
    if empty:
        raise InputError(
            f"shards={cfg.shards}: the task's {', '.join(empty)} split(s) have no windows; finetuning needs train, "
            "val (early stopping) and test (reporting): pack the task with more blocks or other split.val/split.test"
        )
    return dm


class AudioTargetRecipe(HeadRecipe):
    """Window heads on the task's audio targets (:class:`ieegfm.finetune.module.Finetuning`, CLIP loss or
    regression), selected on the validation mean relative rank, scored on test by :func:`score_test_split`.

    The only kind that supports a validation-only run (``ieegfm compare``'s learning-rate grid).
    """

    validation_only = True

    def check_shards(self, cfg, manifest: Manifest) -> None:
        """Refuse shards without audio targets.

        Raises
        ------
        InputError
            Brain-only shards (``n_features`` 0).
        """
        if manifest.n_features == 0:
            raise InputError(
                f"shards={cfg.shards}: no audio targets (brain-only shards, e.g. from import-n2s); head={cfg.head} "
                "trains against audio: use head=text_embedding or llm_prefix"
            )

    def prepare(self, cfg, manifest: Manifest, pretrained: CheckpointContract) -> int:
        """The task data module (:func:`task_datamodule`) at the pretrained encoder's window."""
        enc = pretrained.encoder
        self.dm = task_datamodule(cfg, manifest, enc["n_times"] / enc["sfreq"], enc["pooling"])
        return self.dm.window_n

    def head_dims(self, encoder: nn.Module) -> dict:
        """The encoder's target size and pooling."""
        return {"n_features": encoder.n_features, "pooling": encoder.pooling}

    def build_loss(self, cfg) -> nn.Module:
        """The contrastive loss (:func:`ieegfm.losses.build_loss`; unused by ``objective=regression``)."""
        return build_loss("clip")

    def module(self, cfg, encoder, head, loss, options) -> Finetuning:
        """:class:`ieegfm.finetune.module.Finetuning` with the run's objective."""
        return Finetuning(encoder, head, loss, objective=cfg.objective, **options)

    def fit_data(self, cfg) -> dict:
        """The task data module."""
        return {"datamodule": self.dm}

    def report(self, cfg, fitted: Fitted, score_test: bool) -> None:
        """``metrics.json`` (training figures, learning rates), then the test split (:func:`score_test_split`)
        unless ``score_test`` is False."""
        out, trainer = fitted.out, fitted.trainer
        metrics = {
            **fitted.figures(self.monitor, cfg.trainer.max_steps),
            "train_windows": self.dm.n_windows("train"),
            "lr": float(cfg.optim.lr),
            "encoder_lr_scale": fitted.encoder_lr_scale,
            "wall_s": time.perf_counter() - fitted.tic,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        if score_test:
            score_test_split(out, cfg)
        else:
            logger.info(
                "finetuned %s: best val mean relative rank %.3f, %d steps (test split not read)",
                out,
                metrics["best_val_mean_relative_rank"] or float("nan"),
                trainer.global_step,
            )


def score_test_split(run: Path, cfg) -> dict:
    """Score a finished run's selected weights (``run/model.ckpt``) on the test split; complete its ``metrics.json``
    (``test``: summary metrics with controls, ``per_window``: per-window ranks) and write its card.

    A run already scored is returned as it is (the test split is read once per run).

    Parameters
    ----------
    run : Path
        A run folder of :func:`ieegfm.finetune.run.finetune` (``model.ckpt``, ``metrics.json``).
    cfg : DictConfig
        Its :class:`ieegfm.config.FinetuneConfig`.

    Returns
    -------
    metrics : dict
        The completed ``metrics.json``.

    Raises
    ------
    InputError
        ``run`` holds no finished run.
    """
    run = Path(run)
    path = run / "metrics.json"
    if not path.is_file() or not (run / "model.ckpt").is_file():
        raise InputError(f"{run}: not a finished finetuning run (model.ckpt and metrics.json expected)")
    metrics = json.loads(path.read_text())
    if "test" in metrics:
        return metrics
    scored = score_split(run / "model.ckpt", cfg.shards, "test", cfg.channels, seed=cfg.seed)
    metrics = {"test": scored["metrics"], "per_window": scored["per_window"], **metrics}
    path.write_text(json.dumps(metrics, indent=1))
    _, contract = load_checkpoint(run / "model.ckpt")
    write_card(run, contract.to_dict(), metrics, cfg)
    t = metrics["test"]
    logger.info(
        "finetuned %s: test mean relative rank %.3f (within-block %.3f, shuffled %.3f, %d candidates), %d steps",
        run,
        t["mean_relative_rank"],
        t["within_block_mean_relative_rank"] or float("nan"),
        t["shuffled_mean_relative_rank"],
        t["n_candidates"],
        metrics["global_step"],
    )
    return metrics
