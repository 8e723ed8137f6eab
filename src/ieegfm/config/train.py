"""Schemas of ``pretrain``, ``evaluate`` and ``import-n2s`` (an untrained encoder for imported task data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any  # noqa: F401  (field annotations are strings; OmegaConf resolves them here)

from omegaconf import MISSING  # noqa: F401

from ieegfm.config.recording import SplitConfig

# ----------------------------------------------------------------------------------------------------------------
# pretrain


@dataclass
class DataConfig:
    batch_size: int = field(default=64, metadata={"help": "windows per batch per process"})
    window_s: float = field(default=3.0, metadata={"help": "window length (s)"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers per process (persistent)"})
    pin_memory: bool | None = field(default=None, metadata={"help": "pin host memory; default: when on GPU"})
    shuffle_buffer: int = field(default=1000, metadata={"help": "window shuffle buffer (train)"})
    resampled: bool = field(
        default=False,
        metadata={"help": "draw shards with replacement (else epoch passes: each window exactly once per epoch)"},
    )
    samples_per_epoch: int | None = field(
        default=None,
        metadata={"help": "windows per epoch over all ranks, resampled mode only; default: all training windows"},
    )
    subject_alpha: float = field(
        default=0.5,
        metadata={
            "help": "several subjects: epoch shares proportional to windows**alpha (1 proportional, 0 uniform), "
            "each window at most once per epoch; the plan per subject is in summary.json"
        },
    )
    group_by_subject: bool = field(
        default=False,
        metadata={
            "help": "training batches of one subject each, with its own channels (no padding to the largest "
            "implant; in-batch negatives from the same patient); the last batches of an epoch may mix subjects"
        },
    )


@dataclass
class ModelConfig:
    encoder: str = field(default="conv_attention", metadata={"help": "conv_attention | linear"})
    pooling: str = field(default="mean", metadata={"help": "mean (one embedding per window) | none (time-resolved)"})
    hidden: int = field(default=128, metadata={"help": "conv channels (brainmagick: 320)"})
    projected_chans: int = field(default=64, metadata={"help": "per-subject projected channels (brainmagick: 270)"})
    depth: int = field(default=6, metadata={"help": "residual conv blocks (brainmagick: 10)"})
    kernel_size: int = field(default=3, metadata={"help": "conv kernel (samples)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in conv blocks"})
    input: str = field(
        default="subject_layers",
        metadata={
            "help": "subject_layers (a matrix per subject) | spatial (attention over electrode positions: needs "
            "an electrodes column in the recordings table; reads a new patient zero-shot)"
        },
    )


@dataclass
class LossConfig:
    name: str = field(default="clip", metadata={"help": "clip (symmetric InfoNCE) | siglip (sigmoid, pairwise)"})
    init_logit_scale: float | None = field(
        default=None, metadata={"help": "initial logit scale; default: the loss's own (clip ln(1/0.07), siglip ln 10)"}
    )
    max_logit_scale: float = field(default=4.605170185988092, metadata={"help": "clamp at ln(100)"})
    learnable_scale: bool = field(default=True, metadata={"help": "learn the logit scale"})
    init_logit_bias: float | None = field(
        default=None, metadata={"help": "siglip only: initial logit bias; default -10 (Zhai et al. 2023)"}
    )


@dataclass
class OptimConfig:
    lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-2, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps, then cosine decay"})


@dataclass
class TrainerConfig:
    max_steps: int = field(default=600, metadata={"help": "optimizer steps"})
    devices: Any = field(default=1, metadata={"help": "processes/GPUs per node"})
    num_nodes: int = field(default=1, metadata={"help": "nodes"})
    strategy: str = field(default="auto", metadata={"help": "auto | ddp | ..."})
    accelerator: str = field(default="auto", metadata={"help": "cpu | gpu | auto"})
    precision: str = field(default="32-true", metadata={"help": "32-true | bf16-mixed (GPU)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the encoder"})
    val_check_interval: int = field(default=200, metadata={"help": "validate every N training steps"})
    log_every_n_steps: int = field(default=20, metadata={"help": "logging interval (steps)"})
    enable_progress_bar: bool = field(default=True, metadata={"help": "show the progress bar"})
    checkpoint_every_steps: int = field(
        default=200, metadata={"help": "save checkpoints/last.ckpt every N training steps (0: only at validation)"}
    )
    early_stopping_patience: int = field(
        default=0,
        metadata={
            "help": "stop after N validations without a better val/mean_relative_rank (0: train max_steps; "
            "the best checkpoint is kept either way)"
        },
    )


@dataclass
class PretrainConfig:
    """``ieegfm pretrain``: contrastive pretraining of the brain encoder."""

    shards: Any = field(
        default=MISSING,
        metadata={
            "help": "a pack folder, a list of them ([DIR_A,DIR_B]: one pack per patient or hospital, read as one "
            "cohort written to out/cohort) or a text file with one folder a line"
        },
    )
    out: str = field(default="runs/pretrain", metadata={"help": "run folder (config, checkpoints, TensorBoard)"})
    seed: int = field(default=0, metadata={"help": "global seed (weights, shuffles)"})
    resume: str | None = field(
        default=None, metadata={"help": "'last' (out/checkpoints/last.ckpt if present) or a checkpoint path"}
    )
    control: str = field(
        default="none",
        metadata={
            "help": "none | mismatched: pair each brain block with another block's audio (same subject; written to "
            "out/mismatched_shards) - no brain-audio coupling left, within-block rank must sit at 0.5"
        },
    )
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# ----------------------------------------------------------------------------------------------------------------
# evaluate


@dataclass
class EvaluateConfig:
    """``ieegfm evaluate``: retrieval on a split."""

    ckpt: str = MISSING
    shards: str = MISSING
    split: str = field(default="test", metadata={"help": "train | val | test"})
    out: str = field(default="metrics.json", metadata={"help": "metrics JSON; a PNG of ranks is written beside it"})
    batch_size: int = field(default=256, metadata={"help": "windows per forward pass"})
    seed: int = field(default=0, metadata={"help": "seed of the shuffled-pairs control"})
    pool_subjects: bool = field(
        default=False,
        metadata={
            "help": "rank each window among every subject's windows (labelled as pooled; a model can win it by "
            "telling patients apart) instead of among its own subject's"
        },
    )
    channels: str = field(
        default="exact",
        metadata={
            "help": "exact: the shards must have the checkpoint's channels (any order) | intersect: zero-fill "
            "the channels the shards lack, ignore the ones the checkpoint never saw"
        },
    )


@dataclass
class ExportConfig:
    """``ieegfm export``: a checkpoint -> a model folder (``model.safetensors``, ``config.json``, ``README.md``)."""

    ckpt: str = MISSING
    out: str = MISSING
    metrics: str | None = field(
        default=None,
        metadata={"help": "test metrics for the card: JSON of ieegfm evaluate or a run's metrics.json"},
    )
    shards: str | None = field(
        default=None, metadata={"help": "score the test split of these shards now, for the card (instead of metrics)"}
    )
    license: str = field(default="other", metadata={"help": "licence of the model card's front matter (SPDX id)"})
    name: str | None = field(default=None, metadata={"help": "model name in the card; default the out folder's name"})
    paths: str = field(
        default="basename",
        metadata={"help": "basename: absolute file paths of the contract cut to their last part | keep"},
    )


# ----------------------------------------------------------------------------------------------------------------
# import-n2s


@dataclass
class ImportModelConfig(ModelConfig):
    n_features: int = field(
        default=64, metadata={"help": "the encoder's own output size (its contrastive head; unused by the text heads)"}
    )


@dataclass
class ImportN2SConfig:
    """``ieegfm import-n2s``: a Neuro2Semantic pickle -> task shards and an untrained encoder checkpoint."""

    file: str = MISSING
    sfreq: float = MISSING
    out: str = MISSING
    subject: str = field(default="n2s", metadata={"help": "label of the pooled subject (all the file's electrodes)"})
    bands: list[str] | None = field(
        default=None, metadata={"help": "bands kept (delta theta alpha beta gamma highgamma); default: all present"}
    )
    subjects: list[str] | None = field(
        default=None, metadata={"help": "electrode subjects kept (their subj labels); default: all"}
    )
    significant_only: bool = field(default=True, metadata={"help": "keep only the electrodes significan_elecs marks"})
    split: SplitConfig = field(default_factory=SplitConfig)
    chunk_s: float = field(default=60.0, metadata={"help": "shard chunk length (s)"})
    window_s: float = field(default=3.0, metadata={"help": "encoder window (s)"})
    samples_per_shard: int = field(default=64, metadata={"help": "chunks per tar file"})
    seed: int = field(default=0, metadata={"help": "seed of the untrained encoder's initialisation"})
    model: ImportModelConfig = field(default_factory=ImportModelConfig)
