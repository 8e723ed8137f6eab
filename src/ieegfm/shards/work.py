"""Pack phase 4: each block streamed through preprocessing into work files, with its audio targets.

Per block, the iEEG goes through :class:`~ieegfm.preprocess.StreamingPreprocessor` (notch, band-pass, resampling)
and the montage at the output rate (and, for ``preprocess.bands`` past ``lfp``, through
:class:`~ieegfm.preprocess.StreamingEnvelopes`), and the audio targets are computed at the same sample times; both are kept in
memory-mapped work files ``<out>/.work/<block>.{brain,audio,valid}.npy`` and ``.channels.json``. A block is
finished when its checksum marker ``<block>.done.json`` is written (atomically, after the files), and a rerun
reuses a finished block whose marker matches the config and the files. Blocks are independent (streaming state
never crosses a block), so the work files, and therefore the shards, are the same whatever ``n_jobs`` is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from ieegfm.errors import InputError
from ieegfm.features import build_extractor, targets_at
from ieegfm.io.checksum import sha256_file
from ieegfm.io.ieeg import IEEGHeader, iter_chunks, open_raw
from ieegfm.io.manifest import write_json_atomic
from ieegfm.io.recordings import Block
from ieegfm.preprocess import StreamingEnvelopes, StreamingPreprocessor, apply_montage, band_channel_name
from ieegfm.shards.headers import BlockInfo, skip_or_raise

logger = logging.getLogger(__name__)

WORK_FILES = ("brain.npy", "audio.npy", "valid.npy", "channels.json")


@dataclass(frozen=True)
class BlockJob:
    """One block to stream into work files (picklable: it travels to worker processes).

    Attributes
    ----------
    block, header
        The block and its iEEG header.
    picks : list of str
        File channels to read (before the montage).
    pcfg
        The ``preprocess`` config.
    stem : Path
        ``<out>/.work/<block id>``.
    offset : float
        Audio start on the iEEG clock (s).
    keep : tuple of float
        ``(start, stop)`` (s, iEEG clock) marked valid: the audio-aligned interval less the guard trims.
    batch_chunks : int
        Audio chunks per feature-extractor call.
    key : str
        Hash of everything the work files depend on (the config and these parameters).
    positions : dict | None
        Contact name -> (x, y, z) of the subject's ``electrodes.tsv`` (``montage=laplacian`` on a grid), if any.
    """

    block: Block
    header: IEEGHeader
    picks: list[str]
    pcfg: object
    stem: Path
    offset: float
    keep: tuple[float, float]
    batch_chunks: int
    key: str
    positions: dict | None = None

    @property
    def seconds(self) -> float:
        """Seconds it will pack (for the progress bar)."""
        return max(self.keep[1] - self.keep[0], 0.0)


def plan_job(info: BlockInfo, picks: list[str], trims: tuple[float, float], cfg, config_key: str, work: Path,
             positions: dict | None = None):  # fmt: skip
    """The :class:`BlockJob` of a block (``config_key``: the preprocessing and audio config, as JSON;
    ``positions``: the subject's contact positions, used by ``montage=laplacian``)."""
    head, tail = trims
    keep = (info.t0 + head, info.t1 - tail)
    params = [picks, cfg.preprocess.montage, keep[0], keep[1], info.offset, str(info.block.ieeg), str(info.block.audio)]
    if cfg.preprocess.montage == "laplacian":
        positions = dict(positions or {})
        params.append(sorted((k, list(v)) for k, v in positions.items()))
    else:
        positions = None
    key = hashlib.sha256((config_key + json.dumps(params)).encode()).hexdigest()
    return BlockJob(info.block, info.header, picks, cfg.preprocess, work / info.id, info.offset, keep,
                    cfg.audio.batch_chunks, key, positions)  # fmt: skip


def process_blocks(jobs: list[BlockJob], extractor, cfg, strict: bool, skipped: dict[str, str]) -> set[str]:
    """Phase 4: run (or reuse) every job; returns the stems' names (block ids) finished.

    Failed blocks (:class:`InputError`) are skipped into ``skipped`` (raised with ``strict``).
    """
    done: set[str] = set()
    todo = []
    with tqdm(total=sum(j.seconds for j in jobs), desc="pack (recorded s)", unit="s", unit_scale=True) as bar:
        for job in jobs:
            if block_is_done(job.stem, job.key):  # finished by an earlier (interrupted) run: checked by checksum
                bar.update(job.seconds)
                done.add(job.stem.name)
            else:
                todo.append(job)
        for job, outcome in _run(todo, extractor, cfg, bar):
            if isinstance(outcome, InputError):
                skip_or_raise(outcome, job.block, strict, skipped)
                continue
            write_json_atomic({"key": job.key, "sha256": outcome}, Path(f"{job.stem}.done.json"))
            done.add(job.stem.name)
    return done


def block_is_done(stem: Path, key: str) -> bool:
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


def work_sha256(stem: Path) -> dict[str, str]:
    """The checksums a finished block's marker records."""
    return json.loads(Path(f"{stem}.done.json").read_text())["sha256"]


_WORKER_EXTRACTOR = None


def _init_worker(audio_cfg: dict) -> None:
    """Process-pool initializer: one audio extractor (e.g. a wav2vec2 model) per worker process."""
    global _WORKER_EXTRACTOR
    logging.basicConfig(level=logging.WARNING)
    _WORKER_EXTRACTOR = build_extractor(OmegaConf.create(audio_cfg))


def _work(job: BlockJob, extractor=None) -> dict | InputError:
    """Process one block (in a worker process when ``extractor`` is None); return the work files' checksums."""
    try:
        process_block(job, extractor if extractor is not None else _WORKER_EXTRACTOR)
    except InputError as err:
        return err
    return {ext: sha256_file(f"{job.stem}.{ext}") for ext in WORK_FILES}


def _run(jobs: list[BlockJob], extractor, cfg, bar):
    """Yield ``(job, checksums | InputError)`` for each job, with ``cfg.n_jobs`` worker processes."""
    n_jobs = min(int(cfg.n_jobs), len(jobs))
    if n_jobs <= 1:
        for job in jobs:
            yield job, _work(job, extractor)
            bar.update(job.seconds)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch/BLAS threads
    with ProcessPoolExecutor(
        n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(OmegaConf.to_container(cfg.audio),)
    ) as pool:
        futures = {pool.submit(_work, job): job for job in jobs}
        for fut in as_completed(futures):
            bar.update(futures[fut].seconds)
            yield futures[fut], fut.result()


def open_work_array(path: str, shape: tuple[int, int]) -> np.memmap:
    """A float32 ``.npy`` work file mapped for writing, its blocks allocated on disk up front.

    Writing into a sparse memory map on a full disk kills the process with SIGBUS; allocated first, a full disk
    is an ``OSError`` (ENOSPC) here instead, which ``pack`` reports in one line.
    """
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return arr


def process_block(job: BlockJob, extractor) -> None:
    """Stream one block into ``<stem>.brain.npy``, ``.audio.npy``, ``.valid.npy``, ``.channels.json``.

    The brain rows are the bands of ``preprocess.bands`` in order, each a block of the montage's channels:
    ``lfp`` from :class:`~ieegfm.preprocess.StreamingPreprocessor` (montage at the output rate), the envelopes
    from one :class:`~ieegfm.preprocess.StreamingEnvelopes` (montage before the envelope). An output is valid
    where every band's is.
    """
    b, h, picks, pcfg, stem = job.block, job.header, job.picks, job.pcfg, job.stem
    raw = open_raw(b.ieeg)
    sfreq_out = float(pcfg.sfreq)
    n_out = int(np.ceil(h.n_times * sfreq_out / h.sfreq - 1e-9))
    bands = list(pcfg.get("bands") or ["lfp"])
    try:
        _, names = apply_montage(np.zeros((len(picks), 1)), picks, pcfg.montage, job.positions)
    except ValueError as err:  # laplacian without shaft names or positions
        raise InputError(f"{b.ieeg}: preprocess.montage={pcfg.montage}: {err}") from None
    n = len(names)
    streams = []  # (preprocessor, montage at the output rate, the rows of each of its bands)
    if "lfp" in bands:
        pp = StreamingPreprocessor(
            sfreq=h.sfreq,
            n_chans=len(picks),
            line_freq=pcfg.line_freq,
            l_freq=pcfg.l_freq,
            h_freq=pcfg.h_freq,
            sfreq_out=sfreq_out,
        )
        streams.append((pp, True, [bands.index("lfp")]))
    envelopes = [band for band in bands if band != "lfp"]
    if envelopes:
        try:
            env = StreamingEnvelopes(
                h.sfreq,
                len(picks),
                envelopes,
                line_freq=pcfg.line_freq,
                sfreq_out=sfreq_out,
                mix=lambda y: apply_montage(y, picks, pcfg.montage, job.positions)[0],
            )
        except ValueError as err:
            raise InputError(f"{b.ieeg}: preprocess.bands={bands}: {err}") from None
        streams.append((env, False, [bands.index(band) for band in envelopes]))
    brain = open_work_array(f"{stem}.brain.npy", (n * len(bands), n_out))
    valid = np.ones(n_out, dtype=bool)
    pos = [0] * len(streams)

    def put(i: int, y: np.ndarray, v: np.ndarray) -> None:
        _, montage_after, rows = streams[i]
        if montage_after:
            y, _ = apply_montage(y, picks, pcfg.montage, job.positions)
        k = min(y.shape[1], n_out - pos[i])
        for j, band_row in enumerate(rows):
            brain[band_row * n : (band_row + 1) * n, pos[i] : pos[i] + k] = y[j * n : (j + 1) * n, :k]
        valid[pos[i] : pos[i] + k] &= v[:k]
        pos[i] += k

    n_nan = 0
    for chunk in iter_chunks(raw, picks, pcfg.chunk_s):
        n_nan += int(np.isnan(chunk).sum())
        for i, (stream, _, _) in enumerate(streams):
            put(i, *stream.process(chunk))
    for i, (stream, _, _) in enumerate(streams):
        put(i, *stream.flush())
    if any(p != n_out for p in pos):
        raise RuntimeError(f"{b.ieeg}: preprocessing produced {pos} samples, expected {n_out}")
    if n_nan:
        logger.warning(
            "%s: %d NaN samples; %d output samples around them excluded", b.ieeg.name, n_nan, int((~valid).sum())
        )
    names = [band_channel_name(name, band) for band in bands for name in names]
    times = np.arange(n_out) / sfreq_out
    valid &= (times >= job.keep[0]) & (times < job.keep[1])
    lo, hi = np.searchsorted(times, job.keep, side="left")
    audio = open_work_array(f"{stem}.audio.npy", (extractor.n_features, n_out))
    audio[:] = 0.0
    targets_at(extractor, b.audio, times[lo:hi] - job.offset, audio[:, lo:hi], extractor.chunk_s, job.batch_chunks)
    brain.flush()
    audio.flush()
    np.save(f"{stem}.valid.npy", valid)
    Path(f"{stem}.channels.json").write_text(json.dumps(names))
