"""``ieegfm pretrain``: build data, encoder, loss and trainer from a config, fit, keep the run folder."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from ieegfm.checkpoint import CheckpointContract, shards_provenance, subjects_of
from ieegfm.data import ShardDataModule
from ieegfm.data.balance import check_alpha
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.electrodes import manifest_positions
from ieegfm.io.lock import exclusive_output, write_errors_as_output_error
from ieegfm.io.manifest import read_manifest
from ieegfm.losses import build_loss
from ieegfm.models import build_encoder, encoder_kwargs
from ieegfm.pretrain.control import control_shards
from ieegfm.pretrain.module import ContrastivePretraining
from ieegfm.pretrain.throughput import ThroughputMonitor
from ieegfm.shards.cohort import cohort_shards

logger = logging.getLogger(__name__)


class CheckpointOnSigterm(Callback):
    """On SIGTERM (SLURM preemption, ``scancel``, ``kill``): save ``last.ckpt`` after the current batch and stop.

    The handler only sets a flag; at the end of the next training batch the ranks agree (any rank signalled:
    all stop), save the full training state where the periodic checkpoints are taken and stop training
    gracefully, so the resumed run continues exactly where the uninterrupted one would have (see
    :meth:`~ieegfm.pretrain.module.ContrastivePretraining.on_save_checkpoint`). It replaces Lightning's own
    SIGTERM handling for the duration of ``fit``, then restores the previous handler.

    Attributes
    ----------
    interrupted : bool
        True once a SIGTERM stopped training.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.interrupted = False
        self._flag = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self._flag = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handler)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        stop = self._flag
        if trainer.world_size > 1:  # every rank must take part in the (collective) save
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop and not self.interrupted:
            trainer.save_checkpoint(self.path)
            self.interrupted = True
            trainer.should_stop = True
            logger.warning("SIGTERM: saved %s at step %d; rerun with resume=last", self.path, trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def resume_path(resume: str | None, out: Path) -> Path | None:
    """The checkpoint ``resume`` names: ``last`` -> ``out/checkpoints/last.ckpt`` if it exists, else a path.

    Raises
    ------
    InputError
        ``resume`` is a path that does not exist.
    """
    if not resume:
        return None
    if resume == "last":
        last = out / "checkpoints" / "last.ckpt"
        if last.exists():
            return last
        logger.info("resume=last: no %s yet, starting from scratch", last)
        return None
    path = Path(resume)
    if not path.is_file():
        raise InputError(f"resume={resume}: checkpoint not found; expected 'last' or a .ckpt file")
    return path


def launch_rank() -> int:
    """Global rank of this process before Lightning starts (torchrun's ``RANK``, SLURM's ``SLURM_PROCID``; for
    processes Lightning launches itself, non-zero when ``LOCAL_RANK`` or ``NODE_RANK`` is)."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key):
            return int(os.environ[key])
    return int(os.environ.get("NODE_RANK", 0) or 0) * 1000 + int(os.environ.get("LOCAL_RANK", 0) or 0)


def encoder_config(cfg, dm: ShardDataModule) -> dict:
    """Arguments of :func:`ieegfm.models.build_encoder` for a pretrain config and its shards."""
    return encoder_kwargs(
        cfg.model,
        n_chans=dm.n_chans,
        n_subjects=len(dm.subjects),
        n_times=dm.window_n,
        sfreq=dm.sfreq,
        n_features=dm.n_features,
    )


def pretrain(cfg) -> Path:
    """Contrastive pretraining (see :class:`ieegfm.pretrain.module.ContrastivePretraining`).

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.PretrainConfig`.

    Returns
    -------
    ckpt : Path
        The best checkpoint by validation mean relative rank (the last one when there is no validation split).
        The run folder ``cfg.out`` holds ``config.yaml`` (resolved), ``checkpoints/``, TensorBoard logs and
        ``summary.json``.

    Raises
    ------
    ConfigError
        ``data.subject_alpha`` not a number >= 0 (before anything is written).
    InputError
        Another run writing to ``out``; shards missing, damaged or all unreadable; a bad ``resume``.
    OutputError
        ``out`` cannot be written (disk full, a file size limit): one line; a checkpoint is written to a temporary
        name and renamed (Lightning, fsspec transaction), so ``resume=last`` continues from the last complete one.
    """
    check_alpha(cfg.data.subject_alpha)  # a bad key: one line, before anything is written
    with write_errors_as_output_error(cfg.out):  # disk full, a file size limit: one line
        if launch_rank() != 0:  # the other ranks write under rank 0's lock
            return _pretrain(cfg)
        with exclusive_output(cfg.out, "pretrain"):
            return _pretrain(cfg)


def _pretrain(cfg) -> Path:
    """:func:`pretrain` (the lock, if any, held by the caller)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    d = cfg.data
    rank = launch_rank()
    packs = cohort_shards(cfg.shards, out, rank)  # one pack, or the cohort of several (out/cohort)
    sfreq = read_manifest(packs).sfreq
    shards = control_shards(cfg.control, packs, out, int(round(d.window_s * sfreq)), rank)
    dm = ShardDataModule(
        shards,
        batch_size=d.batch_size,
        window_s=d.window_s,
        num_workers=d.num_workers,
        shuffle_buffer=d.shuffle_buffer,
        resampled=d.resampled,
        samples_per_epoch=d.samples_per_epoch,
        seed=cfg.seed,
        pin_memory=d.pin_memory if d.pin_memory is not None else torch.cuda.is_available(),
        audio_pooling="mean" if cfg.model.pooling == "mean" else None,  # time-average targets in the workers
        subject_alpha=d.subject_alpha,
        group_by_subject=d.group_by_subject,
    )
    dm.check_pooling(cfg.model.pooling)
    positions = None
    if cfg.model.input == "spatial":  # electrode positions of every subject, or a one-line error naming it
        positions = torch.from_numpy(manifest_positions(dm.manifest, f"shards={shards}"))
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for the float32 parts, as open_clip does
        torch.backends.cudnn.allow_tf32 = True
    enc_cfg = encoder_config(cfg, dm)
    encoder = build_encoder(**enc_cfg)
    if positions is not None:
        encoder.set_positions(positions)
    loss_kwargs = {
        "init_logit_scale": cfg.loss.init_logit_scale,
        "max_logit_scale": cfg.loss.max_logit_scale,
        "learnable": cfg.loss.learnable_scale,
        "init_logit_bias": cfg.loss.get("init_logit_bias"),
    }
    loss = build_loss(cfg.loss.name, **{k: v for k, v in loss_kwargs.items() if v is not None})
    if cfg.trainer.compile:
        encoder.compile()  # in place: state_dict keys (and checkpoints) stay those of the plain encoder
    module = ContrastivePretraining(
        encoder,
        loss,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_steps,
        max_steps=cfg.trainer.max_steps,
        contract=CheckpointContract(
            kind="pretrain",
            encoder=enc_cfg,
            subjects=subjects_of(dm.manifest),
            data=shards_provenance(shards, dm.manifest),
            training={
                "objective": cfg.loss.name,
                "seed": cfg.seed,
                "max_steps": cfg.trainer.max_steps,
                "control": cfg.control,
            },
        ).to_dict(),
    )
    has_val = bool(dm.urls("val"))
    t = cfg.trainer
    ckpt_dir = out / "checkpoints"
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best-step{step}",
        auto_insert_metric_name=False,
        monitor="val/mean_relative_rank" if has_val else None,
        mode="min",
        save_top_k=1,
        save_last=t.checkpoint_every_steps <= 0,
    )
    on_sigterm = CheckpointOnSigterm(ckpt_dir / "last.ckpt")
    callbacks: list[Callback] = [best, on_sigterm, ThroughputMonitor(t.log_every_n_steps)]
    if t.checkpoint_every_steps > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="step{step}",
                auto_insert_metric_name=False,
                every_n_train_steps=t.checkpoint_every_steps,
                save_top_k=1,
                save_last=True,
            )
        )
    if t.early_stopping_patience < 0:
        raise ConfigError(f"trainer.early_stopping_patience={t.early_stopping_patience}: expected >= 0 (0: off)")
    if t.early_stopping_patience and has_val:  # validations without improvement (checked at each validation)
        callbacks.append(
            EarlyStopping(
                "val/mean_relative_rank", patience=t.early_stopping_patience, mode="min", check_on_train_epoch_end=False
            )
        )
    elif t.early_stopping_patience:
        logger.warning("trainer.early_stopping_patience: the shards have no validation split; training max_steps")
    ckpt_path = resume_path(cfg.resume, out)
    trainer = L.Trainer(
        max_steps=t.max_steps,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        accelerator=t.accelerator,
        precision=t.precision,
        default_root_dir=str(out),
        logger=TensorBoardLogger(str(out), name="tb", version=""),
        callbacks=callbacks,
        val_check_interval=min(t.val_check_interval, t.max_steps) if has_val else None,
        check_val_every_n_epoch=None,
        limit_val_batches=1.0 if has_val else 0,
        log_every_n_steps=t.log_every_n_steps,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=t.enable_progress_bar,
        deterministic=False,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    last = ckpt_dir / "last.ckpt"
    if not on_sigterm.interrupted:  # (an interrupted run already saved where it can resume exactly)
        trainer.save_checkpoint(last)  # the final state, whatever the periodic schedule
    chosen = Path(best.best_model_path) if best.best_model_path else last
    urls = [u for sp in dm.manifest.shards for u in dm.urls(sp)]
    bad = set(dm.corrupt.shards)  # each rank (with its loader workers) knows the shards it found corrupt: union
    flags = trainer.strategy.reduce(torch.tensor([u in bad for u in urls] + [0], dtype=torch.float64), reduce_op="sum")
    bad_shards = [Path(u).name for u, f in zip(urls, flags.tolist()) if f > 0]
    bad_samples = int(trainer.strategy.reduce(torch.tensor(float(dm.corrupt.samples)), reduce_op="sum"))
    if trainer.is_global_zero:
        summary = {
            "best_checkpoint": str(chosen),
            "last_checkpoint": str(last),
            "resumed_from": str(ckpt_path) if ckpt_path else None,
            "interrupted": on_sigterm.interrupted,
            "best_val_mean_relative_rank": float(best.best_model_score) if best.best_model_score is not None else None,
            "global_step": trainer.global_step,
            "early_stopped": bool(t.early_stopping_patience and trainer.global_step < t.max_steps),
            "encoder": enc_cfg,
            "n_parameters": sum(p.numel() for p in encoder.parameters()),
            "train_windows": dm.n_windows("train"),
            "subject_alpha": float(cfg.data.subject_alpha),
            "group_by_subject": bool(cfg.data.group_by_subject),
            "subject_plan": dm.subject_plan,  # per subject: windows, and windows per epoch (first epoch's plan)
            "corrupt_shards_skipped": len(bad_shards),  # missing, truncated or cut short by a read error
            "corrupt_shards": bad_shards,
            "corrupt_samples_skipped": bad_samples,  # read but not decodable (per read, summed over ranks)
            "control": cfg.control,
            "shards": str(shards),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        logger.info("pretrained %s: best checkpoint %s", out, chosen)
    return chosen
