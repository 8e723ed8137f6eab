"""Schemas of the commands that write recordings and shards: ``simulate``, ``pack``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any  # noqa: F401  (field annotations are strings; OmegaConf resolves them here)

from omegaconf import MISSING

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
    subjects: int = field(
        default=1,
        metadata={
            "help": "patients simulated (>1: labels counted up from `subject`, e.g. sim01 sim02 sim03; patient i "
            "has seed `seed`+i and an implant of its own, shafts n_shafts, n_shafts-1, n_shafts+1, ...; the same "
            "kinds of responses; one recordings table for all)"
        },
    )
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
    response: str = field(
        default="both",
        metadata={
            "help": "band of the audio-driven response: both | lfp (snr only; hg_snr ignored) | highgamma (hg_snr "
            "only; snr ignored: invisible to preprocess.bands=[lfp])"
        },
    )
    shared_responses: bool = field(
        default=False,
        metadata={
            "help": "responses (feature weights, lags) a smooth function of the contact's position, the same for "
            "every patient: an anatomical map that pooled pretraining and model.input=spatial can share; "
            "default: drawn per patient"
        },
    )
    target_jitter_mm: float | None = field(
        default=None,
        metadata={
            "help": "implants aimed at named targets: a shaft of a given name (LA, LH, RA, ...) enters at the same "
            "point and angle in every patient, scattered by this much (mm, sd; as clinical sEEG plans aim at the "
            "same structures); default: every shaft's entry drawn anywhere on its side, per patient"
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

    def __post_init__(self) -> None:
        """The checks no simulator function makes itself (the schedule and the electrode layout check theirs).

        Raises
        ------
        ConfigError
            A sampling rate below its floor (sfreq 100 Hz, audio_sfreq 8000 Hz), a subject label that is not
            alphanumeric (BIDS), a fraction outside [0, 1], a negative ``semantic_snr`` or ``target_jitter_mm``, or
            ``subjects`` below 1
            or too many for ``n_shafts`` (each patient's implant differs by a shaft).
        """
        for key, low in (("sfreq", 100.0), ("audio_sfreq", 8000)):
            if getattr(self, key) < low:
                raise ConfigError(f"{key}={getattr(self, key)}: expected at least {low} Hz")
        if not str(self.subject).isalnum():
            raise ConfigError(f"subject={self.subject!r}: a BIDS label must be alphanumeric")
        for key in ("speech_fraction_day", "speech_fraction_night", "responsive_fraction", "semantic_fraction"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}={getattr(self, key)}: expected a fraction in [0, 1]")
        if self.semantic_snr < 0:
            raise ConfigError(f"semantic_snr={self.semantic_snr}: expected >= 0 (0: no semantic component)")
        if self.target_jitter_mm is not None and not self.target_jitter_mm >= 0:
            raise ConfigError(f"target_jitter_mm={self.target_jitter_mm}: expected >= 0 mm (or null: no targets)")
        if self.subjects < 1:
            raise ConfigError(f"subjects={self.subjects}: expected at least 1 patient")
        if self.subjects > 1 and self.n_shafts - self.subjects // 2 < 1:
            raise ConfigError(
                f"subjects={self.subjects}: patient {self.subjects} would have fewer than 1 shaft with "
                f"n_shafts={self.n_shafts}; expected n_shafts >= {self.subjects // 2 + 1}"
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
    montage: str = field(
        default="bipolar",
        metadata={
            "help": "bipolar | average | laplacian (each contact minus the mean of its neighbours: by position on a "
            "grid with an electrodes.tsv, else along its shaft) | none"
        },
    )
    bands: list[str] = field(
        default_factory=lambda: ["lfp"],
        metadata={
            "help": "brain bands, in row order: lfp (the l_freq-h_freq signal) and Hilbert envelopes delta theta "
            "alpha beta gamma highgamma (70-170 Hz); the encoder sees channels x bands"
        },
    )
    chunk_s: float = field(default=60.0, metadata={"help": "length of one streaming read (s); bounds memory"})
    clamp: float = field(default=20.0, metadata={"help": "clamp robust-scaled values at +-clamp"})
    scale_by: str = field(
        default="train",
        metadata={
            "help": "robust scaling fitted on: train (the training split, once per subject; the paper) | day (each "
            "recording day's blocks, all splits: drift-robust) | block (each block on itself)"
        },
    )
    flat_threshold: float = field(
        default=1e-9, metadata={"help": "a channel whose std is below this (V) is flat and dropped"}
    )


@dataclass
class AudioSourceConfig:
    """Where a BIDS run's audio comes from (:class:`ieegfm.io.bids.AudioSource`); unused with ``recordings=``."""

    source: str = field(
        default="file",
        metadata={
            "help": "bids_root only: file (a per-run file of the session matched by audio.pattern and the run's "
            "entities) | stimulus (the stim_file of the run's events.tsv, or audio.stimulus at audio.onset)"
        },
    )
    pattern: str = field(default="*_audio.wav", metadata={"help": "audio.source=file: glob of the audio file name"})
    stimulus: str | None = field(
        default=None,
        metadata={"help": "audio.source=stimulus: the file relative to bids_root (stimuli/x.wav); default stim_file"},
    )
    onset: float | None = field(
        default=None,
        metadata={
            "help": "audio.source=stimulus: s after the recording start (default: the stim_file's first events.tsv "
            "onset; 0 with audio.stimulus)"
        },
    )
    transcript: str | None = field(
        default=None,
        metadata={
            "help": "audio.source=stimulus: words table relative to bids_root (word, start, end in s from the "
            "stimulus onset), e.g. stimuli/whisper-medium/transcript.tsv"
        },
    )


@dataclass
class BidsSelection:
    """Which runs of a BIDS root (:func:`ieegfm.io.bids.discover_blocks`)."""

    bids_root: str | None = field(
        default=None, metadata={"help": "a BIDS-iEEG dataset to read instead of a recordings table (mne-bids)"}
    )
    sessions: list[str] | None = field(default=None, metadata={"help": "bids_root: ses- labels to keep (all)"})
    tasks: list[str] | None = field(default=None, metadata={"help": "bids_root: task- labels to keep (all)"})
    runs: list[str] | None = field(default=None, metadata={"help": "bids_root: run- labels to keep (all)"})
    acquisitions: list[str] | None = field(default=None, metadata={"help": "bids_root: acq- labels to keep (all)"})
    start_from: str = field(
        default="scans",
        metadata={
            "help": "bids_root: a run's start from scans (scans.tsv acq_time; naive = the site's clock, timezone=) | "
            "header (the data file's meas_date)"
        },
    )
    space: str | None = field(
        default=None,
        metadata={
            "help": "bids_root: space- of the electrodes.tsv to use (default a template MNI* one, else the first)"
        },
    )


@dataclass
class AudioConfig(AudioSourceConfig):
    """Frozen audio targets (and, from a BIDS root, where the audio comes from)."""

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
    stretches: int = field(
        default=1,
        metadata={
            "help": "cut each block into this many contiguous stretches of equal length, split as blocks (guard gaps "
            "at their boundaries): one long run per patient, as the Podcast story; each stretch is preprocessed "
            "from its whole file"
        },
    )


@dataclass
class PackConfig(BidsSelection):
    """``ieegfm pack``: a recordings table (or a BIDS root) -> WebDataset shards."""

    recordings: str | None = field(
        default=None, metadata={"help": "the recordings table (TSV; or bids_root=): one row per recording block"}
    )
    out: str = field(default="shards/default", metadata={"help": "output folder for shards, sizes.json, manifest.json"})
    subjects: list[str] | None = field(
        default=None,
        metadata={
            "help": "pack only these subjects' rows of the table ([sim02]; default all): one pack per patient, so a "
            "cohort packs in parallel (tools/slurm/pack_array.sbatch) and pretrains as shards=[...]"
        },
    )
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
    anonymize: bool = field(
        default=False,
        metadata={
            "help": "move every written date back by a secret per-subject number of days (never written; local clock "
            "time and relative times kept), as mne-bids' anonymize"
        },
    )
    anonymize_daysback: int | None = field(
        default=None, metadata={"help": "a known shift (days) instead of the secret one (implies anonymize)"}
    )
    channels_from: str | None = field(
        default=None,
        metadata={
            "help": "shards of a pretraining pack: use its channels, montage, preprocessing and audio targets for "
            "the same subjects (task data that a pretrained encoder applies to)"
        },
    )


@dataclass
class RecordingsConfig(BidsSelection):
    """``ieegfm recordings``: the recordings table a BIDS root holds, with every choice made, to inspect or edit."""

    out: str = field(default="recordings.tsv", metadata={"help": "the table to write (paths relative to its folder)"})
    subjects: list[str] | None = field(default=None, metadata={"help": "sub- labels to keep (all)"})
    audio: AudioSourceConfig = field(default_factory=AudioSourceConfig)
    timezone: str = field(default="UTC", metadata={"help": "IANA time zone of a naive acq_time (the site's clock)"})


@dataclass
class VerifyConfig:
    """``ieegfm verify``: every shard of a folder checked against its manifest (present, size, sha256)."""

    shards: str = MISSING
