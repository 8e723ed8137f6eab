"""LightningModule of the sentence heads: encoder windows of one sentence -> features -> masked head -> embedding."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ieegfm.finetune.base import FinetuningBase
from ieegfm.text.bank import bank_ranks


def sentence_features(encoder: nn.Module, batch: dict) -> torch.Tensor:
    """Encoder features of a sentence batch, windows laid end to end.

    Parameters
    ----------
    encoder : BrainEncoder
    batch : dict
        :func:`ieegfm.text.sentences.collate_sentences` output.

    Returns
    -------
    Tensor, shape (batch, n_hidden, max_windows * window_n)
        Features of the padding windows are zero (the head's mask excludes them).
    """
    windows, wmask = batch["windows"], batch["window_mask"]
    b, w, c, t = windows.shape
    subject = batch["subject"].unsqueeze(1).expand(b, w)[wmask]
    _, feats = encoder(windows[wmask].float(), subject, return_features=True)  # (n_valid, hidden, t)
    out = feats.new_zeros(b, w, feats.shape[1], t)
    out[wmask] = feats
    return out.permute(0, 2, 1, 3).reshape(b, feats.shape[1], w * t)


class SentenceFinetuning(FinetuningBase):
    """Train a sentence head (and optionally the encoder) to predict sentence embeddings.

    Parameters
    ----------
    encoder : BrainEncoder
        Pretrained (laid out for the task shards) or freshly initialised.
    head : TextEmbeddingHead
    loss : ClipTripletLoss
    bank : ndarray, shape (n_candidates, dim)
        Candidate embeddings: validation ranks each sentence among them (``val/mean_relative_rank``).
    **options
        The keyword arguments of :class:`ieegfm.finetune.base.FinetuningBase` (``freeze``, ``lr``,
        ``encoder_lr_scale``, ``weight_decay``, ``warmup_steps``, ``max_steps``, ``contract``).

    Raises
    ------
    ValueError
        Unknown ``freeze``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        loss: nn.Module,
        bank: np.ndarray,
        **options,
    ) -> None:
        super().__init__(encoder, head, **options)
        self.loss = loss
        self.bank = np.asarray(bank, np.float32)
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, batch: dict) -> torch.Tensor:
        """Predicted sentence embeddings, shape (batch, n_features)."""
        with self.encoder_context():
            feats = sentence_features(self.encoder, batch)
        return self.head(feats, batch["mask"])

    @staticmethod
    def _same(texts: list[str], device) -> torch.Tensor:
        t = np.asarray(texts, dtype=object)
        return torch.from_numpy(t[:, None] == t[None, :]).to(device)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        parts = self.loss(out, batch["target"], self._same(batch["text"], out.device))
        n = len(out)
        self.log("train/loss", parts["loss"], prog_bar=True, batch_size=n)
        self.log("train/clip", parts["clip"], batch_size=n)
        self.log("train/triplet", parts["triplet"], batch_size=n)
        return parts["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch)
        if len(out) > 1:
            self.log("val/loss", self.loss(out, batch["target"], self._same(batch["text"], out.device))["loss"],
                     batch_size=len(out))  # fmt: skip
        self._val.append((out.detach().float().cpu().numpy(), batch["bank_index"].numpy()))

    def on_validation_epoch_end(self) -> None:
        parts, self._val = self._val, []
        if not parts:
            return
        pred = np.concatenate([p[0] for p in parts])
        index = np.concatenate([p[1] for p in parts])
        ranks, _ = bank_ranks(pred, index, self.bank)
        self.log("val/mean_relative_rank", float(ranks.mean() / max(len(self.bank) - 1, 1)), prog_bar=True)
        self.log("val/top1_acc", float(np.mean(ranks == 0)))
