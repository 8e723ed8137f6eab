"""Contrastive pretraining: the LightningModule and the ``ieegfm pretrain`` runner."""

from ieegfm.pretrain.module import ContrastivePretraining, target_of

__all__ = ["ContrastivePretraining", "target_of"]
