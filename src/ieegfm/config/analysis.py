"""Schemas of the analyses over runs: ``scale`` (scaling laws over pretraining hours)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any  # noqa: F401  (field annotations are strings; OmegaConf resolves them here)

from omegaconf import MISSING  # noqa: F401

from ieegfm.config.finetune import FinetuneDataConfig, FinetuneOptimConfig, FinetuneTrainerConfig, LrGridConfig
from ieegfm.config.train import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainerConfig


@dataclass
class ScaleCondition:
    """One named condition of a sweep: pretraining config overrides, or another pretraining shard set."""

    pretrain_shards: str | None = field(
        default=None,
        metadata={"help": "pretraining shards of this condition (e.g. wav2vec2 targets); default: the sweep's"},
    )
    task_shards: str | None = field(
        default=None,
        metadata={
            "help": "task shards of this condition (packed with channels_from= its pretraining shards when the audio "
            "targets differ); the same test blocks and windows as the sweep's; default: the sweep's"
        },
    )
    overrides: list[str] = field(
        default_factory=list,
        metadata={"help": "pretrain keys for this condition, as key=value (e.g. model.encoder=linear)"},
    )
    daytime_only: bool = field(
        default=False, metadata={"help": "pretrain on daytime chunks only (08-22 h local), at the same hours"}
    )


@dataclass
class LinearHeadConfig:
    dropout: float = field(default=0.1, metadata={"help": "dropout on the encoder features before the head"})


@dataclass
class ScaleFinetuneConfig(LrGridConfig):
    """How every point is finetuned and scored on the task shards (the ``ieegfm compare`` keys, linear head)."""

    rows: list[str] = field(
        default_factory=lambda: ["finetuned_frozen"],
        metadata={"help": "finetuned rows per point (finetuned_frozen | finetuned_full); zero_shot always"},
    )
    objective: str = field(default="clip", metadata={"help": "clip | regression"})
    channels: str = field(default="exact", metadata={"help": "exact | intersect"})
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    head_options: LinearHeadConfig = field(default_factory=LinearHeadConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    trainer: FinetuneTrainerConfig = field(default_factory=FinetuneTrainerConfig)


@dataclass
class ScaleConfig:
    """``ieegfm scale``: pretrain on nested subsets of the training hours, finetune each point, fit the log-linear
    scaling law with bootstrap confidence intervals (arXiv 2512.15830)."""

    pretrain_shards: str = MISSING
    task_shards: str = MISSING
    out: str = field(default="runs/scale", metadata={"help": "sweep folder: points.csv, fit.json, PNGs, points/"})
    hours: list[Any] = field(
        default_factory=lambda: [0.5, 1, 2, "all"],
        metadata={"help": "training hours per patient of each point; 'all' = every training chunk"},
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "seeds (pretraining and finetuning)"})
    patients: list[int] = field(
        default_factory=list,
        metadata={
            "help": "numbers of pretraining patients (nested: the first N of patient_order), an axis of its own; "
            "[] = every patient of pretrain_shards"
        },
    )
    patient_order: list[str] = field(
        default_factory=list,
        metadata={"help": "the order patients join (the task's patients first); [] = the task's, then by label"},
    )
    hours_per: str = field(
        default="patient",
        metadata={
            "help": "what the hours grid counts: patient (hours per patient: more patients, more data) | total "
            "(hours split evenly among a point's patients: more patients, the same data)"
        },
    )
    order: str = field(
        default="recording",
        metadata={"help": "recording (a budget = the first hours recorded: more days) | random (seeded, nested)"},
    )
    order_seed: int = field(default=0, metadata={"help": "seed of order=random (the same subsets for every seed)"})
    compute: str = field(
        default="steps",
        metadata={"help": "steps (trainer.max_steps at every point) | epochs (max_steps = epochs over the subset)"},
    )
    epochs: float = field(default=10.0, metadata={"help": "compute=epochs: passes over each point's training windows"})
    conditions: dict[str, ScaleCondition] = field(
        default_factory=dict,
        metadata={
            "help": "named conditions: {name: {pretrain_shards, task_shards, overrides, daytime_only}}; none: one, "
            "'default'"
        },
    )
    fit_metric: str = field(
        default="finetuned_frozen",
        metadata={"help": "row whose test mean relative rank is fitted: finetuned_frozen | finetuned_full | zero_shot"},
    )
    n_boot: int = field(default=2000, metadata={"help": "bootstrap resamples (over seeds and test windows)"})
    launcher: str = field(
        default="local",
        metadata={"help": "local (every point in sequence) | slurm (write scale.sbatch: one array task per point)"},
    )
    point: int | None = field(default=None, metadata={"help": "run only this point (index; the SLURM array task)"})
    collect: bool = field(default=False, metadata={"help": "only gather finished points and fit (after SLURM)"})
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    finetune: ScaleFinetuneConfig = field(default_factory=ScaleFinetuneConfig)


@dataclass
class DriftConfig:
    """``ieegfm drift``: the recording day decoded from the embeddings, and retrieval per day and local hour."""

    ckpt: str | None = field(default=None, metadata={"help": "checkpoint to embed with (or embeddings=)"})
    shards: str | None = field(default=None, metadata={"help": "shards to embed (or embeddings=)"})
    embeddings: str | None = field(
        default=None,
        metadata={"help": "a folder of `ieegfm embed` to read instead of embedding again (its shards' manifest)"},
    )
    out: str = field(default="runs/drift", metadata={"help": "folder: drift.json, drift.png"})
    splits: list[str] = field(
        default_factory=lambda: ["train", "val", "test"], metadata={"help": "splits whose windows are embedded"}
    )
    n_perm: int = field(default=200, metadata={"help": "permutations of the day labels among blocks (the null)"})
    channels: str = field(default="exact", metadata={"help": "exact | intersect"})
    batch_size: int = field(default=256, metadata={"help": "windows per forward pass"})
    seed: int = field(default=0, metadata={"help": "seed of the permutations and the shuffled-pairs control"})


@dataclass
class EmbedConfig:
    """``ieegfm embed``: every window's embedding, with its subject, block, split and times (:mod:`ieegfm.analysis.embeddings`)."""

    ckpt: str = MISSING
    shards: str = MISSING
    out: str = field(
        default="runs/embed", metadata={"help": "folder: embeddings.npy, targets.npy, windows.tsv, embed.json"}
    )
    splits: list[str] = field(
        default_factory=lambda: ["train", "val", "test"], metadata={"help": "splits whose windows are embedded"}
    )
    channels: str = field(default="exact", metadata={"help": "exact | intersect"})
    batch_size: int = field(default=256, metadata={"help": "windows per forward pass"})


@dataclass
class EncodeConfig:
    """``ieegfm encode``: per-electrode encoding models (audio features -> each channel's signal), CV by block."""

    shards: str = MISSING
    out: str = field(default="runs/encode", metadata={"help": "folder: encoding.json, encoding.png"})
    features: str = field(
        default="shards",
        metadata={"help": "shards (the packed audio targets) | logmel | wav2vec2 (must be what the shards hold)"},
    )
    subject: str | None = field(default=None, metadata={"help": "subject of the shards; default: the only one"})
    band: str | None = field(
        default=None,
        metadata={
            "help": "brain band encoded (one of the shards' preprocess.bands); default highgamma when the shards hold "
            "it (where cortical speech responses are strongest), else lfp"
        },
    )
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"], metadata={"help": "splits read"})
    bin_s: float = field(default=0.1, metadata={"help": "signal and features averaged over bins of this length (s)"})
    tmin_s: float = field(default=0.0, metadata={"help": "first lag (s; positive: audio before the signal)"})
    tmax_s: float = field(default=0.5, metadata={"help": "last lag (s)"})
    max_hours_per_block: float = field(
        default=0.1, metadata={"help": "hours read per block at most (spreads the data over blocks; 0: all)"}
    )
    n_shifts: int = field(default=100, metadata={"help": "circular shifts of the null"})
    min_shift_s: float = field(default=10.0, metadata={"help": "smallest circular shift of the null (s)"})
    seed: int = field(default=0, metadata={"help": "seed of the null's shifts"})


@dataclass
class ReportConfig:
    """``ieegfm report RUNS_DIR out=FILE``: one file with the sweeps, comparisons, cards, drift and encoding results."""

    runs_dir: str = MISSING
    out: str = field(default="report.html", metadata={"help": "report file: .html (self-contained) or .md (+ PNGs)"})
