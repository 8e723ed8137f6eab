"""``ieegfm import-n2s``: a Neuro2Semantic pickle -> task shards the text heads train on, plus an untrained encoder.

Each trial becomes one recording block of one pooled subject (``subject=``; the electrodes of all the file's subjects
side by side, as Neuro2Semantic trains on them), cut into contiguous chunks of ``chunk_s`` carrying their sentence
events and words exactly as ``ieegfm pack`` writes them (``events``: onset and duration in s on the chunk's clock,
``trial_type='sentence'``, ``value`` = text; ``words``). Splits are by trial: the last ``split.test`` share of the
trials in file order for test, the share before them for validation (at least one trial each). Channels are scaled
robustly (median/IQR, clamped) with statistics of the training trials only. The band envelopes are used as they
are: no filter, montage or resampling (they are already features at ``sfreq``). There is no audio: ``audio.npy`` is
an empty (0, n_times) array and ``n_features`` is 0, so these shards serve the sentence heads, not pretraining.

No ieegfm checkpoint knows these electrodes, so the importer also writes ``encoder_init.ckpt``: the encoder of
``model.*`` for these shards, initialised and never trained (its contract says so). Finetune from it with
``init=scratch`` (the same architecture, trained on the task alone, as Neuro2Semantic does)::

    ieegfm import-n2s file=data.pkl sfreq=100 out=n2s
    ieegfm finetune head=text_embedding ckpt=n2s/encoder_init.ckpt shards=n2s init=scratch freeze=none
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

import ieegfm
from ieegfm.checkpoint import CONTRACT_KEY, CheckpointContract, shards_provenance, subjects_of
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.manifest import (
    SPLITS,
    Manifest,
    ManifestDict,
    count_chunk,
    new_split_stats,
    read_manifest,
    write_manifest,
)
from ieegfm.io.n2s import read_n2s
from ieegfm.models import build_encoder, encoder_kwargs
from ieegfm.preprocess.scaling import RobustScaler
from ieegfm.shards.writer import ShardWriter

__all__ = ["import_n2s", "split_trials"]

logger = logging.getLogger(__name__)


def split_trials(n: int, val: float, test: float, where: str = "trials") -> list[str]:
    """Split of each of ``n`` trials in file order: train first, then validation, test last (>= 1 trial each).

    Raises
    ------
    InputError
        Fewer than 3 trials.
    """
    if n < 3:
        raise InputError(f"{where}: {n} trial(s); a train, a validation and a test split need at least 3 trials")
    n_test = min(max(1, int(round(test * n))), n - 2)
    n_val = min(max(1, int(round(val * n))), n - 1 - n_test)
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


def import_n2s(cfg) -> Path:
    """Write task shards and an untrained encoder checkpoint from a Neuro2Semantic pickle.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.ImportN2SConfig`.

    Returns
    -------
    manifest : Path

    Raises
    ------
    InputError
        See :func:`ieegfm.io.n2s.read_n2s`; fewer than 3 trials; a split without sentences; an output folder that
        already holds shards.
    ConfigError
        A window longer than the shortest chunk.
    """
    rec = read_n2s(cfg.file, float(cfg.sfreq), list(cfg.bands) if cfg.bands else None,
                   list(cfg.subjects) if cfg.subjects else None, cfg.significant_only)  # fmt: skip
    out = Path(cfg.out)
    if (out / "manifest.json").exists():
        raise InputError(f"out={out}: already holds shards (manifest.json); choose a new folder")
    sfreq, window_n = rec.sfreq, int(round(cfg.window_s * rec.sfreq))
    chunk_n = max(int(round(cfg.chunk_s * sfreq)), window_n)
    if window_n < 8:
        raise ConfigError(f"window_s={cfg.window_s}: {window_n} samples at {sfreq} Hz; the encoder needs >= 8")
    splits = split_trials(len(rec.trials), cfg.split.val, cfg.split.test, f"file={cfg.file}")
    for sp in SPLITS:
        if not any(rec.trials[i].sentences for i, s in enumerate(splits) if s == sp):
            raise InputError(f"file={cfg.file}: the {sp} trials hold no sentence_labels; the text heads need them")
    scaler = RobustScaler()
    for trial, sp in zip(rec.trials, splits):
        if sp == "train":
            scaler.partial_fit(trial.data)
    scaler.fit_finalize()
    out.mkdir(parents=True, exist_ok=True)
    subject = str(cfg.subject)
    shards, stats = {}, {}
    for sp in SPLITS:
        writer = ShardWriter(out, sp, cfg.samples_per_shard)
        st = new_split_stats()
        for i, (trial, split) in enumerate(zip(rec.trials, splits)):
            if split != sp:
                continue
            block = f"{subject}_trial-{i:03d}"
            x = scaler.transform(trial.data).astype(np.float16)
            st["blocks"].append(block)
            for lo in range(0, x.shape[1], chunk_n):
                hi = min(lo + chunk_n, x.shape[1])
                t_lo, t_hi = lo / sfreq, hi / sfreq
                meta = {"subject": subject, "session": "n2s", "source": Path(cfg.file).name, "audio": None,
                        "block": block, "start_time": None, "local_time": None, "tmin": t_lo, "day": 0,
                        "daytime": None, "sfreq": sfreq, "ch_names": rec.ch_names, "split": sp,
                        "events": [{"id": j, "onset": on, "duration": du, "trial_type": "sentence", "value": text}
                                   for j, (on, du, text) in enumerate(trial.sentences)
                                   if on < t_hi and on + du > t_lo],
                        "words": [[round(on, 4), round(du, 4), w] for on, du, w in trial.words
                                  if t_lo <= on < t_hi]}  # fmt: skip
                n_win = (hi - lo) // window_n
                writer.write(f"{block}_{lo:09d}", {"brain.npy": x[:, lo:hi], "audio.npy": np.zeros((0, hi - lo),
                             np.float16), "json": meta}, n_windows=n_win, n_times=hi - lo)  # fmt: skip
                count_chunk(st, (hi - lo) / sfreq / 3600, n_win)  # (no clock: no day, no daytime)
        shards[sp], stats[sp] = writer.close(), st
    manifest: ManifestDict = {
        "ieegfm_version": ieegfm.__version__,
        "format": {
            "brain": "float16 (n_chans, n_times), Neuro2Semantic band envelopes, robust-scaled (median/IQR), clamped",
            "audio": "none: float16 (0, n_times)",
            "keys": ["brain.npy", "audio.npy", "json"],
        },
        "sfreq": sfreq,
        "audio_sfreq": sfreq,
        "timezone": "UTC",
        "window_s": float(cfg.window_s),
        "chunk_s": float(cfg.chunk_s),
        "guard_s": 0.0,
        "n_features": 0,
        "subjects": {
            subject: {
                "index": 0,
                "ch_names": rec.ch_names,
                "n_chans": len(rec.ch_names),
                "picks": rec.ch_names,
                "dropped": {},
                "scaler": scaler.to_dict(),
            }  # fmt: skip
        },
        "n_chans_max": len(rec.ch_names),
        "audio_scaler": None,
        "splits": stats,
        "shards": shards,
        "blocks": {
            f"{subject}_trial-{i:03d}": {
                "split": sp,
                "ieeg": str(cfg.file),
                "audio": None,
                "start_time": None,
                "duration_s": t.data.shape[1] / sfreq,
                "n_sentences": len(t.sentences),
            }
            for i, (t, sp) in enumerate(zip(rec.trials, splits))
        },  # fmt: skip
        "skipped": {},
        "channels_from": None,
        "imported_from": {
            "format": "neuro2semantic",
            "file": str(cfg.file),
            "bands": rec.bands,
            "n_electrodes": rec.n_electrodes,
        },  # fmt: skip
        "config": OmegaConf.to_container(cfg),
        "audio": None,
    }
    write_manifest(out, manifest)
    _write_init_checkpoint(cfg, read_manifest(out), out, window_n)
    logger.info(
        "imported %s: %d trials (%s), %d channels (%d electrodes x %s) at %g Hz -> %s",
        cfg.file, len(rec.trials), ", ".join(f"{sp} {splits.count(sp)}" for sp in SPLITS), len(rec.ch_names),
        rec.n_electrodes, "+".join(rec.bands), sfreq, out,
    )  # fmt: skip
    return out / "manifest.json"


def _write_init_checkpoint(cfg, manifest: Manifest, out: Path, window_n: int) -> Path:
    """``encoder_init.ckpt``: the ``model.*`` encoder for these shards (as read back), seeded, never trained."""
    enc_cfg = encoder_kwargs(cfg.model, n_chans=manifest.n_chans_max, n_subjects=1, n_times=window_n,
                             sfreq=manifest.sfreq, n_features=cfg.model.n_features)  # fmt: skip
    torch.manual_seed(int(cfg.seed))
    try:
        encoder = build_encoder(**enc_cfg)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None
    contract = CheckpointContract(
        kind="init",
        encoder=enc_cfg,
        subjects=subjects_of(manifest),
        data={**shards_provenance(out, manifest), "hours": {}},
        training={"objective": "none: initialised, never trained (finetune with init=scratch)", "seed": cfg.seed},
    )
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    path = out / "encoder_init.ckpt"
    torch.save({"state_dict": state, CONTRACT_KEY: contract.to_dict()}, path)
    return path
