"""The finetuning LightningModule: a brain encoder (pretrained or not, frozen or not) plus a finetune head."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ieegfm.config.enums import OBJECTIVES
from ieegfm.data.targets import target_of
from ieegfm.evaluation.retrieval import SUMMARY_KEYS, retrieval_metrics
from ieegfm.finetune.base import FinetuningBase


class Finetuning(FinetuningBase):
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
    **options
        The keyword arguments of :class:`ieegfm.finetune.base.FinetuningBase`: ``freeze`` (``'encoder'`` with
        ``head='linear'`` is a linear probe), ``lr`` (of the head and the loss's parameters), ``encoder_lr_scale``,
        ``weight_decay``, ``warmup_steps``, ``max_steps``, ``contract``.

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
        **options,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        super().__init__(encoder, head, objective=objective, **options)
        self.loss = loss
        self.pooling = head.pooling
        self._val: list[tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]] = []

    def forward(self, brain: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        """(batch, n_chans, n_times) iEEG and (batch,) subject indices -> the head's output."""
        with self.encoder_context():
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
        self._val.append(
            (
                out.detach().float().cpu(),
                target.float().cpu(),
                np.asarray(batch["block"]),
                batch["subject"].cpu().numpy(),
            )
        )

    def on_validation_epoch_end(self) -> None:
        parts, self._val = self._val, []
        if sum(len(p[0]) for p in parts) < 2:
            return
        m = retrieval_metrics(
            torch.cat([p[0] for p in parts]),
            torch.cat([p[1] for p in parts]),
            blocks=np.concatenate([p[2] for p in parts]),
            subjects=np.concatenate([p[3] for p in parts]),
        )
        for k in SUMMARY_KEYS:
            if m[k] is not None:
                self.log(f"val/{k}", float(m[k]), prog_bar=k == "mean_relative_rank", rank_zero_only=False)

    def optimised(self) -> tuple[tuple[nn.Module, float | None], ...]:
        """The head and the loss's parameters (a learnable logit scale) at ``lr``, the encoder at its scale."""
        return (self.head, 1.0), *self.encoder_groups(), (self.loss, 1.0)
