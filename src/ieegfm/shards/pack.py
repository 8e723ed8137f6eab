"""``ieegfm pack``: recordings table -> preprocessed, aligned, split WebDataset shards.

The pipeline, each step bounded in memory whatever the recording length:

1. read the recordings table and every file header (MNE, lazily; soundfile); check sampling rates, audio
   coverage and channel sets; drop non-neural, bad (``channels.tsv``) and flat channels;
2. assign blocks to train/val/test with guard gaps (:mod:`ieegfm.shards.split`);
3. per block, stream the iEEG through :class:`~ieegfm.preprocess.StreamingPreprocessor` (notch, band-pass,
   resampling), apply the montage at the output rate, compute the audio targets at the same sample times,
   and keep both in memory-mapped work files (``<out>/.work``; a rerun reuses finished blocks);
4. fit robust scaling per channel (brain) and z-scoring (audio) on the training blocks only;
5. write shards of contiguous chunks (:mod:`ieegfm.shards.writer`), ``sizes.json`` and ``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from omegaconf import OmegaConf
from tqdm.auto import tqdm

import ieegfm
from ieegfm.errors import ConfigError, InputError
from ieegfm.features import build_extractor, targets_at
from ieegfm.io.audio import audio_info
from ieegfm.io.checksum import sha256_file
from ieegfm.io.events import Event, read_events_tsv, read_words_tsv
from ieegfm.io.ieeg import IEEGHeader, iter_chunks, open_raw, read_header
from ieegfm.io.lock import exclusive_output, write_errors_as_output_error
from ieegfm.io.recordings import Block, read_recordings
from ieegfm.preprocess import RobustScaler, StandardScaler, StreamingPreprocessor, apply_montage
from ieegfm.shards import deidentify
from ieegfm.shards.channels import channels_from_pack, select_channels
from ieegfm.shards.split import SPLITS, BlockSpan, assign_splits, guard_trims
from ieegfm.shards.writer import ShardWriter

logger = logging.getLogger(__name__)

#: Audio may start or end this much (s) inside its iEEG block before the block counts as mismatched.
ALIGN_TOLERANCE_S = 1.0
#: Hours of the local clock (``timezone``) counted as daytime: [DAY_START, DAY_END).
DAY_START, DAY_END = 8, 22


def local_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` of the recording site.

    Raises
    ------
    ConfigError
        Not a time zone name.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"timezone={name!r}: not an IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)"
        ) from None


def _json_dump(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def _block_id(b: Block) -> str:
    return f"{b.subject}_{b.name}"


def _skip_or_raise(err: InputError, b: Block, strict: bool, skipped: dict[str, str]) -> None:
    if strict:
        raise err
    logger.warning("skipping block %s: %s", b.ieeg.name, err)
    skipped[str(b.ieeg)] = str(err)


def _length_mismatches(h: IEEGHeader, a) -> list[dict]:
    """Header-vs-file length differences of a block's iEEG (EDF/BDF records) and audio (WAV data size)."""
    out = []
    if h.declared_duration is not None:
        out.append(
            {
                "file": str(h.path),
                "declared_s": h.declared_duration,
                "held_s": h.duration,
                "message": f"{h.path}: the EDF header declares {h.declared_duration:.1f} s of data records, the file "
                f"holds {h.duration:.1f} s (a truncated copy or a crashed recorder?)",
            }
        )
    if a.declared_samples is not None:
        declared, held = a.declared_samples / a.sfreq, a.duration
        out.append(
            {
                "file": str(a.path),
                "declared_s": declared,
                "held_s": held,
                "message": f"{a.path}: the WAV header declares {declared:.1f} s, the file holds {held:.1f} s "
                "(a truncated copy?)",
            }
        )
    return out


def _check_block(b: Block, header: IEEGHeader, audio_duration: float) -> tuple[float, float, float]:
    """Offset of the audio in iEEG time and the shared interval ``(offset, t0, t1)`` (s)."""
    ieeg_start = header.meas_date or b.start_time
    offset = (b.start_time - ieeg_start).total_seconds()
    t0, t1 = max(0.0, offset), min(header.duration, offset + audio_duration)
    if offset > ALIGN_TOLERANCE_S or offset + audio_duration < header.duration - ALIGN_TOLERANCE_S:
        raise InputError(
            f"{b.audio}: audio covers {max(t1 - t0, 0):.1f} s of the {header.duration:.1f} s iEEG "
            f"block {b.ieeg.name} (audio starts {offset:+.1f} s after it); expected audio at least as "
            "long as its iEEG block"
        )
    return offset, t0, t1


def pack(cfg) -> Path:
    """Pack a recordings table into WebDataset shards (see module docstring).

    Parameters
    ----------
    cfg : DictConfig
        :class:`ieegfm.config.PackConfig`.

    Returns
    -------
    manifest : Path
        ``<out>/manifest.json``.

    Raises
    ------
    OutputError
        ``out`` cannot be written (disk full, a file size limit, read-only): one line; what was written so far is
        either complete (finished blocks, kept for the rerun) or under a temporary name, never a manifest.
    InputError
        Another process writing to ``out`` (a lock: one writer per folder);
        Empty or malformed table, missing files, sampling rate differing between blocks of a session, no usable
        block or channel; with ``strict=true`` also any bad block (corrupt file, audio shorter than its block).
    ConfigError
        Bad split fractions, wav2vec2 model folder or layer, unknown ``timezone``, bad ``audio.pool_s``.
    """
    with write_errors_as_output_error(cfg.out), exclusive_output(cfg.out, "pack"):
        return _pack(cfg)


def _pack(cfg) -> Path:
    """:func:`pack` while holding the output folder's lock."""
    reference = channels_from_pack(cfg)
    pcfg = cfg.preprocess
    tz = local_timezone(cfg.timezone)
    audio_pool_n(cfg.audio.pool_s, float(pcfg.sfreq), int(round(cfg.split.window_s * pcfg.sfreq)))  # fail early
    blocks = read_recordings(cfg.recordings)
    out = Path(cfg.out)
    work = out / ".work"
    extractor = build_extractor(cfg.audio)
    skipped: dict[str, str] = {}
    mismatches: list[dict] = []  # files whose header declares another length than they hold

    # 1. headers, alignment, sampling rates ----------------------------------------------------------------------
    headers: dict[str, IEEGHeader] = {}
    events: dict[str, list[Event]] = {}
    words: dict[str, list[Event]] = {}
    align: dict[str, tuple[float, float, float]] = {}
    for b in tqdm(blocks, desc="headers", unit="block", leave=False):
        try:
            h = read_header(b.ieeg, b.channels)
            a = audio_info(b.audio)
            for entry in _length_mismatches(h, a):  # header vs file: never lose data silently
                if cfg.strict:
                    raise InputError(entry["message"])
                logger.warning("%s; using what the file holds (strict=true: an error)", entry["message"])
                mismatches.append(entry)
            align[_block_id(b)] = _check_block(b, h, a.duration)
            if not h.neural:
                raise InputError(
                    f"{b.ieeg}: no neural (sEEG/ECoG) channel left after dropping non-neural and bad "
                    f"channels; found {h.ch_names[:8]}..."
                )
            if b.events is not None:
                events[_block_id(b)] = read_events_tsv(b.events)
            if b.words is not None:  # transcript on the audio clock -> the iEEG clock of events and tmin
                shift = align[_block_id(b)][0]
                words[_block_id(b)] = [
                    Event(w.onset + shift, w.duration, w.trial_type, w.value) for w in read_words_tsv(b.words)
                ]
            headers[_block_id(b)] = h
        except InputError as err:
            _skip_or_raise(err, b, cfg.strict, skipped)
    blocks = [b for b in blocks if _block_id(b) in headers]
    if not blocks:
        raise InputError(f"{cfg.recordings}: no usable block ({len(skipped)} skipped; see the warnings above)")
    by_session: dict[tuple[str, str], Block] = {}
    for b in blocks:
        first = by_session.setdefault((b.subject, b.session), b)
        f1, f2 = headers[_block_id(first)].sfreq, headers[_block_id(b)].sfreq
        if abs(f1 - f2) > 1e-6 * f1:
            raise InputError(
                f"{b.ieeg}: sfreq {f2} Hz differs from {f1} Hz of {first.ieeg.name} in the same session "
                f"(subject {b.subject}, session {b.session}); expected one sampling rate per session"
            )

    # 2. channels per subject: good neural channels present in every block, minus flat ones -------------------
    subjects = sorted({b.subject for b in blocks})
    per_subject = {s: [(b, headers[_block_id(b)]) for b in blocks if b.subject == s] for s in subjects}
    picks, dropped = select_channels(per_subject, pcfg.flat_threshold, reference, cfg.channels_from)

    # 3. splits and guard gaps ----------------------------------------------------------------------------------
    spans = [
        BlockSpan(
            _block_id(b), b.subject, headers[_block_id(b)].meas_date or b.start_time, headers[_block_id(b)].duration
        )
        for b in blocks
    ]
    split = assign_splits(spans, cfg.split.val, cfg.split.test)
    guard_s = cfg.split.guard_s if cfg.split.guard_s is not None else cfg.split.window_s + extractor.context_s
    trims = guard_trims(spans, split, guard_s)

    # 4. per-block streaming preprocessing + audio targets into work files -------------------------------------
    for previous in ("manifest.json", "sizes.json"):  # a pack already here stops looking complete before any write
        (out / previous).unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    sfreq_out = float(pcfg.sfreq)
    config_key = json.dumps({"preprocess": OmegaConf.to_container(pcfg), "audio": extractor.config()}, sort_keys=True)
    work_done = set()
    span_s = {  # the seconds each block will pack: its audio-aligned interval less the guard trims
        _block_id(b): max(align[_block_id(b)][2] - align[_block_id(b)][1] - sum(trims[_block_id(b)]), 0.0)
        for b in blocks
    }
    jobs = []
    with tqdm(total=sum(span_s.values()), desc="pack (recorded s)", unit="s", unit_scale=True) as bar:
        for b in blocks:
            bid = _block_id(b)
            h = headers[bid]
            offset, t0, t1 = align[bid]
            head, tail = trims[bid]
            params = [picks[b.subject], pcfg.montage, t0 + head, t1 - tail, offset, str(b.ieeg), str(b.audio)]
            key = hashlib.sha256((config_key + json.dumps(params)).encode()).hexdigest()
            if _block_is_done(work / bid, key):  # finished by an earlier (interrupted) run: checked by checksum
                bar.update(span_s[bid])
                work_done.add(bid)
                continue
            args = (b, h, picks[b.subject], pcfg, work / bid, offset, (t0 + head, t1 - tail), cfg.audio.batch_chunks)
            jobs.append((b, key, args))
        for b, key, outcome in _run_blocks(jobs, extractor, cfg, bar):
            if isinstance(outcome, InputError):
                _skip_or_raise(outcome, b, cfg.strict, skipped)
                continue
            _json_dump({"key": key, "sha256": outcome}, work / f"{_block_id(b)}.done.json")
            work_done.add(_block_id(b))
    blocks = [b for b in blocks if _block_id(b) in work_done]
    if not any(split[_block_id(b)] == "train" for b in blocks):
        raise InputError(f"{cfg.recordings}: no training block left to fit the scaling on")

    # 5. scaling fitted on training blocks only (or per day / block: preprocess.scale_by) ----------------------
    def local(t: dt.datetime) -> dt.datetime:  # naive times are UTC (recordings table convention)
        return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).astimezone(tz)

    first_day = {  # day indices count local calendar days
        s: min(local(headers[_block_id(b)].meas_date or b.start_time).date() for b in blocks if b.subject == s)
        for s in subjects
    }
    daysback = None  # dates as written: moved back per subject when anonymising (deidentify.py)
    if cfg.anonymize or cfg.anonymize_daysback is not None:
        daysback = {
            s: int(cfg.anonymize_daysback)
            if cfg.anonymize_daysback is not None
            else deidentify.secret_daysback(s, first_day[s])
            for s in subjects
        }

    def published(t: dt.datetime, subject: str) -> tuple[str, str]:  # (start_time, local_time) as written
        if daysback is None:
            return t.isoformat(), local(t).isoformat()
        utc, loc = deidentify.shift(t, daysback[subject], tz)
        return utc.isoformat(), loc.isoformat()

    brain_scalers: dict[str, RobustScaler] = {}
    audio_scaler = StandardScaler()
    step = int(600 * sfreq_out)
    for s in subjects:
        scaler = RobustScaler()
        for b in blocks:
            if b.subject != s or split[_block_id(b)] != "train":
                continue
            brain = np.load(work / f"{_block_id(b)}.brain.npy", mmap_mode="r")
            audio = np.load(work / f"{_block_id(b)}.audio.npy", mmap_mode="r")
            valid = np.load(work / f"{_block_id(b)}.valid.npy")
            for i in range(0, brain.shape[1], step):
                v = valid[i : i + step]
                if v.any():
                    scaler.partial_fit(np.asarray(brain[:, i : i + step]), valid=v)
                    audio_scaler.partial_fit(np.asarray(audio[:, i : i + step]), valid=v)
        brain_scalers[s] = scaler

    def unit(b: Block) -> str:  # the scaler that transforms a block
        if pcfg.scale_by == "train":
            return b.subject
        if pcfg.scale_by == "block":
            return _block_id(b)
        day = (local(headers[_block_id(b)].meas_date or b.start_time).date() - first_day[b.subject]).days
        return f"{b.subject}/day{day}"

    scaling_unit = {_block_id(b): unit(b) for b in blocks}
    unit_scalers = {u: RobustScaler() for u in set(scaling_unit.values())} if pcfg.scale_by != "train" else {}
    for b in blocks if unit_scalers else []:  # every split: the unit's own statistics (label-free)
        brain = np.load(work / f"{_block_id(b)}.brain.npy", mmap_mode="r")
        valid = np.load(work / f"{_block_id(b)}.valid.npy")
        for i in range(0, brain.shape[1], step):
            if valid[i : i + step].any():
                unit_scalers[scaling_unit[_block_id(b)]].partial_fit(
                    np.asarray(brain[:, i : i + step]), valid=valid[i : i + step]
                )
    brain_scalers.update(unit_scalers)

    # 6. shards -------------------------------------------------------------------------------------------------
    for stale in list(out.glob("*.tar")) + list(out.glob("*.tar.tmp")):
        stale.unlink()
    chunk_n = int(round(cfg.chunk_s * sfreq_out))
    window_n = int(round(cfg.split.window_s * sfreq_out))
    pool_n = audio_pool_n(cfg.audio.pool_s, sfreq_out, window_n)

    shards: dict[str, list[dict]] = {}
    hours: dict[str, dict] = {}
    names: dict[str, list[str]] = {}
    for sp in SPLITS:
        writer = ShardWriter(out, sp, cfg.samples_per_shard)
        stats = {"hours": 0.0, "daytime_hours": 0.0, "by_day": {}, "n_chunks": 0, "n_windows": 0, "blocks": []}
        for b in blocks:
            bid = _block_id(b)
            if split[bid] != sp:
                continue
            stats["blocks"].append(bid)
            h = headers[bid]
            start = h.meas_date or b.start_time
            brain = np.load(work / f"{bid}.brain.npy", mmap_mode="r")
            audio = np.load(work / f"{bid}.audio.npy", mmap_mode="r")
            valid = np.load(work / f"{bid}.valid.npy")
            names[b.subject] = json.loads((work / f"{bid}.channels.json").read_text())
            block_events = events.get(bid)
            block_words = words.get(bid)
            for lo, hi in _chunks(valid, chunk_n, window_n):
                hi = lo + (hi - lo) // pool_n * pool_n  # whole audio bins (window_n is a multiple of pool_n)
                x = brain_scalers[scaling_unit[bid]].transform(np.asarray(brain[:, lo:hi]), clamp=pcfg.clamp)
                y = audio_scaler.transform(np.asarray(audio[:, lo:hi]))
                if pool_n > 1:  # bin means: what the window-mean target needs, 1/pool_n of the bytes
                    y = y.reshape(y.shape[0], -1, pool_n).mean(axis=2)
                t = start + dt.timedelta(seconds=lo / sfreq_out)
                t_local = local(t)
                day = (t_local.date() - first_day[b.subject]).days
                daytime = DAY_START <= t_local.hour < DAY_END
                meta = {
                    "subject": b.subject,
                    "session": b.session,
                    "source": b.ieeg.name,
                    "audio": b.audio.name,
                    "block": bid,
                    "start_time": published(t, b.subject)[0],
                    "local_time": published(t, b.subject)[1],
                    "tmin": lo / sfreq_out,
                    "day": day,
                    "daytime": daytime,
                    "sfreq": sfreq_out,
                    "ch_names": names[b.subject],
                    "split": sp,
                }
                if block_events is not None:  # onsets in s from the iEEG start, the clock of tmin
                    t_lo, t_hi = lo / sfreq_out, hi / sfreq_out
                    meta["events"] = [
                        {
                            "id": i,
                            "onset": e.onset,
                            "duration": e.duration,
                            "trial_type": e.trial_type,
                            "value": e.value,
                        }
                        for i, e in enumerate(block_events)
                        if e.onset < t_hi and e.onset + e.duration > t_lo
                    ]
                if block_words is not None:  # [onset (s, iEEG clock), duration, word] of words starting in it
                    t_lo, t_hi = lo / sfreq_out, hi / sfreq_out
                    meta["words"] = [
                        [round(w.onset, 4), round(w.duration, 4), w.value]
                        for w in block_words
                        if t_lo <= w.onset < t_hi
                    ]
                n_win = (hi - lo) // window_n
                writer.write(
                    f"{bid}_{lo:09d}".replace(".", "_"),
                    {"brain.npy": x.astype(np.float16), "audio.npy": y.astype(np.float16), "json": meta},
                    n_windows=n_win,
                    n_times=hi - lo,
                )
                dur_h = (hi - lo) / sfreq_out / 3600
                stats["hours"] += dur_h
                stats["daytime_hours"] += dur_h if daytime else 0.0
                stats["by_day"][str(day)] = stats["by_day"].get(str(day), 0.0) + dur_h
                stats["n_chunks"] += 1
                stats["n_windows"] += n_win
        shards[sp] = writer.close()
        hours[sp] = stats

    asked = {"train": 1.0, "val": cfg.split.val, "test": cfg.split.test}
    empty = [sp for sp in SPLITS if hours[sp]["n_chunks"] == 0 and asked[sp] > 0]
    for sp in empty:  # asked for (a non-zero fraction) but nothing came out: blocks skipped or too short
        logger.warning(
            "split %r is empty: no chunk of at least one window%s (skipped or too-short blocks; see above)",
            sp,
            f" although split.{sp}={asked[sp]}" if sp != "train" else "",
        )
    if cfg.strict and empty:
        raise InputError(f"{cfg.recordings}: split(s) {empty} came out empty (strict=true); see the warnings above")

    # 7. sizes.json + manifest.json ------------------------------------------------------------------------------
    _json_dump({s["name"]: s["n_samples"] for sp in SPLITS for s in shards[sp]}, out / "sizes.json")
    manifest = {
        "ieegfm_version": ieegfm.__version__,
        "format": {
            "brain": "float16 (n_chans, n_times), robust-scaled (median/IQR), clamped",
            "audio": "float16 (n_features, n_times * audio_sfreq / sfreq), z-scored with training statistics "
            "(frame by frame), then averaged over bins of sfreq / audio_sfreq samples when audio.pool_s > 0",
            "keys": ["brain.npy", "audio.npy", "json"],
        },
        "sfreq": sfreq_out,
        "audio_sfreq": sfreq_out / pool_n,
        "timezone": cfg.timezone,
        "window_s": cfg.split.window_s,
        "chunk_s": cfg.chunk_s,
        "guard_s": guard_s,
        "n_features": extractor.n_features,
        "subjects": {
            s: {
                "index": i,
                "ch_names": names.get(s, []),
                "n_chans": len(names.get(s, [])),
                "picks": picks[s],
                "dropped": dropped[s],
                "scaler": brain_scalers[s].to_dict(),
            }
            for i, s in enumerate(subjects)
        },
        "n_chans_max": max(len(v) for v in names.values()) if names else 0,
        "audio_scaler": audio_scaler.to_dict(),
        "scaling": {
            "by": pcfg.scale_by,
            "rule": {
                "train": "robust scaling per subject fitted on its training blocks (subjects.<s>.scaler)",
                "day": "robust scaling per subject and local recording day, fitted on all of that day's blocks (every "
                "split; no labels), so a day's gain drift is divided out",
                "block": "robust scaling per block, fitted on the block itself (every split; no labels)",
            }[pcfg.scale_by],
            "unit_of_block": scaling_unit,
            "scalers": {u: sc.to_dict() for u, sc in unit_scalers.items()},
        },
        "splits": hours,
        "shards": shards,
        "blocks": {
            _block_id(b): {
                "split": split[_block_id(b)],
                "ieeg": str(b.ieeg),
                "audio": str(b.audio),
                "start_time": published(headers[_block_id(b)].meas_date or b.start_time, b.subject)[0],
                "duration_s": headers[_block_id(b)].duration,
                "audio_offset_s": align[_block_id(b)][0],
                "guard_trim_s": trims[_block_id(b)],
                "work_sha256": json.loads((work / f"{_block_id(b)}.done.json").read_text())["sha256"],
            }
            for b in blocks
        },
        "skipped": skipped,
        "anonymized": {
            "dates_shifted": daysback is not None,
            "daysback": None
            if daysback is None
            else (
                int(cfg.anonymize_daysback)
                if cfg.anonymize_daysback is not None
                else "secret (per subject, not written)"
            ),
            "rule": "every written date moved back by whole local calendar days; local clock time, day indices and "
            "all relative times kept (ieegfm.shards.deidentify)",
        },
        "length_mismatches": [{k: v for k, v in m.items() if k != "message"} for m in mismatches],
        "empty_splits": empty,
        "channels_from": reference["provenance"] if reference is not None else None,
        "config": OmegaConf.to_container(cfg),
        "audio": extractor.config(),
    }
    if reference is not None:
        for subj in names:
            if names[subj] != reference["manifest"]["subjects"][subj]["ch_names"]:  # same picks + montage: same names
                raise InputError(
                    f"subject {subj}: channels after the montage {names[subj][:6]}... differ from those of "
                    f"channels_from={cfg.channels_from}"
                )
    _json_dump(manifest, out / "manifest.json")
    shutil.rmtree(work, ignore_errors=True)
    logger.info("packed %s: %s", out, ", ".join(f"{sp} {hours[sp]['hours']:.2f} h" for sp in SPLITS))
    return out / "manifest.json"


def audio_pool_n(pool_s: float, sfreq: float, window_n: int) -> int:
    """Samples per stored audio bin for ``audio.pool_s`` (1 = every frame).

    Raises
    ------
    ConfigError
        ``pool_s`` negative, not a whole number of samples at ``sfreq``, or not dividing the window.
    """
    if pool_s == 0:
        return 1
    n = pool_s * sfreq
    if pool_s < 0 or abs(n - round(n)) > 1e-9 or round(n) < 1 or window_n % round(n):
        raise ConfigError(
            f"audio.pool_s={pool_s}: expected 0 or a bin of a whole number of samples at {sfreq:g} Hz that divides "
            f"the {window_n}-sample window (e.g. 1.0 or 0.5 for 3-s windows at 40 Hz)"
        )
    return int(round(n))


def _chunks(valid: np.ndarray, chunk_n: int, min_n: int):
    """``(lo, hi)`` of consecutive chunks of at most ``chunk_n`` valid samples, each at least ``min_n`` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        for lo in range(start, stop, chunk_n):
            hi = min(lo + chunk_n, stop)
            if hi - lo >= min_n:
                yield int(lo), int(hi)


WORK_FILES = ("brain.npy", "audio.npy", "valid.npy", "channels.json")


def _block_is_done(stem: Path, key: str) -> bool:
    """Whether ``<stem>.*`` work files were finished for this config (marker key and file checksums match)."""
    marker = Path(f"{stem}.done.json")
    if not marker.is_file():
        return False
    done = json.loads(marker.read_text())
    if done.get("key") != key:
        return False
    for ext, digest in done.get("sha256", {}).items():
        path = Path(f"{stem}.{ext}")
        if not path.is_file() or sha256_file(path) != digest:
            logger.warning("%s: work file changed since it was written; recomputing the block", path)
            return False
    return bool(done.get("sha256"))


def open_work_array(path: str, shape: tuple[int, int]) -> np.memmap:
    """A float32 ``.npy`` work file mapped for writing, its blocks allocated on disk up front.

    Writing into a sparse memory map on a full disk kills the process with SIGBUS; allocated first, a full disk
    is an ``OSError`` (ENOSPC) here instead, which ``pack`` reports in one line.
    """
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return arr


_WORKER_EXTRACTOR = None


def _init_worker(audio_cfg: dict) -> None:
    """Process-pool initializer: one audio extractor (e.g. a wav2vec2 model) per worker process."""
    global _WORKER_EXTRACTOR
    logging.basicConfig(level=logging.WARNING)
    _WORKER_EXTRACTOR = build_extractor(OmegaConf.create(audio_cfg))


def _work_block(args: tuple, extractor=None) -> dict | InputError:
    """Process one block (in a worker process when ``extractor`` is None); return the work files' checksums."""
    stem = args[4]
    try:
        _process_block(*args[:4], extractor if extractor is not None else _WORKER_EXTRACTOR, *args[4:])
    except InputError as err:
        return err
    return {ext: sha256_file(f"{stem}.{ext}") for ext in WORK_FILES}


def _run_blocks(jobs: list, extractor, cfg, bar):
    """Yield ``(block, key, checksums | InputError)`` for each job, with ``cfg.n_jobs`` worker processes.

    Blocks are independent (streaming state never crosses a block), so the work files, and therefore the
    shards, are the same whatever ``n_jobs`` is.
    """
    n_jobs = min(int(cfg.n_jobs), len(jobs))
    if n_jobs <= 1:
        for b, key, args in jobs:
            yield b, key, _work_block(args, extractor)
            bar.update(max(args[6][1] - args[6][0], 0.0))  # the block's packed interval (s)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch/BLAS threads
    with ProcessPoolExecutor(
        n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(OmegaConf.to_container(cfg.audio),)
    ) as pool:
        futures = {pool.submit(_work_block, args): (b, key, args) for b, key, args in jobs}
        for fut in as_completed(futures):
            b, key, args = futures[fut]
            bar.update(max(args[6][1] - args[6][0], 0.0))
            yield b, key, fut.result()


def _process_block(
    b: Block,
    h: IEEGHeader,
    picks: list[str],
    pcfg,
    extractor,
    stem: Path,
    offset: float,
    keep: tuple[float, float],
    batch_chunks: int = 1,
) -> None:
    """Stream one block into ``<stem>.brain.npy``, ``.audio.npy``, ``.valid.npy``, ``.channels.json``."""
    raw = open_raw(b.ieeg)
    sfreq_out = float(pcfg.sfreq)
    n_out = int(np.ceil(h.n_times * sfreq_out / h.sfreq - 1e-9))
    pp = StreamingPreprocessor(
        sfreq=h.sfreq,
        n_chans=len(picks),
        line_freq=pcfg.line_freq,
        l_freq=pcfg.l_freq,
        h_freq=pcfg.h_freq,
        sfreq_out=sfreq_out,
    )
    _, names = apply_montage(np.zeros((len(picks), 1)), picks, pcfg.montage)
    brain = open_work_array(f"{stem}.brain.npy", (len(names), n_out))
    valid = np.zeros(n_out, dtype=bool)
    pos = 0

    def put(y: np.ndarray, v: np.ndarray) -> None:
        nonlocal pos
        y, _ = apply_montage(y, picks, pcfg.montage)
        n = min(y.shape[1], n_out - pos)
        brain[:, pos : pos + n] = y[:, :n]
        valid[pos : pos + n] = v[:n]
        pos += n

    n_nan = 0
    for chunk in iter_chunks(raw, picks, pcfg.chunk_s):
        n_nan += int(np.isnan(chunk).sum())
        put(*pp.process(chunk))
    put(*pp.flush())
    if pos != n_out:
        raise RuntimeError(f"{b.ieeg}: preprocessing produced {pos} samples, expected {n_out}")
    if n_nan:
        logger.warning(
            "%s: %d NaN samples; %d output samples around them excluded", b.ieeg.name, n_nan, int((~valid).sum())
        )
    times = np.arange(n_out) / sfreq_out
    valid &= (times >= keep[0]) & (times < keep[1])
    lo, hi = np.searchsorted(times, keep, side="left")
    audio = open_work_array(f"{stem}.audio.npy", (extractor.n_features, n_out))
    audio[:] = 0.0
    targets_at(extractor, b.audio, times[lo:hi] - offset, audio[:, lo:hi], extractor.chunk_s, batch_chunks)
    brain.flush()
    audio.flush()
    np.save(f"{stem}.valid.npy", valid)
    Path(f"{stem}.channels.json").write_text(json.dumps(names))
