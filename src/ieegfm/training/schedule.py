"""The learning-rate schedule of every training run: linear warm-up, then cosine decay to 0.

Used through :class:`torch.optim.lr_scheduler.LambdaLR` stepped once per optimiser step, by the pretraining module
(:class:`ieegfm.pretrain.module.ContrastivePretraining`) and the finetuning modules
(:func:`ieegfm.finetune.base.finetune_optimizer`).
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` steps.

    Parameters
    ----------
    step : int
        Optimiser steps taken (0 at the first step).
    warmup : int
        Warm-up steps: the factor rises linearly from ``1 / warmup`` to 1 (no warm-up when ``warmup <= 1``).
    total : int
        Step at which the factor reaches 0 (it stays 0 after).

    Returns
    -------
    factor : float
        Multiplier of the base learning rate, in ``[0, 1]``.
    """
    if step < warmup:
        return (step + 1) / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
