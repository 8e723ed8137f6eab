"""Tiny clinical-format recordings written with MNE and soundfile, for tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mne
import numpy as np
import soundfile as sf

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone.utc)
#: a small encoder and quiet CPU training for tests
TINY_MODEL = ["model.hidden=32", "model.depth=2", "model.projected_chans=16"]
FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
NEURAL = [f"{s}{i}" for s in ("LA", "LH") for i in range(1, 5)]


def write_block(
    folder: Path,
    name: str,
    start: dt.datetime,
    duration: float = 60.0,
    sfreq: float = 256.0,
    audio_duration: float | None = None,
    flat: str | None = None,
    nan_span: tuple[float, float] | None = None,
    fmt: str = "edf",
    seed: int = 0,
    audio_sfreq: int = 16000,
    gain: float = 1.0,
) -> tuple[Path, Path]:
    """One block: iEEG (8 sEEG contacts on 2 shafts + EKG1 + DC01) whose first shaft follows the audio envelope."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * sfreq))
    audio_duration = duration if audio_duration is None else audio_duration
    n_audio = int(round(audio_duration * audio_sfreq))
    # audio: noise bursts switched on and off every 0.5 s at random
    env_rate = 2
    env = np.repeat(rng.random(int(np.ceil(audio_duration * env_rate)) + 1) > 0.5, audio_sfreq // env_rate)[:n_audio]
    audio = (0.3 * env * rng.standard_normal(n_audio) + 0.01 * rng.standard_normal(n_audio)).astype(np.float32)
    t_brain = np.arange(n) / sfreq
    env_brain = np.interp(t_brain, np.arange(n_audio) / audio_sfreq, env.astype(float)) if n_audio else 0 * t_brain
    data = 20e-6 * rng.standard_normal((len(NEURAL) + 2, n))
    data[:4] += 40e-6 * np.array([1.0, 0.6, 0.3, 0.0])[:, None] * env_brain  # graded: survives bipolar
    data[len(NEURAL)] = 1e-3 * (np.sin(2 * np.pi * 1.1 * t_brain) > 0.99)  # EKG-like
    data[len(NEURAL) + 1] = 0.5 * (t_brain > duration / 2)  # DC step
    data[: len(NEURAL)] += 30e-6 * np.sin(2 * np.pi * 60 * t_brain)
    data[: len(NEURAL)] *= gain  # an amplifier gain (day-to-day drift)
    names = NEURAL + ["EKG1", "DC01"]
    if flat is not None:
        data[names.index(flat)] = 0.0
    if nan_span is not None:
        data[:, int(nan_span[0] * sfreq) : int(nan_span[1] * sfreq)] = np.nan
    info = mne.create_info(names, sfreq, ["seeg"] * len(NEURAL) + ["ecg", "misc"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(start)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "edf":
        ieeg = folder / f"{name}_ieeg.edf"
        mne.export.export_raw(ieeg, raw, fmt="edf", overwrite=True, verbose="error")
    else:
        ieeg = folder / f"{name}_ieeg.fif"
        raw.save(ieeg, overwrite=True, verbose="error")
    wav = folder / f"{name}_audio.wav"
    sf.write(wav, audio, audio_sfreq, subtype="PCM_16")
    return ieeg, wav


def write_table(folder: Path, rows: list[tuple[str, str, Path, Path, dt.datetime]]) -> Path:
    """A recordings.tsv with paths relative to ``folder``."""
    lines = ["subject\tsession\tieeg\taudio\tstart_time"]
    for subject, session, ieeg, wav, start in rows:
        lines.append(
            f"{subject}\t{session}\t{ieeg.relative_to(folder)}\t{wav.relative_to(folder)}\t{start.isoformat()}"
        )
    path = folder / "recordings.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def pack_consecutive_blocks(tmp: Path, n_blocks: int, duration: float, *overrides: str) -> Path:
    """Write ``n_blocks`` consecutive blocks of one subject and pack them into ``tmp/s`` (returned)."""
    from ieegfm.config import load_config
    from ieegfm.shards.pack import pack

    rows = []
    for i in range(n_blocks):
        start = T0 + dt.timedelta(seconds=duration * i)
        ieeg, wav = write_block(tmp / "d", f"r{i}", start, duration=duration, seed=i)
        rows.append(("01", "day1", ieeg, wav, start))
    table = write_table(tmp / "d", rows)
    pack(load_config("pack", overrides=[f"recordings={table}", f"out={tmp / 's'}", *overrides]))
    return tmp / "s"


def save_tiny_wav2vec2(folder: Path, num_hidden_layers: int = 2) -> Path:
    """Save a tiny, randomly initialised (seed 0) HF ``Wav2Vec2Model`` to ``folder`` (no download)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        intermediate_size=24,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    Wav2Vec2Model(cfg).save_pretrained(folder)
    return folder


def save_tiny_llm(folder: Path) -> Path:
    """A tiny random Llama causal LM saved offline, with the MiniLM (WordPiece) tokenizer standing in for its own."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ieegfm.text.embed import default_model_dir

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(default_model_dir())
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_tiny_vec2text(root: Path, embedder_dim: int = 768) -> Path:
    """Tiny random vec2text checkpoints saved offline, laid out as ieegfm.text.vec2text_shim reads them.

    ``root/t5`` (a 1-layer T5 encoder-decoder, d_model 16), ``root/embedder`` (a 1-layer T5 encoder whose hidden size
    is the embedding size: 768 as gtr-t5-base), ``root/inversion`` and ``root/corrector`` (vec2text's InversionModel
    and CorrectorEncoderModel built on them), all with a 200-word WordPiece tokenizer trained here (no download).
    """
    import torch
    import vec2text
    from transformers import AutoTokenizer, T5Config, T5EncoderModel, T5ForConditionalGeneration

    from ieegfm.text import vec2text_shim
    from ieegfm.text.embed import default_model_dir

    torch.manual_seed(0)
    words = "the a cat dog sat ran home it is late on mat we go to park".split()
    tok = AutoTokenizer.from_pretrained(default_model_dir()).train_new_from_iterator([" ".join(words)] * 4, 200)
    common = dict(vocab_size=len(tok), d_kv=8, num_heads=2, d_ff=32, num_layers=1, num_decoder_layers=1,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                  decoder_start_token_id=tok.pad_token_id)  # fmt: skip
    t5, embedder = root / "t5", root / "embedder"
    T5ForConditionalGeneration(T5Config(d_model=16, **common)).save_pretrained(t5)
    T5EncoderModel(T5Config(d_model=embedder_dim, **common)).save_pretrained(embedder)
    for folder in (t5, embedder):
        tok.save_pretrained(folder)
    config = dict(model_name_or_path=str(t5), embedder_model_name=str(embedder), embedder_model_api=None,
                  embedder_fake_with_zeros=False, use_frozen_embeddings_as_input=True, encoder_dropout_disabled=False,
                  decoder_dropout_disabled=False, embeddings_from_layer_n=None, use_lora=False,
                  embedder_torch_dtype="float32", max_seq_length=32, num_repeat_tokens=4, embedder_no_grad=True,
                  corrector_ignore_hypothesis_embedding=False)  # fmt: skip
    with vec2text_shim._offline(embedder):  # building needs the local embedder resolved, as loading does
        for name, cls in (("inversion", vec2text.models.InversionModel),
                          ("corrector", vec2text.models.CorrectorEncoderModel)):  # fmt: skip
            cls(vec2text.models.config.InversionConfig(**config)).save_pretrained(root / name)
    return root


def write_n2s_pickle(path: Path, n_trials: int = 12, per_trial: int = 8, sfreq: float = 50.0, snr: float = 2.0,
                     semantic: bool = True, seed: int = 0) -> Path:  # fmt: skip
    """A pickle in the Neuro2Semantic format (their ``synthetic_data`` layout) with a known semantic signal.

    Each trial reads ``per_trial`` sentences of the simulator's pool (each sentence once in the file), 0.5-1 s apart;
    6 electrodes of 2 subjects, 6 bands of unit Gaussian noise. With ``semantic``, the highgamma band of electrodes
    0-3 adds ``snr`` x a fixed random projection of the sentence's all-MiniLM-L6-v2 embedding while it is heard.
    ``significan_elecs`` marks electrodes 0-4; the word labels follow the words evenly through each sentence.
    """
    import pickle

    from ieegfm.simulate import load_sentences
    from ieegfm.text.embed import SentenceEmbedder

    rng = np.random.default_rng(seed)
    pool = load_sentences()[: n_trials * per_trial]
    emb = SentenceEmbedder().encode(pool)
    emb -= emb.mean(0)
    proj = rng.standard_normal((emb.shape[1], 4)) / np.sqrt(emb.shape[1])
    drive = emb @ proj
    drive /= drive.std()
    words = sorted({w for s in pool for w in s.split()})
    wrd_dict = {w: i + 1 for i, w in enumerate(words)}
    subj = ["S1", "S1", "S1", "S2", "S2", "S2"]
    trials = []
    for t in range(n_trials):
        spans, pos = [], int(sfreq)
        for k in range(per_trial):
            n = int(sfreq * (1.5 + 0.1 * len(pool[t * per_trial + k].split())))
            spans.append((pos, pos + n, t * per_trial + k))
            pos += n + int(sfreq * rng.uniform(0.5, 1.0))
        n_times = pos + int(sfreq)
        trial = {
            b: rng.standard_normal((n_times, 6)) for b in ("delta", "theta", "alpha", "beta", "gamma", "highgamma")
        }
        labels = np.zeros(n_times)
        sentence_labels = []
        for lo, hi, i in spans:
            if semantic:
                trial["highgamma"][lo:hi, :4] += snr * drive[i]
            ws = pool[i].split()
            for j, w in enumerate(ws):
                labels[lo + j * (hi - lo) // len(ws) : lo + (j + 1) * (hi - lo) // len(ws)] = wrd_dict[w]
            sentence_labels.append({"sentence": pool[i], "indices": np.arange(lo, hi)})
        trial.update(subj=subj, script=" ".join(pool[i] for _, _, i in spans), wrd_labels=labels,
                     sentence_labels=sentence_labels)  # fmt: skip
        trials.append(trial)
    data = {"trials": trials, "info": {"wrd_dict": wrd_dict}, "significan_elecs": np.arange(6) < 5}
    path.write_bytes(pickle.dumps(data))
    return path


def as_rank(monkeypatch, rank: int, world: int) -> None:
    """Make the data pipeline (plan and windows, in the main process and in DataLoader workers) see itself as
    ``rank`` of ``world`` ranks: simulated DDP ranks in one process."""
    import torch

    import ieegfm.data.plan as plan
    import ieegfm.data.windows as windows

    def fake_rank():
        info = torch.utils.data.get_worker_info()
        return (rank, world, info.id, info.num_workers) if info is not None else (rank, world, 0, 1)

    monkeypatch.setattr(plan, "rank_and_worker", fake_rank)
    monkeypatch.setattr(windows, "rank_and_worker", fake_rank)
