"""``ieegfm finetune head=llm_prefix`` and ``ieegfm generate``: brain windows as soft prompts of a frozen causal LM
(BrainLLM, Ye et al., Communications Biology 2025).

``metrics.json`` holds at its top level the test metrics of the model and of its two controls, always together:

- ``pairwise_accuracy``: share of test items whose continuation has a lower loss with their own brain than with
  the brain of another item (a seeded derangement; ties count 0.5), ``pairwise_p_value`` its one-sided binomial
  sign test (ties dropped); the same against no brain as ``pairwise_accuracy_vs_no_brain``;
- ``loss`` / ``permuted_loss`` / ``no_brain_loss``: mean continuation cross-entropy (nats per token);
- ``bleu1`` .. ``bleu4``, ``rouge1_recall``, ``rougeL_recall``, ``wer`` of generated continuations (beam search,
  repetition penalty, cut to the reference's word count as BrainLLM does), and ``permuted_*``, ``no_brain_*``.

``generated.tsv`` has every generated test item beside its reference; ``step_s`` and ``peak_rss_mb`` record the
cost on the machine that ran it.
"""

from __future__ import annotations

import csv
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch.utils.data import DataLoader

from ieegfm.checkpoint import checkpoint_sha256, encoder_for_shards, load_checkpoint, module_weights
from ieegfm.derangement import derangement
from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.text import text_metrics
from ieegfm.finetune.cards import write_card
from ieegfm.finetune.llm_module import LLMPrefixFinetuning, TokenisedBatch
from ieegfm.finetune.runner import Fitted, HeadRecipe
from ieegfm.heads import build_head
from ieegfm.io.manifest import Manifest, read_manifest
from ieegfm.text.continuations import load_continuations
from ieegfm.text.embed import SentenceEmbedder
from ieegfm.text.llm import load_causal_lm

logger = logging.getLogger(__name__)

TEXT_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1_recall", "rougeL_recall", "wer")


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024**2 if sys.platform == "darwin" else rss / 1024


def pairwise(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Share of items with ``a < b`` (ties 0.5) and the one-sided binomial sign-test p-value (ties dropped)."""
    wins, losses = int(np.sum(a < b)), int(np.sum(a > b))
    acc = (wins + 0.5 * (len(a) - wins - losses)) / len(a)
    p = float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
    return float(acc), p


def score_continuations(module: LLMPrefixFinetuning, items, collate: TokenisedBatch, seed: int = 0,
                        n_generate: int | None = None, num_beams: int = 3, repetition_penalty: float = 1.3,
                        batch_size: int = 16) -> tuple[dict, list[dict]]:  # fmt: skip
    """Test metrics of a trained LLM-prefix model with its permuted-brain and no-brain controls.

    Parameters
    ----------
    module : LLMPrefixFinetuning
    items : list of ContinuationItem
    collate : TokenisedBatch
    seed : int
        Seed of the derangement (the permuted-brain control).
    n_generate : int, optional
        Items generated for the text metrics (the first ones); default all.
    num_beams, repetition_penalty
        Generation settings.
    batch_size : int

    Returns
    -------
    metrics : dict
        See the module docstring.
    rows : list of dict
        Per item: key, prompt, reference, generated (brain, permuted, no brain), losses.
    """
    module.eval()
    n = len(items)
    if n < 2:
        raise InputError(f"the test split has {n} window(s) with words; the controls need at least 2")
    order = derangement(n, np.random.default_rng(seed))
    losses = {"brain": [], "permuted": [], "no_brain": []}
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            batch = collate(items[i : i + batch_size])
            losses["brain"].append(module.sequence_losses(module.prefix(batch), batch))
            other = collate([items[j] for j in order[i : i + batch_size]])
            losses["permuted"].append(module.sequence_losses(module.prefix(other), batch))
            losses["no_brain"].append(module.sequence_losses(None, batch))
    loss = {k: torch.cat(v).float().cpu().numpy() for k, v in losses.items()}
    acc, p = pairwise(loss["brain"], loss["permuted"])
    acc_nb, p_nb = pairwise(loss["brain"], loss["no_brain"])
    metrics = {
        "pairwise_accuracy": acc,
        "pairwise_p_value": p,
        "pairwise_accuracy_vs_no_brain": acc_nb,
        "pairwise_p_value_vs_no_brain": p_nb,
        "n_items": n,
        "loss": float(loss["brain"].mean()),
        "permuted_loss": float(loss["permuted"].mean()),
        "no_brain_loss": float(loss["no_brain"].mean()),
    }
    n_gen = n if n_generate is None else min(n, int(n_generate))
    gen_items = items[:n_gen]
    texts: dict[str, list[str]] = {}
    for cond in ("brain", "permuted", "no_brain"):
        texts[cond] = []
        for i in range(0, n_gen, batch_size):
            batch = collate(gen_items[i : i + batch_size])
            if cond == "permuted":  # the prefix of the deranged item, computed from its own window
                batch_brain = collate([items[j] for j in order[i : min(i + batch_size, n_gen)]])
                batch = {**batch, "brain": batch_brain["brain"], "subject": batch_brain["subject"]}
            for ids, n_ref in module.generate(batch, "no_brain" if cond == "no_brain" else "brain",
                                              num_beams=num_beams, repetition_penalty=repetition_penalty):  # fmt: skip
                words = collate.tokenizer.decode(ids, skip_special_tokens=True).split()
                texts[cond].append(" ".join(words[:n_ref]))
    refs = [it.continuation for it in gen_items]
    for cond, prefix in (("brain", ""), ("permuted", "permuted_"), ("no_brain", "no_brain_")):
        m = text_metrics(texts[cond], refs)
        metrics.update({f"{prefix}{k}": m[k] for k in TEXT_KEYS})
    metrics["n_generated"] = n_gen
    rows = [
        {
            "key": it.key,
            "prompt": it.prompt,
            "reference": it.continuation,
            "generated": texts["brain"][i] if i < n_gen else None,
            "generated_permuted": texts["permuted"][i] if i < n_gen else None,
            "generated_no_brain": texts["no_brain"][i] if i < n_gen else None,
            "loss": float(loss["brain"][i]),
            "permuted_loss": float(loss["permuted"][i]),
            "no_brain_loss": float(loss["no_brain"][i]),
        }
        for i, it in enumerate(items)
    ]
    return metrics, rows


def _read_align_ckpt(path, pretrained, embedder: SentenceEmbedder, window_n: int) -> tuple[dict, object]:
    """The weights and contract of ``llm.align_ckpt``: a finetuned text-embedding head into ``embedder``'s space,
    on the encoder architecture and window of ``ckpt``.

    Raises
    ------
    InputError
        Not a finetuned text_embedding checkpoint, another text model or encoder, or another window.
    """
    state, contract = load_checkpoint(path)
    where = f"llm.align_ckpt={path}"
    if contract.kind != "finetune" or (contract.head or {}).get("name") != "text_embedding":
        raise InputError(f"{where}: not a finetuned text_embedding checkpoint (a run's model.ckpt)")
    text = (contract.training or {}).get("text") or {}
    if text.get("fingerprint") != embedder.fingerprint or int(text.get("dim", -1)) != embedder.dim:
        raise InputError(
            f"{where}: trained against text model {text.get('model')!r} ({text.get('dim')}-d), not this run's "
            f"text.model {embedder.name!r} ({embedder.dim}-d): the mapper reads the embedding space it predicts"
        )
    mine = {k: v for k, v in contract.encoder.items() if k not in ("n_subjects", "n_chans")}
    theirs = {k: v for k, v in pretrained.encoder.items() if k not in ("n_subjects", "n_chans")}
    if mine != theirs or int(contract.encoder["n_times"]) != window_n:
        raise InputError(f"{where}: its encoder differs from ckpt's (finetune the text head from the same ckpt)")
    return state, contract


class LanguageModelRecipe(HeadRecipe):
    """The LLM-prefix head (``head=llm_prefix``): brain windows as soft prompts of a frozen causal LM
    (:class:`ieegfm.finetune.llm_module.LLMPrefixFinetuning`), selected on validation (``llm.monitor``: the loss,
    or the loss minus the permuted-brain loss), scored on test with its permuted-brain and no-brain controls
    (:func:`score_continuations`).

    ``llm.*`` names the LM, the text items and generation, ``data.batch_size`` the windows per batch.
    """

    monitor = "val/loss"  # llm.monitor (set by prepare)

    def check(self, cfg) -> None:
        """Raises :class:`ieegfm.errors.ConfigError` for ``objective=regression`` (this head trains on the
        continuation cross-entropy), and for ``llm.align_ckpt`` / ``llm.text_steps`` without
        ``head_options.prefix_from=sentence_embedding``, both warm-ups at once, a negative step count or noise."""
        if cfg.objective != "clip":
            raise ConfigError(f"objective={cfg.objective}: head={cfg.head} trains on the continuation cross-entropy")
        llm, via = cfg.llm, cfg.head_options.prefix_from
        if int(llm.text_steps) < 0 or float(llm.text_noise) < 0:
            raise ConfigError(f"llm.text_steps={llm.text_steps} llm.text_noise={llm.text_noise}: expected >= 0")
        for key, used in (("llm.align_ckpt", llm.align_ckpt is not None), ("llm.text_steps", int(llm.text_steps) > 0)):
            if used and via != "sentence_embedding":
                raise ConfigError(f"{key}: needs head_options.prefix_from=sentence_embedding (got {via})")
        if int(llm.text_steps) > 0 and int(llm.mse_warmup_steps) > 0:
            raise ConfigError("llm.text_steps and llm.mse_warmup_steps are two warm-ups: set one of them to 0")

    def prepare(self, cfg, manifest: Manifest, pretrained) -> int:
        """The task's continuation items and the LM with its tokenizer.

        Raises
        ------
        InputError
            Shards without words, an LM folder that cannot be loaded.
        """
        window_n = int(pretrained.encoder["n_times"])
        subjects = manifest.subject_index()
        self.items = load_continuations(cfg.shards, manifest, subjects, manifest.n_chans_max, window_n,
                                        cfg.llm.prompt_words, cfg.llm.lag_s, cfg.llm.disjoint)  # fmt: skip
        self.lm, tokenizer, self.lm_name = load_causal_lm(cfg.llm.model)
        self.embedder, self.align, embeddings = None, None, None
        if cfg.head_options.prefix_from == "sentence_embedding":
            self.embedder = SentenceEmbedder(cfg.text.model, cfg.text.convention)
            texts = sorted({it.sentence or it.continuation for v in self.items.values() for it in v})
            embeddings = dict(zip(texts, self.embedder.encode(texts)))
            if cfg.llm.align_ckpt is not None:
                self.align = _read_align_ckpt(cfg.llm.align_ckpt, pretrained, self.embedder, window_n)
        self.manifest, self.window_n = manifest, window_n
        self.monitor = f"val/{cfg.llm.monitor}"
        self.collate = TokenisedBatch(tokenizer, embeddings)
        return window_n

    def head_dims(self, encoder) -> dict:
        """The LM's input embedding size (and, for the sentence-embedding prefix, the text model's)."""
        dims = {"n_features": int(self.lm.get_input_embeddings().embedding_dim)}
        if self.embedder is not None:
            dims["embed_dim"] = self.embedder.dim
        return dims

    def training_info(self, cfg, loss) -> dict:
        """``llm``: the LM (name, folder, embedding size, precision) and the text items."""
        self.llm_info = {
            "model": self.lm_name,
            "path": None if cfg.llm.model is None else str(Path(str(cfg.llm.model)).resolve()),
            "embed_dim": int(self.lm.get_input_embeddings().embedding_dim),
            "prompt_words": cfg.llm.prompt_words,
            "lag_s": cfg.llm.lag_s,
            "disjoint": cfg.llm.disjoint,
            "items": {sp: len(v) for sp, v in self.items.items()},
            "precision": cfg.llm.precision,
            "prefix_from": cfg.head_options.prefix_from,
        }
        if self.embedder is not None:
            self.llm_info["text_model"] = {"model": self.embedder.name, "convention": self.embedder.convention,
                                           "fingerprint": self.embedder.fingerprint, "dim": self.embedder.dim}  # fmt: skip
            self.llm_info.update(text_steps=int(cfg.llm.text_steps), text_noise=float(cfg.llm.text_noise))
            self.llm_info["align_ckpt"] = None if self.align is None else {
                "path": str(cfg.llm.align_ckpt), "sha256": checkpoint_sha256(cfg.llm.align_ckpt)}  # fmt: skip
        return {"llm": self.llm_info}

    def module(self, cfg, encoder, head, loss, options) -> LLMPrefixFinetuning:
        """:class:`ieegfm.finetune.llm_module.LLMPrefixFinetuning` (``llm.mse_warmup_steps``, ``llm.precision``,
        ``llm.text_steps``, ``llm.text_noise``); with ``llm.align_ckpt``, its encoder and text-embedding head are
        loaded into the encoder and the head's ``align``."""
        if self.align is not None:
            state, contract = self.align
            where = f"llm.align_ckpt={cfg.llm.align_ckpt} shards={cfg.shards}"
            aligned = encoder_for_shards(contract, module_weights(state, "encoder"), self.manifest, where,
                                         cfg.channels, self.window_n, new_subjects=True)  # fmt: skip
            encoder.load_state_dict(aligned.state_dict())
            head.align.load_state_dict(module_weights(state, "head"))
        return LLMPrefixFinetuning(
            encoder,
            head,
            self.lm,
            pad_id=self.collate.tokenizer.pad_token_id,
            **options,
            mse_warmup_steps=cfg.llm.mse_warmup_steps,
            precision=cfg.llm.precision,
            text_steps=int(cfg.llm.text_steps),
            text_noise=float(cfg.llm.text_noise),
        )

    def fit_data(self, cfg) -> dict:
        """Training items shuffled (seeded by ``seed``), validation items in order."""
        train = DataLoader(self.items["train"], batch_size=cfg.data.batch_size, shuffle=True,
                           collate_fn=self.collate, generator=torch.Generator().manual_seed(cfg.seed))  # fmt: skip
        val = DataLoader(self.items["val"], batch_size=cfg.data.batch_size, collate_fn=self.collate)
        return {"train_dataloaders": train, "val_dataloaders": val}

    def report(self, cfg, fitted: Fitted, score_test: bool) -> None:
        """Test scores with controls (:func:`score_continuations`), ``metrics.json``, ``generated.tsv``, the card."""
        out, module, contract, items = fitted.out, fitted.module, fitted.contract, self.items
        eval_tic = time.perf_counter()
        test, rows = score_continuations(module, items["test"], self.collate, seed=cfg.seed,
                                         n_generate=cfg.llm.n_generate, num_beams=cfg.llm.num_beams,
                                         repetition_penalty=cfg.llm.repetition_penalty)  # fmt: skip
        metrics = {
            **test,
            "test": dict(test),
            "items": {sp: len(v) for sp, v in items.items()},
            "llm": self.llm_info,
            **fitted.figures(self.monitor, cfg.trainer.max_steps),
            "eval_s": time.perf_counter() - eval_tic,
            "peak_rss_mb": _peak_rss_mb(),
            "bf16": module.uses_bf16,
            "torch_threads": torch.get_num_threads(),
            "wall_s": time.perf_counter() - fitted.tic,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        with open(out / "generated.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["key", "prompt", "reference", "generated", "generated_permuted", "generated_no_brain"])
            for r in rows:
                if r["generated"] is not None:
                    w.writerow([r["key"], r["prompt"], r["reference"], r["generated"], r["generated_permuted"],
                                r["generated_no_brain"]])  # fmt: skip
        write_card(out, contract, metrics, cfg)
        logger.info(
            "finetuned %s: pairwise accuracy %.3f vs permuted brain (p=%.2g, %d items), %.3f vs no brain; loss %.3f "
            "(permuted %.3f, no brain %.3f); BLEU-1 %.3f (permuted %.3f, no brain %.3f); %.2f s/step, peak RSS %.0f MB",
            out, test["pairwise_accuracy"], test["pairwise_p_value"], test["n_items"],
            test["pairwise_accuracy_vs_no_brain"], test["loss"], test["permuted_loss"], test["no_brain_loss"],
            test["bleu1"], test["permuted_bleu1"], test["no_brain_bleu1"], metrics["s_per_step"],
            metrics["peak_rss_mb"],
        )  # fmt: skip


def generate(cfg) -> list[dict]:
    """``ieegfm generate``: reference vs generated continuations of a finetuned LLM-prefix checkpoint.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.GenerateConfig` (``ckpt``: a run's ``model.ckpt``; ``shards``; ``n``; ``split``).

    Returns
    -------
    rows : list of dict
        ``reference``, ``generated``, ``generated_permuted``, ``generated_no_brain``, ``prompt`` of the first ``n``
        items of the split.

    Raises
    ------
    InputError
        Not an LLM-prefix checkpoint, shards that do not match it, the LM it names missing.
    """
    state, contract = load_checkpoint(cfg.ckpt)
    if contract.kind != "finetune" or (contract.head or {}).get("name") != "llm_prefix":
        raise InputError(f"ckpt={cfg.ckpt}: not a finetuned llm_prefix checkpoint (a run's model.ckpt)")
    info = contract.training["llm"]
    manifest = read_manifest(cfg.shards)
    where = f"ckpt={cfg.ckpt} shards={cfg.shards}"
    window_n = int(contract.encoder["n_times"])
    subjects = manifest.subject_index()
    items = load_continuations(cfg.shards, manifest, subjects, manifest.n_chans_max, window_n,
                               info["prompt_words"], info["lag_s"])[cfg.split][: cfg.n]  # fmt: skip
    lm, tokenizer, _ = load_causal_lm(info["path"])
    encoder = encoder_for_shards(contract, module_weights(state, "encoder"), manifest, where, cfg.channels, window_n)
    head = build_head(**dict(contract.head))
    head.load_state_dict(module_weights(state, "head"))
    module = LLMPrefixFinetuning(encoder, head, lm, pad_id=tokenizer.pad_token_id, precision=info["precision"])
    collate = TokenisedBatch(tokenizer)
    _, rows = score_continuations(module, items, collate, seed=cfg.seed, num_beams=cfg.num_beams,
                                  repetition_penalty=cfg.repetition_penalty)  # fmt: skip
    return rows
