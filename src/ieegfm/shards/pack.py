"""``ieegfm pack``: recordings table -> preprocessed, aligned, split WebDataset shards.

One function per phase, each bounded in memory whatever the recording length:

1. read every block's headers and check them (:mod:`ieegfm.shards.headers`): sampling rates, audio coverage,
   header-vs-file lengths, events and words;
2. select channels per subject: good neural channels in every block, minus flat ones
   (:mod:`ieegfm.shards.channels`);
3. plan splits: blocks to train/val/test with guard gaps (:mod:`ieegfm.shards.split`);
4. process blocks: stream each through preprocessing into work files with its audio targets
   (:mod:`ieegfm.shards.work`; a rerun reuses finished blocks);
5. fit scalers on the work files (:mod:`ieegfm.shards.scalers`);
6. write shards of contiguous chunks (:func:`write_shards`, :mod:`ieegfm.shards.writer`);
7. write the manifest (:func:`build_manifest`, :mod:`ieegfm.io.manifest`), last: a folder without it is not
   finished.

Block start times, local clock, day indices and written (de-identified) dates come from
:class:`~ieegfm.shards.clock.SiteClock`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

import ieegfm
from ieegfm.errors import ConfigError, InputError
from ieegfm.features import build_extractor
from ieegfm.io.electrodes import read_electrodes
from ieegfm.io.lock import exclusive_output, write_errors_as_output_error
from ieegfm.io.manifest import (
    SPLITS,
    ManifestDict,
    count_chunk,
    new_split_stats,
    withdraw_manifest,
    write_manifest,
)
from ieegfm.preprocess import SCALING_RULES, apply_montage, min_sfreq
from ieegfm.shards.channels import channels_from_pack, coordinates, electrodes_files, select_channels
from ieegfm.shards.clock import SiteClock, local_timezone
from ieegfm.shards.headers import BlockInfo, cut_stretches, read_blocks
from ieegfm.shards.inputs import input_blocks
from ieegfm.shards.scalers import Scalers, fit_scalers
from ieegfm.shards.split import BlockSpan, assign_splits, guard_trims
from ieegfm.shards.work import plan_job, process_blocks, work_sha256
from ieegfm.shards.writer import ShardWriter

logger = logging.getLogger(__name__)


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
        block or channel; with ``strict=true`` also any bad block (corrupt file, audio shorter than its block,
        a header declaring another length than its file holds, a split that comes out empty).
    ConfigError
        Bad split fractions, wav2vec2 model folder or layer, unknown ``timezone``, bad ``audio.pool_s``.
    """
    with write_errors_as_output_error(cfg.out), exclusive_output(cfg.out, "pack"):
        return _pack(cfg)


def only_subjects(blocks: list, subjects, table) -> list:
    """The blocks of ``subjects`` (all when None).

    Raises
    ------
    InputError
        A label the table does not hold (names the table and the labels it has).
    """
    if subjects is None:
        return blocks
    held = sorted({b.subject for b in blocks})
    missing = [s for s in subjects if s not in held]
    if missing:
        padded = [h for h in held if h.lstrip("0") in missing and h != h.lstrip("0")]
        hint = f" (quote zero-padded labels: subjects=['{padded[0]}'])" if padded else ""
        raise InputError(f"subjects={list(subjects)}: {missing} not in {table}; it holds {held}{hint}")
    return [b for b in blocks if b.subject in set(subjects)]


def _pack(cfg) -> Path:
    """:func:`pack` while holding the output folder's lock: the phases in order."""
    reference = channels_from_pack(cfg)
    tz = local_timezone(cfg.timezone)
    sfreq = float(cfg.preprocess.sfreq)
    window_n = int(round(cfg.split.window_s * sfreq))
    pool_n = audio_pool_n(cfg.audio.pool_s, sfreq, window_n)  # fail early
    out, work = Path(cfg.out), Path(cfg.out) / ".work"
    blocks, where = input_blocks(cfg)
    blocks = only_subjects(blocks, getattr(cfg, "subjects", None), where)
    extractor = build_extractor(cfg.audio)
    electrodes = electrodes_files(blocks)  # subject -> its electrodes.tsv, each read once now: bad ones fail first

    # 1. headers -------------------------------------------------------------------------------------------------
    infos, skipped, mismatches = read_blocks(blocks, cfg.strict, where)
    infos = cut_stretches(infos, int(cfg.split.get("stretches", 1)))
    need = min_sfreq(cfg.preprocess.bands)
    for i in infos:
        if i.header.sfreq <= need:
            raise InputError(
                f"{i.block.ieeg}: sampled at {i.header.sfreq:g} Hz; preprocess.bands={list(cfg.preprocess.bands)} "
                f"needs more than {need:g} Hz (drop the highest band)"
            )
    # 2. channels ------------------------------------------------------------------------------------------------
    subjects = sorted({i.block.subject for i in infos})
    per_subject = {s: [(i.block, i.header) for i in infos if i.block.subject == s] for s in subjects}
    picks, dropped = select_channels(per_subject, cfg.preprocess.flat_threshold, reference, cfg.channels_from)
    positions = {s: read_electrodes(p).positions for s, p in electrodes.items()}  # (laplacian on a grid)
    for s in picks:  # a montage the channels cannot make fails here, before any work
        try:
            apply_montage(np.zeros((len(picks[s]), 1)), picks[s], cfg.preprocess.montage, positions.get(s))
        except ValueError as err:
            raise InputError(f"subject {s}: preprocess.montage={cfg.preprocess.montage}: {err}") from None
    # 3. splits --------------------------------------------------------------------------------------------------
    split, trims, guard_s = plan_splits(infos, cfg, extractor.context_s)
    # 4. blocks -> work files ------------------------------------------------------------------------------------
    withdraw_manifest(out)  # a pack already here stops looking finished before anything is rewritten
    work.mkdir(parents=True, exist_ok=True)
    config_key = json.dumps(
        {"preprocess": OmegaConf.to_container(cfg.preprocess), "audio": extractor.config()}, sort_keys=True
    )
    jobs = [plan_job(i, picks[i.block.subject], trims[i.id], cfg, config_key, work, positions.get(i.block.subject))
            for i in infos]  # fmt: skip
    finished = process_blocks(jobs, extractor, cfg, cfg.strict, skipped)
    infos = [i for i in infos if i.id in finished]
    if not any(split[i.id] == "train" for i in infos):
        raise InputError(f"{where}: no training block left to fit the scaling on")
    untrained = [s for s in subjects if any(i.block.subject == s for i in infos)
                 and not any(i.block.subject == s and split[i.id] == "train" for i in infos)]  # fmt: skip
    if untrained:  # its training blocks were skipped: nothing to fit its scaling on
        raise InputError(
            f"{where}: subject(s) {untrained} have no training block left to fit their scaling on (skipped; "
            "see the warnings above)"
        )
    # 5. scalers -------------------------------------------------------------------------------------------------
    starts: dict = {}
    for i in infos:  # (a subject whose every block was skipped has none)
        starts.setdefault(i.block.subject, []).append(i.start)
    clock = SiteClock.for_starts(starts, tz, cfg.anonymize, cfg.anonymize_daysback)
    scalers = fit_scalers(infos, split, work, cfg.preprocess, clock)
    # 6. shards --------------------------------------------------------------------------------------------------
    shards, stats, names = write_shards(infos, split, work, scalers, clock, cfg, pool_n)
    empty = check_empty_splits(stats, cfg)
    if reference is not None:
        for subj in names:
            if names[subj] != list(reference["manifest"].subjects[subj].ch_names):  # same picks + montage: same names
                raise InputError(
                    f"subject {subj}: channels after the montage {names[subj][:6]}... differ from those of "
                    f"channels_from={cfg.channels_from}"
                )
    # 7. manifest ------------------------------------------------------------------------------------------------
    manifest = build_manifest(cfg, extractor, infos, split, trims, guard_s, picks, dropped, scalers, clock,
                              shards, stats, names, pool_n, work)  # fmt: skip
    for s, v in manifest["subjects"].items():  # contact positions, where an electrodes.tsv gives them
        v.update(coordinates(s, v["ch_names"], electrodes))
    manifest.update(skipped=skipped, empty_splits=empty,
                    length_mismatches=[{k: v for k, v in m.items() if k != "message"} for m in mismatches],
                    channels_from=reference["provenance"] if reference is not None else None)  # fmt: skip
    path = write_manifest(out, manifest)
    shutil.rmtree(work, ignore_errors=True)
    logger.info("packed %s: %s", out, ", ".join(f"{sp} {stats[sp]['hours']:.2f} h" for sp in SPLITS))
    return path


def plan_splits(infos: list[BlockInfo], cfg, context_s: float):
    """Phase 3: ``(split, trims, guard_s)``: block id -> split, block id -> (head, tail) trims (s), the guard (s).

    Raises
    ------
    ConfigError, InputError
        See :func:`~ieegfm.shards.split.assign_splits`.
    """
    spans = [
        BlockSpan(i.id, i.block.subject, i.start, i.header.duration)
        if i.part is None
        else BlockSpan(i.id, i.block.subject, i.start + dt.timedelta(seconds=i.t0), i.t1 - i.t0)  # a stretch
        for i in infos
    ]
    split = assign_splits(spans, cfg.split.val, cfg.split.test)
    guard_s = cfg.split.guard_s if cfg.split.guard_s is not None else cfg.split.window_s + context_s
    return split, guard_trims(spans, split, guard_s), guard_s


def write_shards(infos: list[BlockInfo], split: dict[str, str], work: Path, scalers: Scalers, clock: SiteClock,
                 cfg, pool_n: int) -> tuple[dict[str, list[dict]], dict[str, dict], dict[str, list[str]]]:  # fmt: skip
    """Phase 6: every split's chunks, scaled, into tars; returns ``(shards, stats, names)`` (names: subject ->
    channel names after the montage).

    Stale tars (and temporary tars of an interrupted run) are removed first; every tar is written under a
    temporary name and renamed when complete.
    """
    out = work.parent
    for stale in list(out.glob("*.tar")) + list(out.glob("*.tar.tmp")):
        stale.unlink()
    sfreq = float(cfg.preprocess.sfreq)
    chunk_n = int(round(cfg.chunk_s * sfreq))
    window_n = int(round(cfg.split.window_s * sfreq))
    shards: dict[str, list[dict]] = {}
    stats: dict[str, dict] = {}
    names: dict[str, list[str]] = {}
    for sp in SPLITS:
        writer = ShardWriter(out, sp, cfg.samples_per_shard)
        st = new_split_stats()
        for info in infos:
            if split[info.id] != sp:
                continue
            b, bid = info.block, info.id
            st["blocks"].append(bid)
            brain = np.load(work / f"{bid}.brain.npy", mmap_mode="r")
            audio = np.load(work / f"{bid}.audio.npy", mmap_mode="r")
            valid = np.load(work / f"{bid}.valid.npy")
            names[b.subject] = json.loads((work / f"{bid}.channels.json").read_text())
            for lo, hi in _chunks(valid, chunk_n, window_n):
                hi = lo + (hi - lo) // pool_n * pool_n  # whole audio bins (window_n is a multiple of pool_n)
                x = scalers.brain(bid).transform(np.asarray(brain[:, lo:hi]), clamp=cfg.preprocess.clamp)
                y = scalers.audio.transform(np.asarray(audio[:, lo:hi]))
                if pool_n > 1:  # bin means: what the window-mean target needs, 1/pool_n of the bytes
                    y = y.reshape(y.shape[0], -1, pool_n).mean(axis=2)
                t = info.start + dt.timedelta(seconds=lo / sfreq)
                day, daytime = clock.day(b.subject, t), clock.daytime(t)
                start_time, local_time = clock.published(b.subject, t)
                meta = {"subject": b.subject, "session": b.session, "source": b.ieeg.name, "audio": b.audio.name,
                        "block": bid, "start_time": start_time, "local_time": local_time, "tmin": lo / sfreq,
                        "day": day, "daytime": daytime, "sfreq": sfreq, "ch_names": names[b.subject], "split": sp}  # fmt: skip
                meta.update(_annotations(info, lo / sfreq, hi / sfreq))
                n_win = (hi - lo) // window_n
                writer.write(
                    f"{bid}_{lo:09d}".replace(".", "_"),
                    {"brain.npy": x.astype(np.float16), "audio.npy": y.astype(np.float16), "json": meta},
                    n_windows=n_win,
                    n_times=hi - lo,
                )
                count_chunk(st, (hi - lo) / sfreq / 3600, n_win, day, daytime)
        shards[sp], stats[sp] = writer.close(), st
    return shards, stats, names


def _annotations(info: BlockInfo, t_lo: float, t_hi: float) -> dict:
    """A chunk's ``events`` (overlapping it; onsets in s on the iEEG clock, that of ``tmin``) and ``words``
    (``[onset, duration, word]`` of words starting in it), for blocks that have them."""
    meta = {}
    if info.events is not None:
        meta["events"] = [
            {"id": i, "onset": e.onset, "duration": e.duration, "trial_type": e.trial_type, "value": e.value}
            for i, e in enumerate(info.events)
            if e.onset < t_hi and e.onset + e.duration > t_lo
        ]
    if info.words is not None:
        meta["words"] = [
            [round(w.onset, 4), round(w.duration, 4), w.value] for w in info.words if t_lo <= w.onset < t_hi
        ]
    return meta


def check_empty_splits(stats: dict[str, dict], cfg) -> list[str]:
    """Splits asked for (a non-zero fraction) that came out without a chunk: warned about, listed in the manifest.

    Raises
    ------
    InputError
        Any, under ``strict=true``.
    """
    asked = {"train": 1.0, "val": cfg.split.val, "test": cfg.split.test}
    empty = [sp for sp in SPLITS if stats[sp]["n_chunks"] == 0 and asked[sp] > 0]
    for sp in empty:  # blocks skipped or too short
        logger.warning(
            "split %r is empty: no chunk of at least one window%s (skipped or too-short blocks; see above)",
            sp,
            f" although split.{sp}={asked[sp]}" if sp != "train" else "",
        )
    if cfg.strict and empty:
        raise InputError(
            f"{cfg.recordings or cfg.bids_root}: split(s) {empty} came out empty (strict=true); see the warnings above"
        )
    return empty


FORMAT = {
    "brain": "float16 (n_chans, n_times), robust-scaled (median/IQR), clamped",
    "audio": "float16 (n_features, n_times * audio_sfreq / sfreq), z-scored with training statistics (frame by "
    "frame), then averaged over bins of sfreq / audio_sfreq samples when audio.pool_s > 0",
    "keys": ["brain.npy", "audio.npy", "json"],
}


def build_manifest(cfg, extractor, infos, split, trims, guard_s, picks, dropped, scalers: Scalers, clock: SiteClock,
                   shards, stats, names, pool_n: int, work: Path) -> ManifestDict:  # fmt: skip
    """Phase 7: the manifest of a pack (:class:`~ieegfm.io.manifest.Manifest` describes it; ``skipped``, ``empty_splits``,
    ``length_mismatches`` and ``channels_from`` are added by the caller)."""
    sfreq = float(cfg.preprocess.sfreq)
    subjects = sorted(scalers.subjects)
    return {
        "ieegfm_version": ieegfm.__version__,
        "format": FORMAT,
        "sfreq": sfreq,
        "audio_sfreq": sfreq / pool_n,
        "timezone": cfg.timezone,
        "window_s": cfg.split.window_s,
        "chunk_s": cfg.chunk_s,
        "guard_s": guard_s,
        "n_features": extractor.n_features,
        "bands": list(cfg.preprocess.bands),
        "subjects": {
            s: {
                "index": i,
                "ch_names": names.get(s, []),
                "n_chans": len(names.get(s, [])),
                "picks": picks[s],
                "dropped": dropped[s],
                "scaler": scalers.subjects[s].to_dict(),
            }  # fmt: skip
            for i, s in enumerate(subjects)
        },
        "n_chans_max": max(len(v) for v in names.values()) if names else 0,
        "audio_scaler": scalers.audio.to_dict(),
        "scaling": {
            "by": cfg.preprocess.scale_by,
            "rule": SCALING_RULES[cfg.preprocess.scale_by],
            "unit_of_block": scalers.unit_of_block,
            "scalers": {u: sc.to_dict() for u, sc in scalers.units.items()},
        },
        "splits": stats,
        "shards": shards,
        "blocks": {
            i.id: {
                "split": split[i.id],
                "ieeg": str(i.block.ieeg),
                "audio": str(i.block.audio),
                "start_time": clock.published(i.block.subject, i.start)[0],
                "duration_s": i.header.duration,
                "audio_offset_s": i.offset,
                "guard_trim_s": trims[i.id],
                "work_sha256": work_sha256(work / i.id),
                **({"stretch_s": [i.t0, i.t1]} if i.part is not None else {}),
            }  # fmt: skip
            for i in infos
        },
        "anonymized": {
            "dates_shifted": clock.daysback is not None,
            "daysback": None
            if clock.daysback is None
            else (
                int(cfg.anonymize_daysback)
                if cfg.anonymize_daysback is not None
                else "secret (per subject, not written)"
            ),  # fmt: skip
            "rule": "every written date moved back by whole local calendar days; local clock time, day indices and "
            "all relative times kept (ieegfm.shards.deidentify)",
        },
        "config": OmegaConf.to_container(cfg),
        "audio": extractor.config(),
    }


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
