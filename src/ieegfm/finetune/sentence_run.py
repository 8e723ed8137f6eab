"""``ieegfm finetune head=text_embedding``: brain activity of one heard sentence -> a sentence embedding, inverted to
text by retrieval among a candidate bank (Neuro2Semantic, Shams et al., Interspeech 2025, Phase 1).

The run folder is that of every finetuning run (``model.ckpt``, ``config.yaml``, ``metrics.json``, card, logs) plus
``sentence_targets.npz``: the bank's texts and embeddings, computed once per sentence (not per step) with the
target model, and ``decoded.tsv``: every test sentence beside its decoded text. ``metrics.json`` holds the test
metrics at its top level (``mean_relative_rank``, ``n_candidates``, ``permuted_mean_relative_rank``, ``top1_acc``,
``bleu``, ``rouge1``, ``rougeL``, ``wer``, ``cosine``, their controls; see
:func:`ieegfm.evaluation.sentences.score_sentences`),
``val`` the same on validation, ``per_sentence`` and the training figures.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ieegfm.derangement import derangement
from ieegfm.errors import ConfigError
from ieegfm.evaluation.sentences import score_sentences
from ieegfm.finetune.cards import write_card
from ieegfm.finetune.runner import Fitted, HeadRecipe
from ieegfm.finetune.sentence_module import SentenceFinetuning
from ieegfm.io.manifest import Manifest
from ieegfm.losses.clip_triplet import ClipTripletLoss
from ieegfm.text.bank import CandidateBank, build_bank, load_distractors
from ieegfm.text.embed import SentenceEmbedder
from ieegfm.text.sentences import collate_sentences, load_sentences

logger = logging.getLogger(__name__)


class _Collate:
    """Picklable collate: sentence batch plus targets and bank indices."""

    def __init__(self, bank: CandidateBank) -> None:
        self.targets, self.bank = bank.lookup(), bank

    def __call__(self, items):
        batch = collate_sentences(items, self.targets)
        batch["bank_index"] = torch.from_numpy(self.bank.index([it.text for it in items]))
        return batch


def predict(model: SentenceFinetuning, items, collate, batch_size: int = 64) -> np.ndarray:
    """Predicted embeddings of sentence items, shape (n, dim), in item order (eval mode, no gradient)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            out.append(model(collate(items[i : i + batch_size])).float().numpy())
    return np.concatenate(out)


def _write_targets(path: Path, bank: CandidateBank, embedder: SentenceEmbedder) -> None:
    np.savez(
        path,
        texts=np.array(bank.texts, dtype=str),
        embeddings=bank.embeddings,
        n_task=np.int64(bank.n_task),
        model=np.array(embedder.name),
        convention=np.array(embedder.convention),
        fingerprint=np.array(embedder.fingerprint),
    )


def check_vec2text(cfg, embedder: SentenceEmbedder | None = None) -> None:
    """Refuse, before any training, a vec2text request the targets cannot serve (see :func:`vec2text_scores`)."""
    from ieegfm.text.vec2text_shim import CORRECTOR_DIM, require_vec2text

    convention, dim = cfg.text.convention, CORRECTOR_DIM if embedder is None else embedder.dim
    if convention != "t5_mean" or dim != CORRECTOR_DIM:
        raise ConfigError(
            f"text.vec2text={cfg.text.vec2text}: needs text.convention=t5_mean and text.model = the corrector's "
            f"{CORRECTOR_DIM}-d embedder folder (gtr-t5-base), got {convention}, {dim}-d"
        )
    require_vec2text()  # installed?


def vec2text_scores(cfg, embedder: SentenceEmbedder, pred, texts, train_pred, train_texts) -> dict:
    """Invert predicted embeddings to text with a vec2text corrector (Neuro2Semantic's decoder), with its control.

    Parameters
    ----------
    cfg : DictConfig
        ``text.vec2text*`` keys (see :class:`ieegfm.config.TextConfig`).
    embedder : SentenceEmbedder
        The target model: must be the corrector's embedder in the ``t5_mean`` convention (768-d).
    pred : ndarray, shape (n, 768)
        Predicted embeddings of the test sentences.
    texts : list of str
        The test sentences heard.
    train_pred, train_texts
        Training predictions and sentences, for Phase 2 (``text.vec2text_finetune_steps > 0``).

    Returns
    -------
    dict
        ``decoded`` (list of str) and, with the ``vec2text_`` prefix, :func:`ieegfm.evaluation.text.text_metrics`
        of the inverted text; ``vec2text_permuted_*`` the same with the predictions permuted across sentences (a
        derangement); ``vec2text_steps``, ``vec2text_finetune_steps`` and the Phase-2 losses.

    Raises
    ------
    ConfigError
        Targets not ``t5_mean`` / not 768-d, or vec2text not installed.
    InputError
        A folder missing or unusable.
    """
    from ieegfm.evaluation.text import text_metrics
    from ieegfm.text import vec2text_shim

    check_vec2text(cfg, embedder)
    corrector = vec2text_shim.load_corrector(cfg.text.vec2text, t5=cfg.text.vec2text_t5, embedder=cfg.text.model)
    losses = []
    if cfg.text.vec2text_finetune_steps > 0:
        losses = vec2text_shim.finetune_corrector(corrector, train_pred, train_texts, cfg.text.vec2text_finetune_steps,
                                                  cfg.text.vec2text_finetune_lr, cfg.data.batch_size, cfg.seed)  # fmt: skip
    steps, beam = cfg.text.vec2text_steps, cfg.text.vec2text_beam
    decoded = vec2text_shim.invert(corrector, pred, steps, beam)
    perm = derangement(len(texts), np.random.default_rng(cfg.seed))
    permuted = vec2text_shim.invert(corrector, pred[perm], steps, beam)
    return {
        "decoded": decoded,
        **{f"vec2text_{k}": v for k, v in text_metrics(decoded, texts).items()},
        **{f"vec2text_permuted_{k}": v for k, v in text_metrics(permuted, texts).items()},
        "vec2text_steps": steps,
        "vec2text_finetune_steps": len(losses),
        "vec2text_finetune_loss": [losses[0], losses[-1]] if losses else None,
    }


class SentenceRecipe(HeadRecipe):
    """Sentence heads (``head=text_embedding``): the windows of one heard sentence -> its embedding
    (:class:`ieegfm.finetune.sentence_module.SentenceFinetuning`, ``text.alpha`` * CLIP + triplet), selected on the
    validation mean relative rank among the bank, scored on validation and test by retrieval (and vec2text).

    ``text.*`` sets the targets, bank and loss, ``data.batch_size`` the sentences per batch.
    """

    def check(self, cfg) -> None:
        """Raises :class:`ieegfm.errors.ConfigError` for ``objective=regression`` (this head trains with CLIP +
        triplet)."""
        if cfg.objective != "clip":
            raise ConfigError(f"objective={cfg.objective}: head={cfg.head} trains with text.alpha * CLIP + triplet")

    def prepare(self, cfg, manifest: Manifest, pretrained) -> int:
        """The task's sentence items, the target model and the candidate bank (one embedding per sentence).

        Raises
        ------
        ConfigError
            A vec2text request the targets cannot serve (:func:`check_vec2text`).
        InputError
            Task shards without sentence events, a split without sentences, a text model that cannot be loaded.
        """
        window_n = int(pretrained.encoder["n_times"])
        subjects = manifest.subject_index()
        self.sentences = load_sentences(
            cfg.shards, manifest, subjects, manifest.n_chans_max, window_n, cfg.text.tail_s, cfg.text.disjoint
        )
        if cfg.text.vec2text:
            check_vec2text(cfg)
        self.embedder = SentenceEmbedder(cfg.text.model, cfg.text.convention)
        if cfg.text.vec2text:
            check_vec2text(cfg, self.embedder)
        self.bank = build_bank(self.sentences.texts(), load_distractors(cfg.text.distractors), self.embedder.encode)
        self.collate = _Collate(self.bank)
        return window_n

    def write_inputs(self, out: Path) -> None:
        """``sentence_targets.npz``: the bank's texts and embeddings and the target model."""
        _write_targets(out / "sentence_targets.npz", self.bank, self.embedder)

    def head_dims(self, encoder) -> dict:
        """The target model's embedding size."""
        return {"n_features": self.embedder.dim}

    def build_loss(self, cfg) -> ClipTripletLoss:
        """``text.alpha`` * CLIP + triplet (``text.temperature``, ``text.margin``)."""
        return ClipTripletLoss(cfg.text.alpha, cfg.text.temperature, cfg.text.margin)

    def training_info(self, cfg, loss: ClipTripletLoss) -> dict:
        """``text``: the target model, sentence items and loss."""
        self.text_info = {
            "model": self.embedder.name,
            "convention": self.embedder.convention,
            "fingerprint": self.embedder.fingerprint,
            "dim": self.embedder.dim,
            "tail_s": cfg.text.tail_s,
            "disjoint": cfg.text.disjoint,
            "loss": {"alpha": loss.alpha, "temperature": loss.temperature, "margin": loss.margin},
            "batch_size": cfg.data.batch_size,
        }
        return {"text": self.text_info}

    def module(self, cfg, encoder, head, loss, options) -> SentenceFinetuning:
        """:class:`ieegfm.finetune.sentence_module.SentenceFinetuning` validating against the bank."""
        return SentenceFinetuning(encoder, head, loss, self.bank.embeddings, **options)

    def fit_data(self, cfg) -> dict:
        """Training sentences shuffled (seeded by ``seed``), validation sentences in order."""
        items = self.sentences.items
        train = DataLoader(
            items["train"],
            batch_size=cfg.data.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        val = DataLoader(items["val"], batch_size=cfg.data.batch_size, collate_fn=self.collate)
        return {"train_dataloaders": train, "val_dataloaders": val}

    def report(self, cfg, fitted: Fitted, score_test: bool) -> None:
        """Validation and test scores (:func:`ieegfm.evaluation.sentences.score_sentences`, BERTScore and
        vec2text when asked), ``metrics.json``, ``decoded.tsv`` and the card."""
        out, module, trainer, contract = fitted.out, fitted.module, fitted.trainer, fitted.contract
        sentences, bank, collate = self.sentences, self.bank, self.collate
        lookup = bank.lookup()
        scored, preds = {}, {}
        for split in ("val", "test"):
            items = sentences.items[split]
            preds[split] = pred = predict(module, items, collate, cfg.data.batch_size)
            texts = [it.text for it in items]
            scored[split] = score_sentences(
                pred, np.stack([lookup[t] for t in texts]), texts, bank, seed=cfg.seed, keys=[it.key for it in items]
            )
        test = scored["test"]
        if cfg.text.bertscore_model:
            from ieegfm.evaluation.text import bertscore_f1

            decoded = [p["decoded"] for p in test["per_sentence"]]
            test.update(bertscore_f1(decoded, [p["text"] for p in test["per_sentence"]], cfg.text.bertscore_model,
                                     cfg.text.bertscore_layers))  # fmt: skip
        if cfg.text.vec2text:
            train_items = sentences.items["train"]
            inverted = vec2text_scores(
                cfg,
                self.embedder,
                preds["test"],  # already computed for the retrieval scores
                [it.text for it in sentences.items["test"]],
                predict(module, train_items, collate, cfg.data.batch_size),
                [it.text for it in train_items],
            )
            for p, text in zip(test["per_sentence"], inverted.pop("decoded")):
                p["vec2text"] = text
            test.update(inverted)
        per_sentence = test.pop("per_sentence")
        scored["val"].pop("per_sentence")
        metrics = {
            **test,
            "test": dict(test),
            "val": scored["val"],
            "per_sentence": per_sentence,
            "sentences": {
                "train": len(sentences.items["train"]),
                "val": len(sentences.items["val"]),
                "test": len(sentences.items["test"]),
                "not_held_in_full": sentences.skipped_incomplete,
                "removed_as_seen_later": sentences.removed_overlap,
            },
            "text_targets": self.text_info,
            **fitted.figures(self.monitor, cfg.trainer.max_steps),
            "wall_s": time.perf_counter() - fitted.tic,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        with open(out / "decoded.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["key", "relative_rank", "heard", "decoded", *(["vec2text"] if cfg.text.vec2text else [])])
            for p in per_sentence:
                extra = [p["vec2text"]] if cfg.text.vec2text else []
                w.writerow([p["key"], f"{p['relative_rank']:.4f}", p["text"], p["decoded"], *extra])
        write_card(out, contract, metrics, cfg)
        logger.info(
            "finetuned %s: sentence retrieval mean relative rank %.3f (permuted %.3f, p=%.2g; %d candidates, %d test "
            "sentences), top-1 %.3f, BLEU %.1f (random sentence %.1f), %d steps",
            out,
            test["mean_relative_rank"],
            test["permuted_mean_relative_rank"],
            test["p_value"],
            test["n_candidates"],
            test["n_sentences"],
            test["top1_acc"],
            test["bleu"],
            test["random_bleu"],
            trainer.global_step,
        )
