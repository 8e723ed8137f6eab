"""The steps every finetuning run shares, whatever its head: run folder, checkpoint contract, trainer, fit, the
selected weights reloaded and saved as ``model.ckpt``.

:func:`run_finetuning` runs them; each kind of head brings what differs as a :class:`HeadRecipe` (its data, module,
loss and scoring): window heads on audio targets (:mod:`ieegfm.finetune.audio_run`), sentence heads
(:mod:`ieegfm.finetune.sentence_run`), the LLM-prefix head (:mod:`ieegfm.finetune.llm_run`). The dispatcher,
:func:`ieegfm.finetune.run.finetune`, picks the recipe of the configured head; this module imports none of them.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from torch import nn

from ieegfm.checkpoint import (
    CONTRACT_KEY,
    CheckpointContract,
    checkpoint_sha256,
    encoder_config_for,
    encoder_for_shards,
    load_checkpoint,
    module_weights,
    shards_provenance,
    subjects_of,
    unseen_subjects,
)
from ieegfm.config import OPTION_GROUPS
from ieegfm.errors import ConfigError
from ieegfm.finetune.base import FinetuningBase, resolve_encoder_lr_scale
from ieegfm.heads import build_head
from ieegfm.io.manifest import Manifest, read_manifest

logger = logging.getLogger(__name__)


def task_label(cfg) -> str:
    """The task name of the run layout: ``cfg.task``, else the task shards' folder name."""
    return str(cfg.task or Path(str(cfg.shards)).resolve().name)


def run_folder(cfg, manifest: Manifest) -> Path:
    """``cfg.out``, else ``runs_dir/<subject>/<task>/<head>/<init>-<freeze>-seed<N>`` (subjects joined by ``+``)."""
    if cfg.out:
        return Path(cfg.out)
    subject = "+".join(sorted(manifest.subjects))
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


def finetune_contract(cfg, pretrained: CheckpointContract, manifest: Manifest, head_cfg: dict, **training) -> dict:
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
            "sha256": checkpoint_sha256(cfg.ckpt),
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


def save_selected(module: L.LightningModule, best: ModelCheckpoint, contract: dict, out: Path) -> Path:
    """Reload the selected weights (the best validation checkpoint, when one was kept) into ``module`` and save the
    run's slim ``model.ckpt``: encoder and head weights only, with the checkpoint contract (loadable with
    ``weights_only=True``).

    Parameters
    ----------
    module : FinetuningBase
        The trained module (its ``encoder.*`` and ``head.*`` weights are saved; a frozen LM or a loss are not).
    best : ModelCheckpoint
        The trainer's checkpoint callback (:func:`finetune_trainer`).
    contract : dict
        The run's checkpoint contract (:func:`finetune_contract`).
    out : Path
        The run folder.

    Returns
    -------
    path : Path
        ``out / "model.ckpt"``.
    """
    if best.best_model_path:  # the selected (best validation) weights
        module.load_state_dict(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
    slim = {k: v for k, v in module.state_dict().items() if k.startswith(("encoder.", "head."))}
    path = out / "model.ckpt"
    torch.save({"state_dict": slim, CONTRACT_KEY: contract}, path)
    return path


@dataclass
class Fitted:
    """A finished fit (on the global-zero rank), its selected weights in ``module`` and in ``out / "model.ckpt"``.

    Attributes
    ----------
    out : Path
        The run folder.
    module : FinetuningBase
        The module with the selected weights.
    trainer : L.Trainer
    best : ModelCheckpoint
        The checkpoint callback that selected the weights (``best_model_score``).
    contract : dict
        The run's checkpoint contract.
    encoder_lr_scale : float | None
        The encoder's learning-rate scale (``None`` when frozen).
    fit_s : float
        Seconds in ``trainer.fit``.
    tic : float
        ``time.perf_counter()`` at the start of the run (for ``wall_s``).
    """

    out: Path
    module: FinetuningBase
    trainer: L.Trainer
    best: ModelCheckpoint
    contract: dict
    encoder_lr_scale: float | None
    fit_s: float
    tic: float

    def figures(self, monitor: str, max_steps: int) -> dict:
        """The training figures of ``metrics.json``, in its order: ``best_<monitor>`` (``val/loss`` ->
        ``best_val_loss``), ``best_step`` (the step of the selected checkpoint), ``global_step``, ``stopped_early``
        (fewer than ``max_steps``), ``fit_s``, ``s_per_step``."""
        score = self.best.best_model_score
        step = self.trainer.global_step
        selected = re.search(r"best-step(\d+)", Path(self.best.best_model_path or "").name)
        return {
            f"best_{monitor.replace('/', '_')}": float(score) if score is not None else None,
            "best_step": int(selected.group(1)) if selected else None,
            "global_step": step,
            "stopped_early": step < max_steps,
            "fit_s": self.fit_s,
            "s_per_step": self.fit_s / max(step, 1),
        }


class HeadRecipe:
    """What one kind of head brings to a finetuning run; :func:`run_finetuning` does the rest.

    A recipe is made per run and keeps the data it read. :func:`run_finetuning` calls its hooks in this order:
    :meth:`check`, :meth:`check_shards`, :meth:`prepare`, :meth:`write_inputs`, :meth:`head_dims`,
    :meth:`build_loss`, :meth:`training_info`, :meth:`module`, :meth:`fit_data`, :meth:`report`.

    Attributes
    ----------
    monitor : str
        The validation metric that selects the weights (lower is better).
    validation_only : bool
        Whether the kind supports a validation-only run (``score_test=False``: the test split left unread).
    """

    monitor: str = "val/mean_relative_rank"
    validation_only: bool = False

    def check(self, cfg) -> None:
        """Configuration checks, before any work (raise :class:`ieegfm.errors.ConfigError`)."""

    def check_shards(self, cfg, manifest: Manifest) -> None:
        """Checks of the task shards' manifest, before the pretraining checkpoint is read."""

    def prepare(self, cfg, manifest: Manifest, pretrained: CheckpointContract) -> int:
        """Read the kind's data (before the run folder exists); return the encoder's window length (samples)."""
        raise NotImplementedError

    def write_inputs(self, out: Path) -> None:
        """Write the kind's inputs into the new run folder (before training)."""

    def head_dims(self, encoder: nn.Module) -> dict:
        """The head's configuration after ``name`` and ``n_hidden``, before ``head_options``: its output size
        (``n_features``) and what else the encoder decides."""
        raise NotImplementedError

    def build_loss(self, cfg) -> nn.Module | None:
        """The training loss (a ``ValueError`` becomes a one-line :class:`ieegfm.errors.ConfigError`)."""
        return None

    def training_info(self, cfg, loss: nn.Module | None) -> dict:
        """Kind-specific entries of the contract's ``training`` (e.g. ``text``, ``llm``)."""
        return {}

    def module(self, cfg, encoder: nn.Module, head: nn.Module, loss: nn.Module | None, options: dict) -> FinetuningBase:
        """The LightningModule to train."""
        raise NotImplementedError

    def fit_data(self, cfg) -> dict:
        """Keyword arguments of ``trainer.fit`` beside the module: ``datamodule`` or the data loaders."""
        raise NotImplementedError

    def report(self, cfg, fitted: Fitted, score_test: bool) -> None:
        """Score the selected weights; write ``metrics.json``, the kind's outputs and (when scored on test) the
        card."""
        raise NotImplementedError


def optimiser_kwargs(cfg, scale: float | None, train_input_layer: bool = False, contract: dict | None = None) -> dict:
    """The :class:`~ieegfm.finetune.base.FinetuningBase` keyword arguments of a run: ``freeze``,
    ``train_input_layer``, ``lr``, ``encoder_lr_scale``, ``weight_decay``, ``warmup_steps``, ``max_steps``,
    ``contract``."""
    return {
        "freeze": cfg.freeze,
        "train_input_layer": bool(train_input_layer),
        "contract": contract,
        "lr": cfg.optim.lr,
        "encoder_lr_scale": scale,
        "weight_decay": cfg.optim.weight_decay,
        "warmup_steps": cfg.optim.warmup_steps,
        "max_steps": cfg.trainer.max_steps,
    }


def run_finetuning(cfg, recipe: HeadRecipe, score_test: bool = True) -> Path:
    """Finetune a head (and optionally the encoder) on task shards: the steps every kind of head shares.

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.FinetuneConfig`.
    recipe : HeadRecipe
        What the configured head's kind brings (a fresh one per run).
    score_test : bool
        Passed to :meth:`HeadRecipe.report`.

    Returns
    -------
    run : Path
        The run folder: ``model.ckpt``, ``config.yaml`` (resolved), ``metrics.json``, ``checkpoints/``, ``tb/`` and
        what the recipe writes.

    Raises
    ------
    ConfigError
        A bad head option or loss value, and the recipe's configuration checks.
    InputError
        Checkpoint missing, unsafe or not ieegfm's; task shards whose subjects or channels do not match it (see
        :func:`ieegfm.checkpoint.encoder_for_shards`); the recipe's data checks.
    """
    recipe.check(cfg)
    tic = time.perf_counter()
    manifest = read_manifest(cfg.shards)
    recipe.check_shards(cfg, manifest)
    state, pretrained = load_checkpoint(cfg.ckpt)
    where = f"ckpt={cfg.ckpt} shards={cfg.shards}"
    window_n = recipe.prepare(cfg, manifest, pretrained)
    out = run_folder(cfg, manifest)
    out.mkdir(parents=True, exist_ok=True)
    recipe.write_inputs(out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    weights = module_weights(state, "encoder") if cfg.init == "pretrained" else None
    new_subjects = unseen_subjects(pretrained, manifest)  # new patients: a new input layer each, trained here
    encoder = encoder_for_shards(pretrained, weights, manifest, where, cfg.channels, window_n, new_subjects=True)
    head_cfg = {"name": cfg.head, "n_hidden": encoder.n_hidden, **recipe.head_dims(encoder), **head_options(cfg)}
    try:
        head = build_head(**head_cfg)
        loss = recipe.build_loss(cfg)
    except ValueError as err:
        raise ConfigError(f"head={cfg.head}: {err}") from None
    scale = encoder_lr_scale(cfg)
    info = {**recipe.training_info(cfg, loss), "new_subjects": new_subjects if cfg.init == "pretrained" else []}
    contract = finetune_contract(cfg, pretrained, manifest, head_cfg, **info)
    spatial = pretrained.encoder.get("input") == "spatial"  # reads a new patient from positions: nothing new to train
    train_input = bool(new_subjects) and cfg.init == "pretrained" and cfg.freeze == "encoder" and not spatial
    module = recipe.module(cfg, encoder, head, loss, optimiser_kwargs(cfg, scale, train_input, contract))
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    trainer, best = finetune_trainer(cfg, out, monitor=recipe.monitor)
    fit_tic = time.perf_counter()
    trainer.fit(module, **recipe.fit_data(cfg))
    fit_s = time.perf_counter() - fit_tic
    if not trainer.is_global_zero:
        return out
    save_selected(module, best, contract, out)
    recipe.report(cfg, Fitted(out, module, trainer, best, contract, scale, fit_s, tic), score_test)
    return out
