"""The contrastive pretraining LightningModule: a thin wrapper that receives its encoder and loss."""

from __future__ import annotations

import random
import time
from functools import partial

import lightning as L
import numpy as np
import torch
from torch import nn

from ieegfm.checkpoint import CONTRACT_KEY
from ieegfm.data.targets import target_of
from ieegfm.evaluation.retrieval import SUMMARY_KEYS, retrieval_metrics
from ieegfm.training.schedule import warmup_cosine


class ContrastivePretraining(L.LightningModule):
    """Contrastive pretraining of a brain encoder against frozen audio targets (arXiv 2512.15830).

    Parameters
    ----------
    encoder : ieegfm.models.BrainEncoder
        Maps ``(batch, n_chans, n_times)`` + subject to ``(batch, n_features)`` (``pooling='mean'``) or
        ``(batch, n_features, n_times)`` (``pooling='none'``).
    loss : nn.Module
        E.g. :class:`ieegfm.losses.ClipLoss` (global negatives across DDP ranks, learnable logit scale).
    lr, weight_decay : float
        AdamW.
    warmup_steps, max_steps : int
        Linear warm-up then cosine decay to 0 at ``max_steps``.
    contract : dict, optional
        The :class:`ieegfm.checkpoint.CheckpointContract` (as a dict) written into every checkpoint under
        ``ieegfm.checkpoint.CONTRACT_KEY``: encoder config, subjects and channel names, data provenance.

    Notes
    -----
    Validation embeds every validation window (on every rank) and logs the retrieval metrics
    (``val/mean_relative_rank`` etc., see :func:`ieegfm.evaluation.retrieval.retrieval_metrics`) with the
    number of candidates.
    """

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module,
        lr: float = 3e-4,
        weight_decay: float = 1e-2,
        warmup_steps: int = 50,
        max_steps: int = 1000,
        contract: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "loss", "contract"])
        self.contract = contract
        self.encoder = encoder
        self.loss = loss
        self.pooling = encoder.pooling
        self._val: list[tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]] = []
        self._pending_rng: dict | None = None
        self.transfer_s, self._transfer_t0 = 0.0, 0.0

    def forward(self, brain: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        return self.encoder(brain, subject)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        self._transfer_t0 = time.perf_counter()
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Add up the host time of the host-to-device copies (``transfer_s``, read by the throughput monitor)."""
        self.transfer_s += time.perf_counter() - self._transfer_t0
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.encoder(batch["brain"].float(), batch["subject"])
        loss = self.loss(out, target_of(batch["audio"], self.pooling))
        bs = len(batch["brain"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if hasattr(self.loss, "logit_scale"):  # a tensor: no host sync per step (Lightning reduces it when logging)
            self.log("train/logit_scale", self.loss.logit_scale.detach().exp(), batch_size=bs)
        # candidates per row over all ranks (global batch; smaller in an epoch's last batches)
        self.log("train/contrastive_batch", float(getattr(self.loss, "n_candidates", bs)), batch_size=bs)
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the data position (epoch, batches done in it) and the RNG states, for an exact resume."""
        progress = self.trainer.fit_loop.epoch_loop.batch_progress
        epoch, done = int(self.current_epoch), int(progress.current.processed)
        if progress.is_last_batch:  # saved on the epoch's last batch: Lightning resumes at the next epoch
            epoch, done = epoch + 1, 0
        checkpoint["ieegfm"] = {
            "epoch": epoch,
            "batches_in_epoch": done,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},  # ieegfm uses no global numpy RNG
        }
        if self.contract is not None:
            checkpoint[CONTRACT_KEY] = self.contract

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the RNG states and fast-forward the training stream to where the checkpoint was taken."""
        state = checkpoint.get("ieegfm")
        if state is None:
            return
        self._pending_rng = state["rng"]
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "resume_from"):
            dm.resume_from(state["epoch"], state["batches_in_epoch"])

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # restore the RNG states only now: creating the DataLoader iterator draws from the torch RNG
        if self._pending_rng is not None:
            torch.set_rng_state(self._pending_rng["torch"])
            random.setstate(self._pending_rng["python"])
            self._pending_rng = None

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.encoder(batch["brain"].float(), batch["subject"])
        self._val.append(
            (
                out.detach().float().cpu(),
                target_of(batch["audio"], self.pooling).float().cpu(),
                batch["block"],
                batch["subject"].cpu().numpy(),
            )
        )

    def on_validation_epoch_end(self) -> None:
        parts = self._val  # every rank embedded every validation window (see ShardDataModule.eval_dataloader)
        self._val = []
        if not parts:
            return
        brain = torch.cat([p[0] for p in parts])
        audio = torch.cat([p[1] for p in parts])
        if len(brain) < 2:
            return
        m = retrieval_metrics(
            brain,
            audio,
            blocks=np.concatenate([p[2] for p in parts]),
            subjects=np.concatenate([p[3] for p in parts]),  # candidates from the window's own subject
        )
        for k in SUMMARY_KEYS:
            if m[k] is not None:
                self.log(f"val/{k}", float(m[k]), prog_bar=k == "mean_relative_rank", rank_zero_only=False)
        self.log("val/loss", self.validation_loss(brain, audio), rank_zero_only=False)

    @torch.no_grad()
    def validation_loss(self, brain: torch.Tensor, audio: torch.Tensor) -> float:
        """The training loss on the validation windows, in batches of the training's contrastive size.

        The windows are put in a fixed random order (seed 0: the same batches at every validation) and cut into
        batches of ``batch_size × world_size`` (the global batch the training loss sees; all windows when no
        datamodule is attached); a last, smaller batch is dropped unless it is the only one, since the contrastive
        loss falls with fewer candidates. So ``val/loss`` is on the scale of ``train/loss``.

        Parameters
        ----------
        brain, audio : torch.Tensor, shape (n_windows, n_features) or (n_windows, n_features, n_times)
            Embeddings and targets of every validation window.

        Returns
        -------
        float
            Mean loss over the batches.
        """
        n = len(brain)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        size = int(getattr(dm, "batch_size", n) * max(self.trainer.world_size if self._trainer is not None else 1, 1))
        size = min(max(size, 2), n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        starts = range(0, n - size + 1, size)
        losses = [
            float(self.loss(brain[order[i : i + size]], audio[order[i : i + size]], gather=False)) for i in starts
        ]
        return float(np.mean(losses))

    def configure_optimizers(self):
        hp = self.hparams
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "logit_scale" in name else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr
        )

        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, partial(warmup_cosine, warmup=hp.warmup_steps, total=hp.max_steps)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
