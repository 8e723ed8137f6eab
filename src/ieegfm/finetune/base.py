"""What every finetuning LightningModule shares: the encoder and head, the frozen-encoder handling, the checkpoint
contract and the optimiser (AdamW, the encoder at a fraction of the head's learning rate, warm-up then cosine decay).

The window head (:class:`ieegfm.finetune.module.Finetuning`), the sentence heads
(:class:`ieegfm.finetune.sentence_module.SentenceFinetuning`) and the LLM-prefix head
(:class:`ieegfm.finetune.llm_module.LLMPrefixFinetuning`) subclass :class:`FinetuningBase` and add their forward
pass, losses and validation metrics.
"""

from __future__ import annotations

import contextlib
from functools import partial

import lightning as L
import torch
from torch import nn

from ieegfm.checkpoint import CONTRACT_KEY
from ieegfm.config.enums import FREEZE, INITS
from ieegfm.training.schedule import warmup_cosine

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


#: The optimiser's hyper-parameters every finetuning module saves, after its own.
OPTIMISER_HPARAMS = (
    "freeze",
    "train_input_layer",
    "lr",
    "encoder_lr_scale",
    "weight_decay",
    "warmup_steps",
    "max_steps",
)


class FinetuningBase(L.LightningModule):
    """A brain encoder and a head trained on a patient's task data; subclasses add the forward pass and the steps.

    A subclass's constructor takes its own networks and data, then passes these keyword arguments on (``**options``)
    with its own hyper-parameters as ``extra_hparams``. The hyper-parameters (``self.hparams``, saved in every
    checkpoint) are ``extra_hparams`` followed by ``freeze`` … ``max_steps``; the networks and the contract are not
    among them.

    Parameters
    ----------
    encoder : ieegfm.models.BrainEncoder
        Pretrained (laid out for the task shards, :func:`ieegfm.checkpoint.encoder_for_shards`) or freshly
        initialised (task-only baseline).
    head : ieegfm.heads.FinetuneHead
        Reads the encoder's features.
    freeze : {'encoder', 'none'}
        ``'encoder'``: the encoder is frozen (no gradient, eval mode so BatchNorm statistics and dropout stay those
        of pretraining). ``'none'``: full finetuning, the encoder at ``lr * encoder_lr_scale``.
    train_input_layer : bool
        With ``freeze='encoder'``: the per-subject input layer (``encoder.subject_layers``) still trains, at ``lr``:
        for a patient the pretrained encoder never saw, whose input layer is new (:func:`ieegfm.checkpoint.
        encoder_for_shards` with ``new_subjects=True``).
    lr : float
        AdamW learning rate of the head.
    encoder_lr_scale : float | None
        The encoder's learning rate over ``lr`` (:func:`resolve_encoder_lr_scale`: 0.1 for pretrained weights, 1.0
        for a scratch encoder); ``None`` or ignored when the encoder is frozen.
    weight_decay : float
        AdamW weight decay (matrices only).
    warmup_steps, max_steps : int
        Linear warm-up then cosine decay to 0 at ``max_steps`` (:func:`ieegfm.training.schedule.warmup_cosine`).
    contract : dict, optional
        :class:`ieegfm.checkpoint.CheckpointContract` (``kind='finetune'``) written into every checkpoint.
    **extra_hparams
        The subclass's own hyper-parameters (plain values), saved before the optimiser's.

    Raises
    ------
    ValueError
        Unknown ``freeze``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        *,
        freeze: str = "encoder",
        train_input_layer: bool = False,
        lr: float = 1e-3,
        encoder_lr_scale: float | None = 0.1,
        weight_decay: float = 1e-2,
        warmup_steps: int = 20,
        max_steps: int = 300,
        contract: dict | None = None,
        **extra_hparams,
    ) -> None:
        super().__init__()
        if freeze not in FREEZE:
            raise ValueError(f"freeze must be one of {FREEZE}, got {freeze!r}")
        # by name, read from the constructors' frames (a dict would be compared with every argument, arrays too)
        self.save_hyperparameters(*extra_hparams, *OPTIMISER_HPARAMS)
        self.encoder, self.head = encoder, head
        self.contract = contract
        if freeze == "encoder":
            self.encoder.requires_grad_(False)
            if train_input_layer:  # a patient the pretrained encoder never saw: its new input layer learns
                self.encoder.subject_layers.requires_grad_(True)

    def encoder_context(self):
        """``torch.no_grad()`` around a frozen encoder (no autograd graph through it), else a null context; a
        frozen encoder with a trainable input layer needs the graph down to that layer."""
        if self.hparams.freeze == "encoder" and not self.hparams.train_input_layer:
            return torch.no_grad()
        return contextlib.nullcontext()

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # frozen: BatchNorm statistics and dropout as in pretraining (Lightning puts every submodule back in
        # training mode after each validation, so this is checked per batch; a flag test, no cost)
        if self.hparams.freeze == "encoder" and self.encoder.training:
            self.encoder.eval()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.contract is not None:
            checkpoint[CONTRACT_KEY] = self.contract

    def encoder_groups(self) -> tuple[tuple[nn.Module, float | None], ...]:
        """The encoder's ``(module, learning-rate scale)`` pairs: all of it at ``lr * encoder_lr_scale``; frozen,
        nothing, or only its input layer (``train_input_layer``, new and so at the head's ``lr``)."""
        if self.hparams.freeze != "encoder":
            return ((self.encoder, self.hparams.encoder_lr_scale),)
        return ((self.encoder.subject_layers, 1.0),) if self.hparams.train_input_layer else ()

    def optimised(self) -> tuple[tuple[nn.Module, float | None], ...]:
        """The ``(module, learning-rate scale)`` pairs trained: the head at ``lr`` and :meth:`encoder_groups`."""
        return (self.head, 1.0), *self.encoder_groups()

    def configure_optimizers(self):
        return finetune_optimizer(self.optimised(), self.hparams)


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
