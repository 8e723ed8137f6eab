"""``ieegfm finetune head=text_embedding``: brain activity of one heard sentence -> a sentence embedding, inverted to
text by retrieval among a candidate bank (Neuro2Semantic, Shams et al., Interspeech 2025, Phase 1).

The run folder is that of every finetuning run (``model.ckpt``, ``config.yaml``, ``metrics.json``, card, logs) plus
``sentence_targets.npz``: the bank's texts and embeddings, computed once per sentence (not per step) with the
target model, and ``decoded.tsv``: every test sentence beside its decoded text. ``metrics.json`` holds the test
metrics at its top level (``mean_relative_rank``, ``n_candidates``, ``permuted_mean_relative_rank``, ``top1_acc``,
``bleu``, ``rouge1``, ``rougeL``, ``wer``, ``cosine``, their controls; see :func:`ieegfm.text.bank.score_sentences`),
``val`` the same on validation, ``per_sentence`` and the training figures.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from ieegfm.checkpoint import CONTRACT_KEY, encoder_for_shards, load_checkpoint, module_weights
from ieegfm.data import read_manifest
from ieegfm.derangement import derangement
from ieegfm.errors import ConfigError
from ieegfm.finetune.cards import write_card
from ieegfm.finetune.run import encoder_lr_scale, finetune_contract, finetune_trainer, head_options, run_folder
from ieegfm.finetune.sentence_module import SentenceFinetuning
from ieegfm.heads import build_head
from ieegfm.losses.clip_triplet import ClipTripletLoss
from ieegfm.text.bank import CandidateBank, build_bank, load_distractors, score_sentences
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


def finetune_sentences(cfg) -> Path:
    """Train the text-embedding head on a patient's task sentences; select on validation, report on test.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.FinetuneConfig` with ``head=text_embedding``; ``text.*`` sets the targets, bank and
        loss, ``data.batch_size`` the sentences per batch.

    Returns
    -------
    run : Path

    Raises
    ------
    ConfigError
        ``objective=regression`` (this head trains with CLIP + triplet), a bad head option or loss value.
    InputError
        Checkpoint or shards unusable (see :func:`ieegfm.finetune.run.finetune`), task shards without sentence
        events, a split without sentences, a text model that cannot be loaded.
    """
    if cfg.objective != "clip":
        raise ConfigError(f"objective={cfg.objective}: head={cfg.head} trains with text.alpha * CLIP + triplet")
    tic = time.perf_counter()
    manifest = read_manifest(cfg.shards)
    state, pretrained = load_checkpoint(cfg.ckpt)
    where = f"ckpt={cfg.ckpt} shards={cfg.shards}"
    window_n = int(pretrained.encoder["n_times"])
    subjects = {s: int(v["index"]) for s, v in manifest["subjects"].items()}
    sentences = load_sentences(
        cfg.shards, manifest, subjects, int(manifest["n_chans_max"]), window_n, cfg.text.tail_s, cfg.text.disjoint
    )
    if cfg.text.vec2text:
        check_vec2text(cfg)
    embedder = SentenceEmbedder(cfg.text.model, cfg.text.convention)
    if cfg.text.vec2text:
        check_vec2text(cfg, embedder)
    bank = build_bank(sentences.texts(), load_distractors(cfg.text.distractors), embedder.encode)
    out = run_folder(cfg, manifest)
    out.mkdir(parents=True, exist_ok=True)
    _write_targets(out / "sentence_targets.npz", bank, embedder)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    weights = module_weights(state, "encoder") if cfg.init == "pretrained" else None
    encoder = encoder_for_shards(pretrained, weights, manifest, where, cfg.channels, window_n)
    head_cfg = {"name": cfg.head, "n_hidden": encoder.n_hidden, "n_features": embedder.dim, **head_options(cfg)}
    try:
        head = build_head(**head_cfg)
        loss = ClipTripletLoss(cfg.text.alpha, cfg.text.temperature, cfg.text.margin)
    except ValueError as err:
        raise ConfigError(f"head={cfg.head}: {err}") from None
    text_info = {
        "model": embedder.name,
        "convention": embedder.convention,
        "fingerprint": embedder.fingerprint,
        "dim": embedder.dim,
        "tail_s": cfg.text.tail_s,
        "disjoint": cfg.text.disjoint,
        "loss": {"alpha": loss.alpha, "temperature": loss.temperature, "margin": loss.margin},
        "batch_size": cfg.data.batch_size,
    }
    contract = finetune_contract(cfg, pretrained, manifest, head_cfg, text=text_info)
    module = SentenceFinetuning(
        encoder,
        head,
        loss,
        bank.embeddings,
        freeze=cfg.freeze,
        lr=cfg.optim.lr,
        encoder_lr_scale=encoder_lr_scale(cfg),
        weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_steps,
        max_steps=cfg.trainer.max_steps,
        contract=contract,
    )
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    collate = _Collate(bank)
    train = DataLoader(
        sentences.items["train"],
        batch_size=cfg.data.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    val = DataLoader(sentences.items["val"], batch_size=cfg.data.batch_size, collate_fn=collate)
    trainer, best = finetune_trainer(cfg, out)
    fit_tic = time.perf_counter()
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    fit_s = time.perf_counter() - fit_tic
    if not trainer.is_global_zero:
        return out
    if best.best_model_path:
        module.load_state_dict(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
    slim = {k: v for k, v in module.state_dict().items() if k.startswith(("encoder.", "head."))}
    torch.save({"state_dict": slim, CONTRACT_KEY: contract}, out / "model.ckpt")
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
            embedder,
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
        "text_targets": text_info,
        "best_val_mean_relative_rank": float(best.best_model_score) if best.best_model_score is not None else None,
        "global_step": trainer.global_step,
        "stopped_early": trainer.global_step < cfg.trainer.max_steps,
        "fit_s": fit_s,
        "s_per_step": fit_s / max(trainer.global_step, 1),
        "wall_s": time.perf_counter() - tic,
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
    return out
