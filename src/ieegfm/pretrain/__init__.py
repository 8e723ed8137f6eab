"""Contrastive pretraining: the LightningModule and the ``ieegfm pretrain`` runner."""

from ieegfm.pretrain.module import ContrastivePretraining

__all__ = ["ContrastivePretraining"]
