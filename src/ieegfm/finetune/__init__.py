"""Finetuning after pretraining: the finetuning LightningModule, the ``ieegfm finetune`` runner, the zero-shot /
task-only / pretrained comparison (``ieegfm compare``) and per-patient model cards (``ieegfm cards``).

The heads themselves are pure torch, in :mod:`ieegfm.heads`.
"""

from ieegfm.finetune.module import Finetuning

__all__ = ["Finetuning"]
