"""LightningModule of the LLM-prefix head: brain window -> soft tokens -> a frozen causal LM scores the words heard.

Sequence per item (BrainLLM, Ye et al., Commun Biol 2025): ``[BOS] [<brain/> b_1..b_T </brain>] [prompt tokens]
[continuation tokens]``; cross-entropy on the continuation only. Controls use the same sequence with the prefix of
another item's brain (``permuted``) or without the prefix (``no_brain``: the LM on the prompt alone).

The LM is frozen and is not a submodule: checkpoints hold the encoder and the head only (the LM is named in the
checkpoint contract and reloaded from its folder).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ieegfm.config.enums import LLM_PRECISIONS
from ieegfm.finetune.base import FinetuningBase


class TokenisedBatch:
    """Picklable collate: continuation items -> brain windows and token ids.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    sentence_embeddings : dict of str -> ndarray (embed_dim,), optional
        Embedding of every item's sentence text (or, for an item without one, of its continuation): the batch then
        holds them as ``embedding`` (batch, embed_dim), the text-only stage's input.
    """

    def __init__(self, tokenizer, sentence_embeddings: dict[str, np.ndarray] | None = None) -> None:
        self.tokenizer = tokenizer
        self.sentence_embeddings = sentence_embeddings
        ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.cls_token_id, tokenizer.pad_token_id, 0)
        self.bos = next(i for i in ids if i is not None)  # the sequence start (a BERT-style tokenizer has [CLS])

    def ids(self, text: str, lead_space: bool = False) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer((" " if lead_space else "") + text, add_special_tokens=False)["input_ids"])

    def __call__(self, items) -> dict:
        extra = {}
        if self.sentence_embeddings is not None:
            vectors = [self.sentence_embeddings[it.sentence or it.continuation] for it in items]
            extra["embedding"] = torch.from_numpy(np.stack(vectors).astype(np.float32))
        return {
            **extra,
            "brain": torch.from_numpy(np.stack([it.brain for it in items])),
            "subject": torch.tensor([it.subject for it in items], dtype=torch.long),
            "prompt_ids": [[self.bos, *self.ids(it.prompt)] for it in items],
            "cont_ids": [self.ids(it.continuation, lead_space=True) or [self.bos] for it in items],
            "continuation": [it.continuation for it in items],
            "prompt": [it.prompt for it in items],
            "key": [it.key for it in items],
        }


class LLMPrefixFinetuning(FinetuningBase):
    """Train the brain adapter (and optionally the encoder) so that a frozen LM predicts the words heard.

    Parameters
    ----------
    encoder : BrainEncoder
    head : LLMPrefixHead
    lm : transformers.PreTrainedModel
        Frozen causal LM (eval mode, no gradient); not saved in checkpoints.
    pad_id : int
        Token id used for padding (masked out).
    mse_warmup_steps : int
        BrainLLM's warm-up: for the first N steps the loss is the MSE between the soft tokens and the mean
        embedding of the prompt tokens (puts the adapter's output in the LM's embedding range), then cross-entropy.
    precision : {'auto', 'bf16', '32'}
        bf16: the LM runs under ``torch.autocast``. auto: bf16 on a CUDA device that supports it, else float32
        (measured on a 2-core x86 CPU without native bf16: autocast made a SmolLM2-135M step 4.5x slower forward and
        24x slower backward).
    text_steps : int
        The text-only stage (a head with ``prefix_from='sentence_embedding'``; CapDec, Nukrai et al. 2022): for the
        first N steps the prefix is the mapper's of the true sentence embedding (the batch's ``embedding``) plus
        Gaussian noise of std ``text_noise`` per dimension; from step N on, of the embedding the brain predicts.
        Validation always scores the brain's prefix.
    text_noise : float
        Standard deviation of that noise per dimension of the unit-norm embedding (CapDec used about 0.13).
    **options
        The keyword arguments of :class:`ieegfm.finetune.base.FinetuningBase` (``freeze``, ``lr``,
        ``encoder_lr_scale``, ``weight_decay``, ``warmup_steps``, ``max_steps``, ``contract``).

    Raises
    ------
    ValueError
        Unknown ``freeze`` or ``precision``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        lm: nn.Module,
        pad_id: int,
        mse_warmup_steps: int = 0,
        precision: str = "auto",
        text_steps: int = 0,
        text_noise: float = 0.05,
        **options,
    ) -> None:
        super().__init__(
            encoder, head, pad_id=pad_id, mse_warmup_steps=mse_warmup_steps, precision=precision,
            text_steps=text_steps, text_noise=text_noise, **options,
        )  # fmt: skip
        if precision not in LLM_PRECISIONS:
            raise ValueError(f"precision must be one of {LLM_PRECISIONS}, got {precision!r}")
        if text_steps and getattr(head, "prefix_from", None) != "sentence_embedding":
            raise ValueError("text_steps > 0 needs a head with prefix_from='sentence_embedding'")
        if text_steps and mse_warmup_steps:
            raise ValueError("text_steps and mse_warmup_steps are two warm-ups: use one")
        if float(text_noise) < 0:
            raise ValueError(f"text_noise must be >= 0, got {text_noise!r}")
        self._lm = [lm]  # a list: frozen, never a submodule (not in state_dict nor in checkpoints)

    @property
    def lm(self) -> nn.Module:
        return self._lm[0]

    def on_fit_start(self) -> None:
        self.lm.to(self.device)

    def _features(self, batch: dict) -> torch.Tensor:
        with self.encoder_context():
            _, feats = self.encoder(batch["brain"].float().to(self.device), batch["subject"].to(self.device),
                                    return_features=True)  # fmt: skip
        return feats

    def prefix(self, batch: dict) -> torch.Tensor:
        """The brain prefix of each item, (batch, n_tokens + 2, embed_dim)."""
        return self.head(self._features(batch))

    @property
    def uses_bf16(self) -> bool:
        """Whether the LM runs under bf16 autocast (``precision``, and for 'auto' the device)."""
        if self.hparams.precision == "auto":
            return self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        return self.hparams.precision == "bf16"

    def _autocast(self):
        if self.uses_bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sequence_losses(self, prefix: torch.Tensor | None, batch: dict) -> torch.Tensor:
        """Mean cross-entropy (nats/token) of each item's continuation, (batch,).

        ``prefix`` None: no brain (``[BOS] prompt continuation``).
        """
        emb = self.lm.get_input_embeddings()
        prompts, conts = batch["prompt_ids"], batch["cont_ids"]
        n_pre = 0 if prefix is None else prefix.shape[1]
        lens = [len(p) + n_pre + len(c) for p, c in zip(prompts, conts)]
        width = max(lens)
        tok = torch.full((len(lens), width), self.hparams.pad_id, dtype=torch.long)
        labels = torch.full_like(tok, -100)
        is_prefix = torch.zeros(len(lens), width, dtype=torch.bool)
        for i, (p, c) in enumerate(zip(prompts, conts)):
            # [BOS] [prefix] [prompt...] [continuation]: BOS is the first prompt id
            seq = [p[0]] + [0] * n_pre + p[1:] + c
            tok[i, : len(seq)] = torch.tensor(seq)
            is_prefix[i, 1 : 1 + n_pre] = True
            labels[i, len(seq) - len(c) : len(seq)] = torch.tensor(c)
        tok, labels = tok.to(self.device), labels.to(self.device)
        mask = (torch.arange(width)[None, :] < torch.tensor(lens)[:, None]).to(self.device)
        inputs = emb(tok)
        if prefix is not None:
            inputs = torch.cat([inputs[:, :1], prefix.to(inputs.dtype), inputs[:, 1 + n_pre :]], dim=1)
        with self._autocast():
            hidden = self.lm.base_model(inputs_embeds=inputs, attention_mask=mask.long()).last_hidden_state
            target = labels[:, 1:]
            scored = target != -100  # the LM head (a vocabulary-wide matmul) only where a continuation token is next
            logits = self.lm.get_output_embeddings()(hidden[:, :-1][scored])
        ce = F.cross_entropy(logits.float(), target[scored], reduction="none")
        per_item = torch.zeros(len(lens), device=ce.device).index_add_(0, scored.nonzero()[:, 0], ce)
        return per_item / scored.sum(1).clamp(min=1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        n = len(batch["cont_ids"])
        if self.global_step < self.hparams.text_steps:
            target = batch["embedding"].to(self.device)
            noisy = target + float(self.hparams.text_noise) * torch.randn_like(target)
            loss = self.sequence_losses(self.head.tokens_from_embedding(noisy), batch).mean()
            self.log("train/text_loss", loss, prog_bar=True, batch_size=n)
            return loss
        if self.global_step < self.hparams.mse_warmup_steps:
            feats = self._features(batch)
            tokens = self.head.soft_tokens(feats)
            emb = self.lm.get_input_embeddings()
            target = torch.stack(
                [emb(torch.tensor(p[1:] or p, device=self.device)).mean(0) for p in batch["prompt_ids"]]
            )
            loss = F.mse_loss(tokens, target.unsqueeze(1).expand_as(tokens).to(tokens.dtype))
            self.log("train/mse_warmup", loss, batch_size=n)
            return loss
        loss = self.sequence_losses(self.prefix(batch), batch).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """``val/loss`` (the brain's prefix) and ``val/loss_vs_permuted``: that loss minus the loss with the prefix
        of the window half a batch away (another sentence, as a rule), per item; 0 for a batch of one."""
        n = len(batch["cont_ids"])
        prefix = self.prefix(batch)
        own = self.sequence_losses(prefix, batch)
        self.log("val/loss", own.mean(), prog_bar=True, batch_size=n)
        other = self.sequence_losses(prefix.roll(n // 2, dims=0), batch) if n > 1 else own
        self.log("val/loss_vs_permuted", (own - other).mean(), batch_size=n)

    @torch.inference_mode()
    def generate(self, batch: dict, condition: str, order: np.ndarray | None = None, num_beams: int = 3,
                 repetition_penalty: float = 1.3) -> list[tuple[list[int], int]]:  # fmt: skip
        """Generated continuations, one item at a time (beam search, greedy when ``num_beams=1``).

        Parameters
        ----------
        batch : dict
            :class:`TokenisedBatch` output.
        condition : {'brain', 'permuted', 'no_brain'}
        order : ndarray of int, optional
            For ``'permuted'``: item ``i`` gets the prefix of item ``order[i]``.
        num_beams : int
        repetition_penalty : float

        Returns
        -------
        list of (token ids, reference word count)
            The new tokens of each item (decode them with the tokenizer, then cut to the reference's word count,
            as BrainLLM does).
        """
        self.eval()
        emb = self.lm.get_input_embeddings()
        prefix = None if condition == "no_brain" else self.prefix(batch)
        if condition == "permuted":
            prefix = prefix[torch.as_tensor(order)]
        out = []
        for i, p in enumerate(batch["prompt_ids"]):
            ids = torch.tensor(p, device=self.device)
            parts = [emb(ids[:1])]
            if prefix is not None:
                parts.append(prefix[i].to(parts[0].dtype))
            parts.append(emb(ids[1:]))
            inputs = torch.cat(parts).unsqueeze(0)
            n_ref = len(batch["continuation"][i].split())
            with self._autocast():
                new = self.lm.generate(
                    inputs_embeds=inputs,
                    attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long, device=self.device),
                    max_new_tokens=max(4, 2 * len(batch["cont_ids"][i])),
                    num_beams=num_beams,
                    repetition_penalty=repetition_penalty,
                    do_sample=False,
                    pad_token_id=self.hparams.pad_id,
                )
            out.append((new[0].tolist(), n_ref))
        return out
