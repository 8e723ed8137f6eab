"""The finetuning LightningModule: a brain encoder (pretrained or not, frozen or not) plus a finetune head."""

from __future__ import annotations

from functools import partial

import lightning as L
import numpy as np
import torch
from torch import nn

from ieegfm.checkpoint import CONTRACT_KEY
from ieegfm.data.targets import target_of
from ieegfm.evaluation.retrieval import SUMMARY_KEYS, retrieval_metrics
from ieegfm.training.schedule import warmup_cosine

OBJECTIVES = ("clip", "regression")
FREEZE = ("encoder", "none")
INITS = ("pretrained", "scratch")
#: Learning-rate scale of a *pretrained* encoder under full finetuning: its weights move at a tenth of the head's
#: rate. A randomly initialised encoder has nothing to protect and trains at the full rate (1.0).
PRETRAINED_ENCODER_LR_SCALE = 0.1


def resolve_encoder_lr_scale(init: str, freeze: str, scale: float | None = None) -> float | None:
    """The encoder's learning rate as a multiple of the head's.

    Parameters
    ----------
    init : {'pretrained', 'scratch'}
    freeze : {'encoder', 'none'}
    scale : float | None
        An explicit scale (kept as given); ``None``: :data:`PRETRAINED_ENCODER_LR_SCALE` for a pretrained encoder,
        1.0 for a freshly initialised one.

    Returns
    -------
    scale : float | None
        ``None`` for a frozen encoder (it has no learning rate).

    Raises
    ------
    ValueError
        Unknown ``init`` or ``freeze``, or a scale that is not positive.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if freeze not in FREEZE:
        raise ValueError(f"freeze must be one of {FREEZE}, got {freeze!r}")
    if freeze == "encoder":
        return None
    if scale is None:
        return 1.0 if init == "scratch" else PRETRAINED_ENCODER_LR_SCALE
    if not scale > 0:
        raise ValueError(f"encoder_lr_scale must be > 0, got {scale}")
    return float(scale)


class Finetuning(L.LightningModule):
    """Finetune a brain encoder with a head on a patient's task data (arXiv 2512.15830, per-patient finetuning).

    Parameters
    ----------
    encoder : ieegfm.models.BrainEncoder
        Pretrained (laid out for the task shards, :func:`ieegfm.checkpoint.encoder_for_shards`) or freshly
        initialised (task-only baseline).
    head : ieegfm.heads.FinetuneHead
        Reads ``encoder(..., return_features=True)`` features (batch, n_hidden, n_times).
    loss : nn.Module
        ``objective='clip'``: a contrastive loss (:class:`ieegfm.losses.ClipLoss`), called ``loss(out, target)``.
        Ignored for ``'regression'`` (mean squared error to the z-scored targets; with AdamW's weight decay a
        ridge-style regression).
    objective : {'clip', 'regression'}
    freeze : {'encoder', 'none'}
        ``'encoder'``: the encoder is frozen (no gradient, eval mode so BatchNorm statistics stay those of
        pretraining): a linear probe with ``head='linear'``. ``'none'``: full finetuning, the encoder at
        ``lr * encoder_lr_scale``.
    lr : float
        AdamW learning rate of the head (and of the loss's parameters).
    encoder_lr_scale : float | None
        The encoder's learning rate over ``lr`` (:func:`resolve_encoder_lr_scale`: 0.1 for pretrained weights, 1.0
        for a scratch encoder); ``None`` or ignored when the encoder is frozen.
    weight_decay : float
        AdamW weight decay (matrices only).
    warmup_steps, max_steps : int
        Linear warm-up then cosine decay to 0 at ``max_steps``.
    contract : dict, optional
        :class:`ieegfm.checkpoint.CheckpointContract` (``kind='finetune'``) written into every checkpoint.

    Raises
    ------
    ValueError
        Unknown ``objective`` or ``freeze``.

    Notes
    -----
    Logs ``train/loss`` every step, and at each validation ``val/loss`` (the same objective on validation batches
    of the same size, so the two curves show overfitting) and the retrieval metrics ``val/mean_relative_rank``,
    ``val/within_block_mean_relative_rank`` etc. over all validation windows.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        loss: nn.Module,
        objective: str = "clip",
        freeze: str = "encoder",
        lr: float = 1e-3,
        encoder_lr_scale: float | None = 0.1,
        weight_decay: float = 1e-2,
        warmup_steps: int = 20,
        max_steps: int = 300,
        contract: dict | None = None,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if freeze not in FREEZE:
            raise ValueError(f"freeze must be one of {FREEZE}, got {freeze!r}")
        self.save_hyperparameters(ignore=["encoder", "head", "loss", "contract"])
        self.encoder, self.head, self.loss = encoder, head, loss
        self.pooling = head.pooling
        self.contract = contract
        if freeze == "encoder":
            self.encoder.requires_grad_(False)
        self._val: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # frozen: BatchNorm statistics and dropout as in pretraining (Lightning puts every submodule back in
        # training mode after each validation, so this is checked per batch; a flag test, no cost)
        if self.hparams.freeze == "encoder" and self.encoder.training:
            self.encoder.eval()

    def forward(self, brain: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """(batch, n_chans, n_times) iEEG and (batch,) subject indices -> the head's output."""
        if self.hparams.freeze == "encoder":  # no autograd graph through a frozen encoder
            with torch.no_grad():
                _, features = self.encoder(brain, subject, return_features=True)
        else:
            _, features = self.encoder(brain, subject, return_features=True)
        return self.head(features)

    def objective(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch."""
        if self.hparams.objective == "regression":
            return torch.nn.functional.mse_loss(out.float(), target)
        return self.loss(out, target)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch["brain"].float(), batch["subject"])
        loss = self.objective(out, target_of(batch["audio"], self.pooling))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(out))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch["brain"].float(), batch["subject"])
        target = target_of(batch["audio"], self.pooling)
        if len(out) > 1:
            self.log("val/loss", self.objective(out, target), batch_size=len(out), rank_zero_only=False)
        self._val.append((out.detach().float().cpu(), target.float().cpu(), np.asarray(batch["block"])))

    def on_validation_epoch_end(self) -> None:
        parts, self._val = self._val, []
        if sum(len(p[0]) for p in parts) < 2:
            return
        m = retrieval_metrics(
            torch.cat([p[0] for p in parts]),
            torch.cat([p[1] for p in parts]),
            blocks=np.concatenate([p[2] for p in parts]),
        )
        for k in SUMMARY_KEYS:
            if m[k] is not None:
                self.log(f"val/{k}", float(m[k]), prog_bar=k == "mean_relative_rank", rank_zero_only=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.contract is not None:
            checkpoint[CONTRACT_KEY] = self.contract

    def configure_optimizers(self):
        hp = self.hparams
        return finetune_optimizer(((self.head, 1.0), (self.encoder, hp.encoder_lr_scale), (self.loss, 1.0)), hp)


def finetune_optimizer(modules, hp) -> dict:
    """AdamW over ``(module, lr scale)`` pairs (weight decay on matrices only; a scale of ``None`` or parameters
    without gradient: not optimised) with linear warm-up and cosine decay (``hp``: ``lr``, ``weight_decay``,
    ``warmup_steps``, ``max_steps``); Lightning's optimizer config."""
    groups = []
    for module, scale in modules:
        if scale is None:
            continue
        decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
        groups += [
            {"params": decay, "weight_decay": hp.weight_decay, "lr": hp.lr * scale},
            {"params": no_decay, "weight_decay": 0.0, "lr": hp.lr * scale},
        ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=hp.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(warmup_cosine, warmup=hp.warmup_steps, total=hp.max_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
