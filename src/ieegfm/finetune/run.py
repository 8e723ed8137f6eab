"""``ieegfm finetune``: a head on a pretrained (or freshly initialised) encoder, trained on a patient's task data.

The run folder keeps what a lab needs for years: ``model.ckpt`` (weights and the checkpoint contract, loadable with
``weights_only=True``), ``config.yaml`` (resolved), ``metrics.json`` (validation and test metrics with controls,
per-window test ranks), ``card.json`` + ``card.md``, ``checkpoints/`` and TensorBoard logs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from ieegfm.checkpoint import (
    CONTRACT_KEY,
    CheckpointContract,
    encoder_config_for,
    encoder_for_shards,
    load_checkpoint,
    module_weights,
    shards_provenance,
    subjects_of,
)
from ieegfm.config import OPTION_GROUPS
from ieegfm.data import ShardDataModule, read_manifest
from ieegfm.errors import ConfigError, InputError
from ieegfm.evaluation.evaluate import score_split
from ieegfm.finetune.base import resolve_encoder_lr_scale
from ieegfm.finetune.cards import write_card
from ieegfm.finetune.module import Finetuning
from ieegfm.heads import HEADS, LANGUAGE_MODEL_HEADS, SENTENCE_HEADS, build_head
from ieegfm.io.checksum import sha256_file
from ieegfm.io.manifest import SPLITS
from ieegfm.losses import build_loss

logger = logging.getLogger(__name__)


def task_label(cfg) -> str:
    """The task name of the run layout: ``cfg.task``, else the task shards' folder name."""
    return str(cfg.task or Path(str(cfg.shards)).resolve().name)


def run_folder(cfg, manifest: dict) -> Path:
    """``cfg.out``, else ``runs_dir/<subject>/<task>/<head>/<init>-<freeze>-seed<N>`` (subjects joined by ``+``)."""
    if cfg.out:
        return Path(cfg.out)
    subject = "+".join(sorted(manifest["subjects"]))
    name = f"{cfg.init}-{cfg.freeze}-seed{cfg.seed}"
    return Path(cfg.runs_dir) / subject / task_label(cfg) / cfg.head / name


def head_options(cfg) -> dict:
    """The ``head_options.*`` that the selected head takes (:data:`ieegfm.config.OPTION_GROUPS`)."""
    takes = OPTION_GROUPS["finetune"]["head"][cfg.head]
    return {k: v for k, v in OmegaConf.to_container(cfg.head_options).items() if k in takes}


def encoder_lr_scale(cfg, log: bool = True) -> float | None:
    """The encoder's learning-rate scale of a finetuning run (:func:`~ieegfm.finetune.base.resolve_encoder_lr_scale`:
    ``optim.encoder_lr_scale``, else 0.1 for pretrained weights and 1.0 for ``init=scratch``), said in the log.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.FinetuneConfig` (``init``, ``freeze``, ``optim``).
    log : bool
        Log the learning rate the encoder trains at (a warning for a scratch encoder below the full rate).

    Returns
    -------
    scale : float | None
        ``None`` when the encoder is frozen.

    Raises
    ------
    ConfigError
        Unknown ``init`` or ``freeze``, or a scale that is not positive.
    """
    given = cfg.optim.encoder_lr_scale
    try:
        scale = resolve_encoder_lr_scale(cfg.init, cfg.freeze, given)
    except ValueError as err:
        raise ConfigError(f"init={cfg.init} freeze={cfg.freeze} optim.encoder_lr_scale={given}: {err}") from None
    if not log:
        return scale
    if scale is None:
        if given is not None:
            logger.info("freeze=encoder: optim.encoder_lr_scale=%s is not used (the encoder is frozen)", given)
    elif cfg.init == "scratch" and given is None:
        logger.info(
            "init=scratch: the randomly initialised encoder trains at the full learning rate (lr %g, "
            "encoder_lr_scale 1.0; the 0.1 default protects pretrained weights only)",
            cfg.optim.lr,
        )
    elif cfg.init == "scratch" and scale != 1.0:
        logger.warning(
            "init=scratch with optim.encoder_lr_scale=%g: a randomly initialised encoder at %g x the head's "
            "learning rate (a handicapped task-only baseline; the default for init=scratch is 1.0)",
            scale,
            scale,
        )
    else:
        logger.info("%s encoder at lr %g x %g", cfg.init, cfg.optim.lr, scale)
    return scale


def task_datamodule(cfg, manifest: dict, window_s: float, pooling: str) -> ShardDataModule:
    """The task shards' data module, checked to have windows in every split.

    Raises
    ------
    InputError
        A split without windows (names it: finetuning needs train, val for selection and test for reporting).
    """
    dm = ShardDataModule(
        cfg.shards,
        batch_size=cfg.data.batch_size,
        window_s=window_s,
        num_workers=cfg.data.num_workers,
        shuffle_buffer=cfg.data.shuffle_buffer,
        seed=cfg.seed,
        pin_memory=torch.cuda.is_available(),
        audio_pooling="mean" if pooling == "mean" else None,
    )
    dm.check_pooling(pooling)
    empty = [sp for sp in SPLITS if dm.n_windows(sp) == 0]
    if empty:
        raise InputError(
            f"shards={cfg.shards}: the task's {', '.join(empty)} split(s) have no windows; finetuning needs train, "
            "val (early stopping) and test (reporting): pack the task with more blocks or other split.val/split.test"
        )
    return dm


def finetune_contract(cfg, pretrained: CheckpointContract, manifest: dict, head_cfg: dict, **training) -> dict:
    """The checkpoint contract of a finetuned model (``kind='finetune'``): encoder, subjects and channels, task data
    provenance, head config, the pretraining checkpoint it came from (path, sha256, its data) and how it was
    trained (init, freeze, objective, seed, task, channels, learning rate and encoder scale, plus ``training``)."""
    return CheckpointContract(
        kind="finetune",
        encoder=encoder_config_for(pretrained, manifest),
        subjects=subjects_of(manifest),
        data=shards_provenance(cfg.shards, manifest),
        head=head_cfg,
        pretrained={
            "path": str(cfg.ckpt),
            "sha256": sha256_file(cfg.ckpt),
            "kind": pretrained.kind,
            "data": pretrained.data,
            "used": cfg.init == "pretrained",  # scratch: only its architecture and channel layout were used
        },
        training={
            "init": cfg.init,
            "freeze": cfg.freeze,
            "objective": cfg.objective,
            "seed": cfg.seed,
            "task": task_label(cfg),
            "channels": cfg.channels,
            "lr": float(cfg.optim.lr),
            "encoder_lr_scale": resolve_encoder_lr_scale(cfg.init, cfg.freeze, cfg.optim.encoder_lr_scale),
            **training,
        },
    ).to_dict()


def finetune_trainer(cfg, out: Path, monitor: str = "val/mean_relative_rank") -> tuple[L.Trainer, ModelCheckpoint]:
    """The Lightning trainer of a finetuning run: validation every ``trainer.val_check_interval`` steps, the best
    ``monitor`` (lower is better) kept (``out/checkpoints``), early stopping after ``trainer.patience`` validations
    without improvement, TensorBoard logs under ``out/tb``."""
    t = cfg.trainer
    best = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best-step{step}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="min",
        save_top_k=1,
    )
    stop = EarlyStopping(monitor=monitor, mode="min", patience=t.patience, check_on_train_epoch_end=False)
    trainer = L.Trainer(
        max_steps=t.max_steps,
        devices=t.devices,
        accelerator=t.accelerator,
        strategy=t.strategy,
        precision=t.precision,
        default_root_dir=str(out),
        logger=TensorBoardLogger(str(out), name="tb", version=""),
        callbacks=[best, stop],
        val_check_interval=min(t.val_check_interval, t.max_steps),
        check_val_every_n_epoch=None,
        log_every_n_steps=t.log_every_n_steps,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=t.enable_progress_bar,
    )
    return trainer, best


def finetune(cfg, score_test: bool = True) -> Path:
    """Finetune a head (and optionally the encoder) on task shards; select on val, report on test.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.FinetuneConfig`.
    score_test : bool
        Score the selected weights on the test split and write the card (:func:`score_test_split`). ``False``
        (linear-type heads only): train and select on validation only, leaving the test split unread, as a
        hyper-parameter search must (``ieegfm compare``'s learning-rate grid).

    Returns
    -------
    run : Path
        The run folder (see the module docstring).

    Raises
    ------
    ConfigError
        Unknown head.
    InputError
        Checkpoint missing, unsafe or not ieegfm's; task shards whose subjects or channels do not match it (see
        :func:`ieegfm.checkpoint.encoder_for_shards`); an empty task split.

    References
    ----------
    arXiv 2512.15830: pretrained on ambient audio, finetuned per patient on an audiobook-listening task.
    """
    if cfg.head not in HEADS:
        raise ConfigError(f"head={cfg.head!r}: expected one of {sorted(HEADS)}")
    encoder_lr_scale(cfg, log=False)  # a bad init/freeze/scale fails before any work
    if not score_test and cfg.head in SENTENCE_HEADS + LANGUAGE_MODEL_HEADS:
        raise ConfigError(f"head={cfg.head}: a validation-only run is supported for audio-target heads only")
    if cfg.head in SENTENCE_HEADS:
        from ieegfm.finetune.sentence_run import finetune_sentences

        return finetune_sentences(cfg)
    if cfg.head in LANGUAGE_MODEL_HEADS:
        from ieegfm.finetune.llm_run import finetune_llm

        return finetune_llm(cfg)
    tic = time.perf_counter()
    manifest = read_manifest(cfg.shards)
    if int(manifest["n_features"]) == 0:
        raise InputError(
            f"shards={cfg.shards}: no audio targets (brain-only shards, e.g. from import-n2s); head={cfg.head} "
            "trains against audio: use head=text_embedding or llm_prefix"
        )
    state, pretrained = load_checkpoint(cfg.ckpt)
    where = f"ckpt={cfg.ckpt} shards={cfg.shards}"
    enc = pretrained.encoder
    dm = task_datamodule(cfg, manifest, enc["n_times"] / enc["sfreq"], enc["pooling"])
    out = run_folder(cfg, manifest)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    weights = module_weights(state, "encoder") if cfg.init == "pretrained" else None
    encoder = encoder_for_shards(pretrained, weights, manifest, where, cfg.channels, dm.window_n)
    head_cfg = {
        "name": cfg.head,
        "n_hidden": encoder.n_hidden,
        "n_features": encoder.n_features,
        "pooling": encoder.pooling,
        **head_options(cfg),
    }
    try:
        head = build_head(**head_cfg)
    except ValueError as err:
        raise ConfigError(f"head={cfg.head}: {err}") from None
    scale = encoder_lr_scale(cfg)
    contract = finetune_contract(cfg, pretrained, manifest, head_cfg)
    module = Finetuning(
        encoder,
        head,
        build_loss("clip"),
        objective=cfg.objective,
        freeze=cfg.freeze,
        lr=cfg.optim.lr,
        encoder_lr_scale=scale,
        weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_steps,
        max_steps=cfg.trainer.max_steps,
        contract=contract,
    )
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    trainer, best = finetune_trainer(cfg, out)
    fit_tic = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - fit_tic
    if not trainer.is_global_zero:
        return out
    if best.best_model_path:  # the selected (best validation rank) weights
        module.load_state_dict(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
    slim = {k: v for k, v in module.state_dict().items() if k.startswith(("encoder.", "head."))}
    torch.save({"state_dict": slim, CONTRACT_KEY: contract}, out / "model.ckpt")
    metrics = {
        "best_val_mean_relative_rank": float(best.best_model_score) if best.best_model_score is not None else None,
        "global_step": trainer.global_step,
        "stopped_early": trainer.global_step < cfg.trainer.max_steps,
        "fit_s": fit_s,
        "s_per_step": fit_s / max(trainer.global_step, 1),
        "train_windows": dm.n_windows("train"),
        "lr": float(cfg.optim.lr),
        "encoder_lr_scale": scale,
        "wall_s": time.perf_counter() - tic,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if score_test:
        score_test_split(out, cfg)
    else:
        logger.info(
            "finetuned %s: best val mean relative rank %.3f, %d steps (test split not read)",
            out,
            metrics["best_val_mean_relative_rank"] or float("nan"),
            trainer.global_step,
        )
    return out


def score_test_split(run: Path, cfg) -> dict:
    """Score a finished run's selected weights (``run/model.ckpt``) on the test split; complete its ``metrics.json``
    (``test``: summary metrics with controls, ``per_window``: per-window ranks) and write its card.

    A run already scored is returned as it is (the test split is read once per run).

    Parameters
    ----------
    run : Path
        A run folder of :func:`finetune` (``model.ckpt``, ``metrics.json``).
    cfg : DictConfig
        Its :class:`ieegfm.config.FinetuneConfig`.

    Returns
    -------
    metrics : dict
        The completed ``metrics.json``.

    Raises
    ------
    InputError
        ``run`` holds no finished run.
    """
    run = Path(run)
    path = run / "metrics.json"
    if not path.is_file() or not (run / "model.ckpt").is_file():
        raise InputError(f"{run}: not a finished finetuning run (model.ckpt and metrics.json expected)")
    metrics = json.loads(path.read_text())
    if "test" in metrics:
        return metrics
    scored = score_split(run / "model.ckpt", cfg.shards, "test", cfg.channels, seed=cfg.seed)
    metrics = {"test": scored["metrics"], "per_window": scored["per_window"], **metrics}
    path.write_text(json.dumps(metrics, indent=1))
    _, contract = load_checkpoint(run / "model.ckpt")
    write_card(run, contract.to_dict(), metrics, cfg)
    t = metrics["test"]
    logger.info(
        "finetuned %s: test mean relative rank %.3f (within-block %.3f, shuffled %.3f, %d candidates), %d steps",
        run,
        t["mean_relative_rank"],
        t["within_block_mean_relative_rank"] or float("nan"),
        t["shuffled_mean_relative_rank"],
        t["n_candidates"],
        metrics["global_step"],
    )
    return metrics
