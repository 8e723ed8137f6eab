"""Pieces shared by the training modules of pretraining (:mod:`ieegfm.pretrain`) and finetuning
(:mod:`ieegfm.finetune`): the learning-rate schedule."""

from ieegfm.training.schedule import warmup_cosine

__all__ = ["warmup_cosine"]
